"""Numerical edge cases: extreme and equal logits, fully masked rows, constant LayerNorm rows,
empty batches, length-1 (and length-0) sequences, float16.

Decisions this file pins down:

- Empty batch (B = 0): a correct empty result, never an error. Every layer
  returns an array of shape (0, ...) in the input's dtype, backward returns
  empty input gradients and adds nothing to the parameter gradients, and
  ``Transformer.loss`` of an empty batch is 0.0 with zero gradients, the same
  convention as a batch whose targets are all ``ignore_index``.
- Length-0 source (S = 0): the encoder output is empty and cross-attention
  sees no keys, which is a fully masked row: zeros, a finite loss.
- float16: every Module refuses float16 inputs with a TypeError naming the
  dtype (``nn/checks.py`` ``check_float``), ``Module.to`` refuses to cast to
  anything but float32/float64, and ``cross_entropy_forward`` (the loss, the
  entry point of the gradient) refuses float16 logits too. The other pure
  ``*_forward`` functions trust their inputs: they do no validation of their
  own (that is the Module's job, and keeps them as plain as the formula), so
  feeding them float16 is outside their contract.
"""

import math

import numpy as np
import pytest

from minitransformer import backend
from minitransformer.gradcheck import check_module, check_op
from minitransformer.models.transformer import Transformer
from minitransformer.nn.activations import GELU, ReLU
from minitransformer.nn.attention import scaled_dot_product_attention_backward, scaled_dot_product_attention_forward
from minitransformer.nn.decoder import Decoder
from minitransformer.nn.dropout import Dropout
from minitransformer.nn.encoder import Encoder
from minitransformer.nn.layernorm import LayerNorm, layernorm_backward, layernorm_forward
from minitransformer.nn.linear import Linear
from minitransformer.nn.losses import CrossEntropyLoss, cross_entropy_backward, cross_entropy_forward
from minitransformer.nn.multihead import MultiHeadAttention
from minitransformer.nn.positional import PositionalEncoding
from minitransformer.nn.softmax import log_softmax_backward, log_softmax_forward, softmax_backward, softmax_forward
from tests.conftest import assert_close, randn

DTYPES = ["float32", "float64"]


def _arr(a, dtype="float64"):
    return backend.asarray(np.asarray(a), dtype=dtype)


def _np(a):
    return backend.to_numpy(a)


def _finite(*arrays):
    for a in arrays:
        assert np.isfinite(_np(a)).all(), a


# -- logits of 1e4 and -1e4 ---------------------------------------------------------------------

BIG = [[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4]]


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_of_huge_logits_is_exact_and_finite(dtype):
    x = _arr(BIG, dtype)
    P, cache = softmax_forward(x)
    assert P.dtype == np.dtype(dtype)
    assert_close(P, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0]], rtol=1e-6)
    dP = _arr([[1.0, 2.0, 3.0]] * 3, dtype)
    dx = softmax_backward(dP, cache)
    _finite(dx)
    # dx = P * (dP - sum(dP * P)): saturated rows have zero slope, the 50/50 row splits -0.5/+0.5
    assert_close(dx, [[0, 0, 0], [-1 / 3, 0, 1 / 3], [-0.25, 0.25, 0]], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", DTYPES)
def test_log_softmax_of_huge_logits_is_finite(dtype):
    y, cache = log_softmax_forward(_arr(BIG, dtype))
    expected = [[0, -2e4, -1e4], [-math.log(3)] * 3, [-math.log(2), -math.log(2), -2e4 - math.log(2)]]
    assert_close(y, expected, rtol=1e-6)
    dx = log_softmax_backward(_arr([[1.0, 0.0, 0.0]] * 3, dtype), cache)
    _finite(dx)
    assert_close(dx, [[0, 0, 0], [2 / 3, -1 / 3, -1 / 3], [0.5, -0.5, 0]], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_cross_entropy_of_huge_logits_is_finite(dtype, label_smoothing):
    targets = backend.asarray(np.array([1, 0, 2]), dtype="int64")
    loss, cache = cross_entropy_forward(_arr(BIG, dtype), targets, label_smoothing=label_smoothing)
    assert loss.dtype == np.dtype(dtype)
    logp = np.array([[0, -2e4, -1e4], [-math.log(3)] * 3, [-math.log(2), -math.log(2), -2e4 - math.log(2)]])
    nll = -logp[np.arange(3), [1, 0, 2]]
    expected = ((1 - label_smoothing) * nll + label_smoothing * -logp.mean(axis=1)).mean()
    assert_close(loss, expected, rtol=1e-6)
    dlogits = cross_entropy_backward(1.0, cache)
    _finite(dlogits)
    P = np.array([[1, 0, 0], [1 / 3] * 3, [0.5, 0.5, 0]])
    q = (1 - label_smoothing) * np.eye(3)[[1, 0, 2]] + label_smoothing / 3
    assert_close(dlogits, (P - q) / 3, rtol=1e-6, atol=1e-7)


# -- all-equal logits -------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("value", [0.0, 7.5, -1e4, 1e4])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_equal_logits_give_uniform_probabilities_and_loss_log_C(dtype, value, label_smoothing):
    C = 5
    logits = _arr(np.full((2, 3, C), value), dtype)
    P, _ = softmax_forward(logits)
    assert_close(P, np.full((2, 3, C), 1 / C), rtol=1e-6)
    y, _ = log_softmax_forward(logits)
    assert_close(y, np.full((2, 3, C), -math.log(C)), rtol=1e-6)
    targets = backend.asarray(np.arange(6).reshape(2, 3) % C, dtype="int64")
    loss, cache = cross_entropy_forward(logits, targets, label_smoothing=label_smoothing)
    assert_close(loss, math.log(C), rtol=1e-6)  # smoothing changes nothing: every logp is -log C
    q = (1 - label_smoothing) * np.eye(C)[_np(targets)] + label_smoothing / C
    assert_close(cross_entropy_backward(1.0, cache), (1 / C - q) / 6, rtol=1e-5, atol=1e-8)


# -- fully masked rows ------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_fully_masked_softmax_row_is_zero_with_zero_grad(dtype, rng):
    x = randn(rng, 2, 4, dtype=dtype)
    mask = backend.asarray(np.array([[True, False, True, True], [False] * 4]))
    P, cache = softmax_forward(x, mask=mask)
    assert (_np(P)[1] == 0).all() and abs(_np(P)[0].sum() - 1) < 1e-6
    dx = softmax_backward(randn(rng, 2, 4, dtype=dtype), cache)
    _finite(dx)
    assert (_np(dx)[1] == 0).all() and _np(dx)[0, 1] == 0
    minus_inf = backend.asarray(np.full((1, 4), -np.inf), dtype=dtype)  # an additive mask's fully masked row
    P, _ = softmax_forward(minus_inf)
    assert (_np(P) == 0).all()


def test_fully_masked_attention_rows_are_zero_and_gradcheck(rng):
    Q, K, V = randn(rng, 2, 3, 2), randn(rng, 2, 4, 2), randn(rng, 2, 4, 3)
    mask = np.ones((2, 3, 4), dtype=bool)
    mask[0, 1] = False  # one query of the first example sees nothing
    mask[1] = False  # the whole second example is padding
    mask = backend.asarray(mask)
    Y, cache = scaled_dot_product_attention_forward(Q, K, V, mask=mask)
    assert (_np(Y)[0, 1] == 0).all() and (_np(Y)[1] == 0).all()
    dQ, dK, dV = scaled_dot_product_attention_backward(randn(rng, 2, 3, 3), cache)
    _finite(dQ, dK, dV)
    assert (_np(dQ)[1] == 0).all() and (_np(dK)[1] == 0).all() and (_np(dV)[1] == 0).all()
    r = check_op(scaled_dot_product_attention_forward, scaled_dot_product_attention_backward, (Q, K, V),
                 kwargs={"mask": mask})
    assert r.passed, r


def test_fully_padded_example_through_mha_and_encoder_is_finite(rng):
    pad = backend.asarray(np.array([[False, False, True], [True, True, True]]))  # example 1: all padding
    mha = MultiHeadAttention(4, 2).to(dtype="float64")
    y = mha(randn(rng, 2, 3, 4), key_padding_mask=pad)
    assert_close(_np(y)[1], np.broadcast_to(_np(mha.b_o.data), (3, 4)))  # no keys: only the output bias
    enc = Encoder(2, 4, 2, 8, dropout=0.0).to(dtype="float64")
    r = check_module(enc, (randn(rng, 2, 3, 4),), kwargs={"key_padding_mask": pad, "causal": True})
    assert r.passed, r


# -- zero-variance rows in LayerNorm ----------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("value", [0.0, 3.0, -1e4])
def test_layernorm_constant_row_gives_beta_and_finite_grads(dtype, value, rng):
    x = backend.asarray(np.full((2, 5), value), dtype=dtype)
    gamma, beta = randn(rng, 5, dtype=dtype), randn(rng, 5, dtype=dtype)
    y, cache = layernorm_forward(x, gamma, beta)
    assert y.dtype == np.dtype(dtype)
    assert_close(y, np.broadcast_to(_np(beta), (2, 5)), rtol=0, atol=1e-12)
    dy = randn(rng, 2, 5, dtype=dtype)
    dx, dgamma, dbeta = layernorm_backward(dy, cache)
    _finite(dx, dgamma, dbeta)
    assert_close(dgamma, np.zeros(5), atol=1e-12)  # x_hat = 0
    assert_close(dbeta, _np(dy).sum(axis=0), rtol=1e-6)
    g = _np(dy) * _np(gamma)  # dx = rstd * (g - mean(g)), rstd = 1/sqrt(eps)
    assert_close(dx, (g - g.mean(axis=-1, keepdims=True)) / math.sqrt(1e-5), rtol=1e-4)


def test_layernorm_constant_row_gradcheck(rng):
    x = backend.asarray(np.full((2, 3, 4), 2.0))
    x[1, 2] = _np(randn(rng, 4))  # one ordinary row next to the constant ones
    r = check_op(layernorm_forward, layernorm_backward, (x, randn(rng, 4), randn(rng, 4)))
    assert r.passed, r


# -- empty batches (B = 0) and length-1 / length-0 sequences ----------------------------------


def _tiny_transformer(dtype="float64"):
    return Transformer(src_vocab_size=11, tgt_vocab_size=13, d_model=4, n_heads=2, d_ff=8, n_encoder_layers=1,
                       n_decoder_layers=1, max_len=8, dropout=0.0, dtype=dtype)


def _ids(B, T, vocab=10):
    return backend.asarray(np.arange(B * T).reshape(B, T) % vocab + 1, dtype="int64")


def _layers():
    yield "Linear", Linear(4, 4), lambda m, x: m(x)
    yield "LayerNorm", LayerNorm(4), lambda m, x: m(x)
    yield "MultiHeadAttention", MultiHeadAttention(4, 2), lambda m, x: m(x, causal=True)
    yield "Encoder", Encoder(2, 4, 2, 8, dropout=0.1), lambda m, x: m(x, causal=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("index", range(4))
def test_empty_batch_gives_an_empty_result(dtype, index, rng):
    name, layer, call = list(_layers())[index]
    layer.to(dtype=dtype)
    x = backend.asarray(np.zeros((0, 3, 4)), dtype=dtype)
    y = call(layer, x)
    assert y.shape == (0, 3, 4) and y.dtype == np.dtype(dtype), name
    dx = layer.backward(backend.asarray(np.zeros((0, 3, 4)), dtype=dtype))
    assert dx.shape == (0, 3, 4) and dx.dtype == np.dtype(dtype), name
    for p in layer.parameters():
        assert (_np(p.grad) == 0).all(), name  # nothing to accumulate


def test_empty_batch_decoder_and_transformer_loss():
    dec = Decoder(1, 4, 2, 8, dropout=0.0).to(dtype="float64")
    x, memory = backend.asarray(np.zeros((0, 3, 4))), backend.asarray(np.zeros((0, 5, 4)))
    assert dec(x, memory).shape == (0, 3, 4)
    dx, dmemory = dec.backward(backend.asarray(np.zeros((0, 3, 4))))
    assert dx.shape == (0, 3, 4) and dmemory.shape == (0, 5, 4)
    model = _tiny_transformer()
    empty = _ids(0, 3)
    loss = model.loss(empty, empty, empty)
    assert loss.shape == () and float(_np(loss)) == 0.0  # like an all-ignored batch, not NaN
    model.backward()
    assert all((_np(p.grad) == 0).all() for p in model.parameters())


def test_length_1_sequences_gradcheck(rng):
    x = randn(rng, 2, 1, 4)
    for module, kwargs in [
        (MultiHeadAttention(4, 2), {"causal": True}),
        (Encoder(1, 4, 2, 8, dropout=0.0, norm_first=True), {"causal": True}),
        (LayerNorm(4), {}),
        (Linear(4, 3), {}),
    ]:
        module.to(dtype="float64")
        gamma = getattr(module, "gamma", None)
        if gamma is not None:
            gamma.data[...] = _np(randn(rng, 4))
        r = check_module(module, (x,), kwargs=kwargs)
        assert r.passed, r
    dec = Decoder(1, 4, 2, 8, dropout=0.0).to(dtype="float64")
    r = check_module(dec, (x, randn(rng, 2, 1, 4)))
    assert r.passed, r


def test_length_1_transformer_loss_is_finite_and_grads_nonzero():
    model = _tiny_transformer()
    one = _ids(2, 1)
    loss = model.loss(one, one, one)
    assert np.isfinite(float(_np(loss))) and float(_np(loss)) > 0
    model.backward()
    _finite(*(p.grad for p in model.parameters()))
    assert float(np.abs(_np(model.out_proj.W.grad)).max()) > 0


def test_length_0_source_is_a_fully_masked_cross_attention():
    model = _tiny_transformer()
    empty_src, tgt = _ids(2, 0), _ids(2, 3)
    memory = model.encode(empty_src)
    assert memory.shape == (2, 0, 4)
    loss = model.loss(empty_src, tgt, tgt)
    assert np.isfinite(float(_np(loss)))
    model.backward()
    assert all(np.isfinite(_np(p.grad)).all() for p in model.parameters())
    assert (_np(model.src_embed.W.grad) == 0).all()  # no source token, no source gradient


# -- float16 ----------------------------------------------------------------------------------


def _float16_calls():
    x16 = backend.asarray(np.ones((2, 3, 4)), dtype="float16")
    yield "Linear input", lambda: Linear(4, 4)(x16)
    yield "LayerNorm input", lambda: LayerNorm(4)(x16)
    yield "MultiHeadAttention query", lambda: MultiHeadAttention(4, 2)(x16)
    yield "MultiHeadAttention", lambda: Encoder(1, 4, 2, 8)(x16)
    yield "MultiHeadAttention", lambda: Decoder(1, 4, 2, 8)(x16, x16)
    yield "ReLU input", lambda: ReLU()(x16)
    yield "GELU input", lambda: GELU()(x16)
    yield "Dropout input", lambda: Dropout(0.1)(x16)
    yield "PositionalEncoding input", lambda: PositionalEncoding(4, 8)(x16)
    yield "cross_entropy logits", lambda: CrossEntropyLoss()(x16, _ids(2, 3, 4))
    yield "cross_entropy logits", lambda: cross_entropy_forward(x16, _ids(2, 3, 4))
    yield "PositionalEncoding input", lambda: _tiny_transformer("float16").loss(_ids(2, 3), _ids(2, 3), _ids(2, 3))


@pytest.mark.parametrize("index", range(12))
def test_float16_is_refused_with_a_clear_error(index):
    what, call = list(_float16_calls())[index]
    with pytest.raises(TypeError, match=f"{what}.*expected float32 or float64, got float16"):
        call()


def test_module_to_float16_is_refused():
    layer = Linear(4, 3)
    with pytest.raises(TypeError, match="Linear.to: dtype must be float32 or float64, got float16"):
        layer.to(dtype="float16")
    with pytest.raises(TypeError, match="got int64"):
        layer.to(dtype="int64")
    assert layer.W.dtype == np.float32  # unchanged after the refusal
