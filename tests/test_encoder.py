import numpy as np
import pytest

from minitransformer import backend
from minitransformer.gradcheck import check_module
from minitransformer.nn.encoder import Encoder, EncoderLayer
from tests.conftest import assert_close, randn, require

# Composite blocks chain ~10 ops; in float64 their centred-difference error
# still sits near 1e-9, so the single-op bound of 1e-6 holds here too.
TOL = 1e-6


def _randomize_gamma(module, rng):
    """Non-unit LayerNorm gain and non-zero shift, so their gradient bugs show."""
    for name, p in module.named_parameters():
        if name.endswith("gamma"):
            p.data[...] = backend.asarray(1.0 + 0.5 * rng.standard_normal(p.shape), dtype=p.dtype)
        if name.endswith("beta"):
            p.data[...] = backend.asarray(0.1 * rng.standard_normal(p.shape), dtype=p.dtype)


def _padding(B, T):
    kpm = np.zeros((B, T), dtype=bool)
    kpm[1, -2:] = True  # second sequence: last two tokens are padding
    return backend.asarray(kpm)


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_gradcheck_masks_dropout(rng, norm_first):
    layer = EncoderLayer(6, 3, 8, dropout=0.2, norm_first=norm_first).to(dtype="float64")
    _randomize_gamma(layer, rng)
    x = randn(rng, 2, 4, 6)
    r = check_module(layer, (x,), kwargs=dict(key_padding_mask=_padding(2, 4), causal=True), tol=TOL)
    assert r.passed, r
    assert len(r.errors) == 1 + len(layer.parameters())


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_stack_gradcheck(rng, norm_first):
    enc = Encoder(2, 6, 2, 8, dropout=0.0, activation="gelu", norm_first=norm_first).to(dtype="float64")
    _randomize_gamma(enc, rng)
    r = check_module(enc, (randn(rng, 2, 3, 6),), kwargs=dict(key_padding_mask=_padding(2, 3)), tol=TOL)
    assert r.passed, r


def test_encoder_final_norm_default():
    assert Encoder(1, 4, 2, 8, norm_first=True).norm is not None
    assert Encoder(1, 4, 2, 8, norm_first=False).norm is None
    with pytest.raises(ValueError, match="n_layers >= 1, got 0"):
        Encoder(0, 4, 2, 8)


def test_encoder_causal_invariance(rng):
    enc = Encoder(2, 6, 2, 8, dropout=0.0).to(dtype="float64")
    x = randn(rng, 2, 5, 6)
    y1 = backend.to_numpy(enc(x, causal=True))
    x2 = x.copy()
    x2[:, 3:] = randn(rng, 2, 2, 6)  # change the future
    y2 = backend.to_numpy(enc(x2, causal=True))
    np.testing.assert_allclose(y1[:, :3], y2[:, :3], rtol=1e-12, atol=1e-12)
    assert np.abs(y1[:, 3:] - y2[:, 3:]).max() > 1e-3  # the future itself did change


def test_encoder_padding_invariance(rng):
    enc = Encoder(2, 6, 2, 8, dropout=0.0).eval().to(dtype="float64")
    x = randn(rng, 1, 3, 6)
    y = backend.to_numpy(enc(x))
    xp = backend.xp()
    padded = xp.concatenate([x, randn(rng, 1, 2, 6)], axis=1)  # two junk padding tokens
    kpm = backend.asarray(np.array([[False, False, False, True, True]]))
    y_pad = backend.to_numpy(enc(padded, key_padding_mask=kpm))
    np.testing.assert_allclose(y_pad[:, :3], y, rtol=1e-12, atol=1e-12)


def test_encoder_float32_and_weights(rng):
    enc = Encoder(2, 6, 3, 8)
    y = enc(randn(rng, 2, 4, 6, dtype="float32"), need_weights=True)
    assert y.dtype == np.float32
    P = backend.to_numpy(enc.layers[0].attn_weights)
    assert P.shape == (2, 3, 4, 4)
    np.testing.assert_allclose(P.sum(-1), 1.0, rtol=1e-5)


def test_encoder_grads_accumulate(rng):
    enc = Encoder(1, 4, 2, 8, dropout=0.0).to(dtype="float64")
    x, dy = randn(rng, 2, 3, 4), randn(rng, 2, 3, 4)
    enc(x)
    enc.backward(dy)
    once = {k: p.grad.copy() for k, p in enc.named_parameters()}
    enc(x)
    enc.backward(dy)
    for k, p in enc.named_parameters():
        assert_close(p.grad, 2 * once[k], rtol=1e-12, err_msg=k)


@pytest.mark.torch
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_torch_parity(rng, norm_first, activation):
    torch = require("torch")
    from minitransformer.interop.torch import grads_from_torch, load_from_torch
    from tests.parity.helpers import randomize_torch

    torch.manual_seed(0)
    d, h, ff, n = 8, 2, 16, 2
    layer = torch.nn.TransformerEncoderLayer(d, h, ff, dropout=0.0, activation=activation,
                                             batch_first=True, norm_first=norm_first)
    ref = torch.nn.TransformerEncoder(layer, n, norm=torch.nn.LayerNorm(d) if norm_first else None,
                                      enable_nested_tensor=False).double()
    randomize_torch(torch, ref)
    enc = Encoder(n, d, h, ff, dropout=0.0, activation=activation, norm_first=norm_first).to(dtype="float64")
    load_from_torch(enc, ref)
    x, dy = randn(rng, 3, 5, d), randn(rng, 3, 5, d)
    kpm = np.zeros((3, 5), dtype=bool)
    kpm[1, -2:] = True
    causal = torch.triu(torch.ones(5, 5, dtype=torch.bool), diagonal=1)  # True = blocked, like the bool padding mask
    xt = torch.from_numpy(backend.to_numpy(x)).requires_grad_()
    yt = ref(xt, mask=causal, src_key_padding_mask=torch.from_numpy(kpm))
    yt.backward(torch.from_numpy(backend.to_numpy(dy)))
    y = enc(x, key_padding_mask=backend.asarray(kpm), causal=True)
    dx = enc.backward(dy)
    assert_close(y, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert_close(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    grads = grads_from_torch(ref)
    assert set(grads) == {k for k, _ in enc.named_parameters()}
    for k, p in enc.named_parameters():
        assert_close(p.grad, grads[k], rtol=1e-9, atol=1e-12, err_msg=k)


def test_encoder_separate_attention_and_activation_dropout(rng):
    """attention_dropout / activation_dropout default to dropout (torch); BERT sets activation_dropout=0.0."""
    default = EncoderLayer(6, 3, 8, dropout=0.2)
    assert default.self_attn.dropout == 0.2 and default.ff.dropout.p == 0.2 and default.dropout1.p == 0.2
    enc = Encoder(2, 6, 3, 8, dropout=0.5, attention_dropout=0.3, activation_dropout=0.0)
    for layer in enc.layers:
        assert layer.self_attn.dropout == 0.3 and layer.ff.dropout.p == 0.0
        assert layer.dropout1.p == 0.5 and layer.dropout2.p == 0.5
    enc(randn(rng, 2, 4, 6, dtype="float32"))  # training mode
    assert enc.layers[0].ff.dropout.last_mask is None  # no mask drawn on the hidden activations
    assert enc.layers[0].dropout1.last_mask is not None


def test_encoder_layer_gradcheck_separate_dropouts(rng):
    layer = EncoderLayer(6, 3, 8, dropout=0.2, attention_dropout=0.3, activation_dropout=0.0,
                         activation="gelu").to(dtype="float64")
    _randomize_gamma(layer, rng)
    r = check_module(layer, (randn(rng, 2, 4, 6),), kwargs=dict(key_padding_mask=_padding(2, 4)), tol=TOL)
    assert r.passed, r
