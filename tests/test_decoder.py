import numpy as np
import pytest

from minitransformer import backend
from minitransformer.gradcheck import check_module
from minitransformer.nn.decoder import Decoder, DecoderLayer
from tests.conftest import assert_close, randn, require
from tests.test_encoder import TOL, _randomize_gamma


def _masks(B, T, S):
    tgt = np.zeros((B, T), dtype=bool)
    tgt[0, -1:] = True  # first target: last token is padding
    mem = np.zeros((B, S), dtype=bool)
    mem[1, -2:] = True  # second source: last two tokens are padding
    return backend.asarray(tgt), backend.asarray(mem)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_gradcheck(rng, norm_first):
    layer = DecoderLayer(6, 3, 8, dropout=0.2, norm_first=norm_first).to(dtype="float64")
    _randomize_gamma(layer, rng)
    tgt, mem = _masks(2, 3, 5)  # T = 3 target tokens != S = 5 source tokens
    r = check_module(layer, (randn(rng, 2, 3, 6), randn(rng, 2, 5, 6)),
                     kwargs=dict(tgt_key_padding_mask=tgt, memory_key_padding_mask=mem), tol=TOL)
    assert r.passed, r
    assert {"arg0", "arg1"} <= set(r.errors)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_stack_gradcheck_memory_accumulates(rng, norm_first):
    # memory feeds both layers' cross-attention: its gradient is a sum over layers
    dec = Decoder(2, 4, 2, 8, dropout=0.0, norm_first=norm_first).to(dtype="float64")
    _randomize_gamma(dec, rng)
    tgt, mem = _masks(2, 3, 4)
    r = check_module(dec, (randn(rng, 2, 3, 4), randn(rng, 2, 4, 4)),
                     kwargs=dict(tgt_key_padding_mask=tgt, memory_key_padding_mask=mem), tol=TOL)
    assert r.passed, r


def test_decoder_is_causal_by_default(rng):
    dec = Decoder(2, 4, 2, 8, dropout=0.0).to(dtype="float64")
    x, memory = randn(rng, 2, 5, 4), randn(rng, 2, 3, 4)
    y1 = backend.to_numpy(dec(x, memory))
    x2 = x.copy()
    x2[:, 2:] = 0.0
    y2 = backend.to_numpy(dec(x2, memory))
    np.testing.assert_allclose(y1[:, :2], y2[:, :2], rtol=1e-12, atol=1e-12)


def test_decoder_float32_weights_and_errors(rng):
    dec = Decoder(1, 4, 2, 8)
    y = dec(randn(rng, 2, 3, 4, dtype="float32"), randn(rng, 2, 5, 4, dtype="float32"), need_weights=True)
    assert y.dtype == np.float32
    assert dec.layers[0].cross_attn_weights.shape == (2, 2, 3, 5)
    with pytest.raises(RuntimeError, match="before forward"):
        Decoder(1, 4, 2, 8).backward(y)


@pytest.mark.torch
@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_torch_parity(rng, norm_first):
    torch = require("torch")
    from minitransformer.interop.torch import grads_from_torch, load_from_torch
    from tests.parity.helpers import randomize_torch

    torch.manual_seed(0)
    d, h, ff, n, T, S = 8, 2, 16, 2, 4, 6
    layer = torch.nn.TransformerDecoderLayer(d, h, ff, dropout=0.0, batch_first=True, norm_first=norm_first)
    ref = torch.nn.TransformerDecoder(layer, n, norm=torch.nn.LayerNorm(d)).double()
    randomize_torch(torch, ref)
    dec = Decoder(n, d, h, ff, dropout=0.0, norm_first=norm_first, final_norm=True).to(dtype="float64")
    load_from_torch(dec, ref)
    x, memory, dy = randn(rng, 2, T, d), randn(rng, 2, S, d), randn(rng, 2, T, d)
    tgt, mem = _masks(2, T, S)
    causal = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)  # True = blocked, like the bool padding mask
    xt = torch.from_numpy(backend.to_numpy(x)).requires_grad_()
    mt = torch.from_numpy(backend.to_numpy(memory)).requires_grad_()
    yt = ref(xt, mt, tgt_mask=causal, tgt_key_padding_mask=torch.from_numpy(backend.to_numpy(tgt)),
             memory_key_padding_mask=torch.from_numpy(backend.to_numpy(mem)))
    yt.backward(torch.from_numpy(backend.to_numpy(dy)))
    y = dec(x, memory, tgt_key_padding_mask=tgt, memory_key_padding_mask=mem)
    dx, dmemory = dec.backward(dy)
    assert_close(y, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert_close(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    assert_close(dmemory, mt.grad.numpy(), rtol=1e-10, atol=1e-12)
    grads = grads_from_torch(ref)
    assert set(grads) == {k for k, _ in dec.named_parameters()}
    for k, p in dec.named_parameters():
        assert_close(p.grad, grads[k], rtol=1e-9, atol=1e-12, err_msg=k)


def test_decoder_separate_attention_and_activation_dropout(rng):
    """As the encoder: both attentions take attention_dropout, the feed-forward activation_dropout."""
    default = DecoderLayer(6, 3, 8, dropout=0.2)
    assert default.self_attn.dropout == default.cross_attn.dropout == default.ff.dropout.p == 0.2
    dec = Decoder(2, 6, 3, 8, dropout=0.5, attention_dropout=0.3, activation_dropout=0.0)
    for layer in dec.layers:
        assert layer.self_attn.dropout == layer.cross_attn.dropout == 0.3
        assert layer.ff.dropout.p == 0.0 and layer.dropout3.p == 0.5
    layer = DecoderLayer(6, 3, 8, dropout=0.2, attention_dropout=0.3, activation_dropout=0.0).to(dtype="float64")
    _randomize_gamma(layer, rng)
    tgt, mem = _masks(2, 3, 5)
    r = check_module(layer, (randn(rng, 2, 3, 6), randn(rng, 2, 5, 6)),
                     kwargs=dict(tgt_key_padding_mask=tgt, memory_key_padding_mask=mem), tol=TOL)
    assert r.passed, r
