"""Property tests (hypothesis): random shapes, head counts, Tq != Tk, masks and dtypes.

Hypothesis draws the sizes, flags and a seed; the array values come from a
NumPy generator with that seed (standard normal), so a failure shrinks to
small sizes and replays exactly. Sizes stay tiny: the gradient checks perturb
every element twice.
"""

import math
import tempfile

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minitransformer import backend, checkpoint
from minitransformer.gradcheck import check_op
from minitransformer.models.transformer import Transformer
from minitransformer.nn.activations import (
    gelu_backward,
    gelu_forward,
    relu_backward,
    relu_forward,
)
from minitransformer.nn.attention import (
    build_attention_mask,
    scaled_dot_product_attention_backward,
    scaled_dot_product_attention_forward,
)
from minitransformer.nn.dropout import dropout_backward, dropout_forward
from minitransformer.nn.embedding import embedding_backward, embedding_forward
from minitransformer.nn.encoder import Encoder
from minitransformer.nn.layernorm import layernorm_backward, layernorm_forward
from minitransformer.nn.linear import linear_backward, linear_forward
from minitransformer.nn.losses import cross_entropy_backward, cross_entropy_forward
from minitransformer.nn.multihead import (
    MultiHeadAttention,
    multi_head_attention_backward,
    multi_head_attention_forward,
)
from minitransformer.nn.positional import add_positions_backward, add_positions_forward
from minitransformer.nn.softmax import log_softmax_backward, log_softmax_forward, softmax_backward, softmax_forward
from minitransformer.nn.tanh import tanh_backward, tanh_forward
from tests.conftest import assert_close

# The autouse seeding fixture in conftest is function-scoped; every example reseeds itself anyway.
PROPS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
GRAD = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

sizes = st.integers(1, 3)
seeds = st.integers(0, 2**31 - 1)
dtypes = st.sampled_from(["float32", "float64"])


def _randn(rng, *shape, dtype="float64", scale=1.0):
    return backend.asarray(scale * rng.standard_normal(shape), dtype=dtype)


def _bool(a):
    return backend.asarray(np.asarray(a, dtype=bool))


def _padding(rng, B, Tk, p=0.4):
    """(B, Tk) True = padding, at least one real key per row."""
    pad = rng.random((B, Tk)) < p  # (B, Tk)
    pad[np.arange(B), rng.integers(0, Tk, B)] = False
    return pad


def _ok(r):
    assert r.passed, r


# -- every op's gradient check, float64 ------------------------------------------------------


@GRAD
@given(B=sizes, T=sizes, d_in=sizes, d_out=sizes, bias=st.booleans(), seed=seeds)
def test_linear_gradcheck(B, T, d_in, d_out, bias, seed):
    rng = backend.host_rng(seed)
    x, W, b = _randn(rng, B, T, d_in), _randn(rng, d_in, d_out), _randn(rng, d_out)
    if bias:
        _ok(check_op(linear_forward, linear_backward, (x, W, b)))
    else:  # backward always returns db: keep the two gradients that exist
        _ok(check_op(lambda x, W: linear_forward(x, W, None), lambda dy, c: linear_backward(dy, c)[:2], (x, W),
                     name="linear_no_bias"))


@GRAD
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), op=st.sampled_from(
    ["relu", "gelu", "gelu_tanh", "tanh"]), seed=seeds)
def test_activation_gradcheck(shape, op, seed):
    x = _randn(backend.host_rng(seed), *shape, scale=2.0)
    if op == "relu":  # keep away from the kink, where the slope is not defined
        x = x + 0.01 * backend.get_array_module(x).sign(x)
        _ok(check_op(relu_forward, relu_backward, (x,)))
    elif op == "tanh":
        _ok(check_op(tanh_forward, tanh_backward, (x,)))
    else:
        approximate = "none" if op == "gelu" else "tanh"
        _ok(check_op(gelu_forward, gelu_backward, (x,), kwargs={"approximate": approximate}))


@GRAD
@given(B=sizes, T=sizes, n=st.integers(1, 5), seed=seeds, fully_masked_row=st.booleans())
def test_softmax_with_random_mask_gradcheck(B, T, n, seed, fully_masked_row):
    rng = backend.host_rng(seed)
    x = _randn(rng, B, T, n, scale=3.0)
    mask = rng.random((B, T, n)) < 0.7  # True = keep
    if fully_masked_row:
        mask[0, 0] = False
    _ok(check_op(softmax_forward, softmax_backward, (x,), kwargs={"mask": _bool(mask)}))


@GRAD
@given(B=sizes, T=sizes, n=st.integers(1, 5), seed=seeds)
def test_log_softmax_gradcheck(B, T, n, seed):
    _ok(check_op(log_softmax_forward, log_softmax_backward, (_randn(backend.host_rng(seed), B, T, n, scale=3.0),)))


@GRAD
@given(B=sizes, T=sizes, d_model=st.integers(2, 5), eps=st.sampled_from([1e-5, 1e-12, 0.1]), seed=seeds)
def test_layernorm_gradcheck(B, T, d_model, eps, seed):
    rng = backend.host_rng(seed)
    args = (_randn(rng, B, T, d_model), _randn(rng, d_model), _randn(rng, d_model))  # random (not unit) gamma
    _ok(check_op(layernorm_forward, layernorm_backward, args, kwargs={"eps": eps}))


@GRAD
@given(B=sizes, T=sizes, d=sizes, p=st.floats(0.0, 0.9), seed=seeds, broadcast=st.booleans())
def test_dropout_gradcheck(B, T, d, p, seed, broadcast):
    rng = backend.host_rng(seed)
    mask = _bool(rng.random((1, T, d) if broadcast else (B, T, d)) >= p)
    _ok(check_op(dropout_forward, dropout_backward, (_randn(rng, B, T, d), mask, p), wrt=[0]))


@GRAD
@given(B=sizes, T=sizes, vocab_size=st.integers(1, 6), d_model=sizes, seed=seeds)
def test_embedding_gradcheck_with_repeated_ids(B, T, vocab_size, d_model, seed):
    rng = backend.host_rng(seed)
    ids = backend.asarray(rng.integers(0, vocab_size, (B, T)), dtype="int64")
    _ok(check_op(embedding_forward, embedding_backward, (ids, _randn(rng, vocab_size, d_model)), wrt=[1]))


@GRAD
@given(B=sizes, T=sizes, d_model=sizes, seed=seeds)
def test_add_positions_gradcheck(B, T, d_model, seed):
    rng = backend.host_rng(seed)
    _ok(check_op(add_positions_forward, add_positions_backward, (_randn(rng, B, T, d_model), _randn(rng, T, d_model))))


def _attention_mask(rng, B, Tq, Tk, padding, causal):
    pad = _bool(_padding(rng, B, Tk)) if padding else None
    return build_attention_mask(B, Tq, Tk, key_padding_mask=pad, causal=causal)  # (B, 1, Tq, Tk) or None


@GRAD
@given(B=sizes, n_heads=sizes, Tq=sizes, Tk=st.integers(1, 4), d_k=sizes, d_v=sizes, padding=st.booleans(),
       causal=st.booleans(), p=st.sampled_from([0.0, 0.3]), seed=seeds)
def test_scaled_dot_product_attention_gradcheck(B, n_heads, Tq, Tk, d_k, d_v, padding, causal, p, seed):
    rng = backend.host_rng(seed)
    Q, K, V = _randn(rng, B, n_heads, Tq, d_k), _randn(rng, B, n_heads, Tk, d_k), _randn(rng, B, n_heads, Tk, d_v)
    mask = _attention_mask(rng, B, Tq, Tk, padding, causal)
    dropout_mask = _bool(rng.random((B, n_heads, Tq, Tk)) >= p) if p > 0.0 else None
    _ok(check_op(scaled_dot_product_attention_forward, scaled_dot_product_attention_backward, (Q, K, V),
                 kwargs={"mask": mask, "dropout_mask": dropout_mask, "dropout_p": p}))


@GRAD
@given(B=st.integers(1, 2), n_heads=sizes, d_k=st.integers(1, 2), Tq=sizes, Tk=sizes, padding=st.booleans(),
       causal=st.booleans(), p=st.sampled_from([0.0, 0.25]), seed=seeds)
def test_multi_head_attention_gradcheck(B, n_heads, d_k, Tq, Tk, padding, causal, p, seed):
    rng = backend.host_rng(seed)
    d_model = n_heads * d_k
    query, key, value = _randn(rng, B, Tq, d_model), _randn(rng, B, Tk, d_model), _randn(rng, B, Tk, d_model)
    w = 1.0 / math.sqrt(d_model)  # the usual init scale: scores stay O(1), away from saturated softmax
    params = [_randn(rng, d_model, d_model, scale=w) if i % 2 == 0 else _randn(rng, d_model) for i in range(8)]
    mask = _attention_mask(rng, B, Tq, Tk, padding, causal)
    dropout_mask = _bool(rng.random((B, n_heads, Tq, Tk)) >= p) if p > 0.0 else None
    r = check_op(multi_head_attention_forward, multi_head_attention_backward,
                 (query, key, value, *params, n_heads, mask, dropout_mask, p))
    assert len(r.errors) == 11
    _ok(r)


@GRAD
@given(B=sizes, T=sizes, C=st.integers(1, 5), ignore_p=st.floats(0.0, 1.0), label_smoothing=st.floats(0.0, 1.0),
       seed=seeds)
def test_cross_entropy_gradcheck(B, T, C, ignore_p, label_smoothing, seed):
    rng = backend.host_rng(seed)
    targets = rng.integers(0, C, (B, T))
    targets[rng.random((B, T)) < ignore_p] = -100
    args = (_randn(rng, B, T, C, scale=3.0), backend.asarray(targets, dtype="int64"))
    _ok(check_op(cross_entropy_forward, cross_entropy_backward, args, wrt=[0],
                 kwargs={"label_smoothing": label_smoothing}))


# -- softmax, attention and layer norm properties, float32 and float64 --------------------------


def _tol(dtype):
    return 1e-5 if dtype == "float32" else 1e-12


@PROPS
@given(B=sizes, T=sizes, n=st.integers(1, 6), dtype=dtypes, scale=st.sampled_from([1.0, 30.0, 1e4]), seed=seeds)
def test_softmax_rows_sum_to_one_or_zero_when_fully_masked(B, T, n, dtype, scale, seed):
    rng = backend.host_rng(seed)
    mask = rng.random((B, T, n)) < 0.6
    P, _ = softmax_forward(_randn(rng, B, T, n, dtype=dtype, scale=scale), mask=_bool(mask))
    assert P.dtype == np.dtype(dtype)
    P = backend.to_numpy(P)
    assert np.isfinite(P).all() and (P >= 0).all()
    expected = np.where(mask.any(axis=-1), 1.0, 0.0)  # (B, T)
    np.testing.assert_allclose(P.sum(axis=-1), expected, atol=_tol(dtype) * n)
    assert (P[~mask] == 0.0).all()


@PROPS
@given(B=sizes, n_heads=sizes, Tq=st.integers(1, 4), Tk=st.integers(1, 5), d_k=sizes, d_v=sizes,
       padding=st.booleans(), causal=st.booleans(), dtype=dtypes, seed=seeds)
def test_attention_output_is_a_convex_combination_of_values(B, n_heads, Tq, Tk, d_k, d_v, padding, causal, dtype,
                                                             seed):
    rng = backend.host_rng(seed)
    Q, K = _randn(rng, B, n_heads, Tq, d_k, dtype=dtype, scale=2.0), _randn(rng, B, n_heads, Tk, d_k, dtype=dtype)
    V = _randn(rng, B, n_heads, Tk, d_v, dtype=dtype)
    mask = _attention_mask(rng, B, Tq, Tk, padding, causal)
    Y, cache = scaled_dot_product_attention_forward(Q, K, V, mask=mask)
    assert Y.dtype == np.dtype(dtype)
    Y, V = backend.to_numpy(Y), backend.to_numpy(V)
    allowed = np.ones((B, 1, Tq, Tk), dtype=bool) if mask is None else backend.to_numpy(mask)
    allowed = np.broadcast_to(allowed, (B, n_heads, Tq, Tk))
    tol = 10 * _tol(dtype)
    for b, h, i in np.ndindex(B, n_heads, Tq):
        keys = allowed[b, h, i]
        if not keys.any():  # a fully masked row (causal with Tq > Tk): zeros, not NaN
            assert (Y[b, h, i] == 0.0).all()
            continue
        lo, hi = V[b, h, keys].min(axis=0), V[b, h, keys].max(axis=0)  # (d_v,) over the attended keys only
        assert (Y[b, h, i] >= lo - tol).all() and (Y[b, h, i] <= hi + tol).all(), (Y[b, h, i], lo, hi)


@PROPS
@given(B=sizes, T=sizes, d_model=st.integers(2, 8), dtype=dtypes, scale=st.sampled_from([0.1, 1.0, 100.0]),
       shift=st.sampled_from([0.0, 5.0]), seed=seeds)
def test_layernorm_rows_have_zero_mean_and_unit_variance(B, T, d_model, dtype, scale, shift, seed):
    rng = backend.host_rng(seed)
    x = _randn(rng, B, T, d_model, dtype=dtype, scale=scale) + shift  # (B, T, d_model)
    eps = 1e-5
    gamma, beta = backend.asarray(np.ones(d_model), dtype=dtype), backend.asarray(np.zeros(d_model), dtype=dtype)
    y, _ = layernorm_forward(x, gamma, beta, eps)
    assert y.dtype == np.dtype(dtype)
    y, x64 = backend.to_numpy(y).astype(np.float64), backend.to_numpy(x).astype(np.float64)
    var_x = x64.var(axis=-1)  # (B, T)
    tol = 1e-4 if dtype == "float32" else 1e-10
    np.testing.assert_allclose(y.mean(axis=-1), 0.0, atol=tol)
    # var(y) = var / (var + eps): eps pulls it just below 1, by eps / (var + eps)
    np.testing.assert_allclose(y.var(axis=-1), var_x / (var_x + eps), atol=tol)
    assert (np.abs(y.var(axis=-1) - 1.0) <= eps / var_x + tol).all()


# -- causal and padding invariance ------------------------------------------------------------


def _encoder(n_heads, d_k, norm_first, seed):
    backend.manual_seed(seed)
    d_model = n_heads * d_k
    return Encoder(2, d_model, n_heads, 2 * d_model, dropout=0.1, norm_first=norm_first).to(dtype="float64").eval()


@PROPS
@given(B=sizes, T=st.integers(2, 5), n_heads=sizes, d_k=st.integers(3, 4), norm_first=st.booleans(),
       t=st.integers(0, 4), seed=seeds)
def test_causal_encoder_ignores_the_future(B, T, n_heads, d_k, norm_first, t, seed):
    t = t % (T - 1)  # change every position after t (d_model >= 3: LayerNorm of 1 or 2 numbers is 0 or +-1)
    enc = _encoder(n_heads, d_k, norm_first, seed)
    rng = backend.host_rng(seed)
    x = _randn(rng, B, T, n_heads * d_k)
    y = backend.to_numpy(enc(x, causal=True))
    x2 = x.copy()
    x2[:, t + 1:] = _randn(rng, B, T - t - 1, n_heads * d_k, scale=5.0)
    y2 = backend.to_numpy(enc(x2, causal=True))
    assert_close(y2[:, : t + 1], y[:, : t + 1], rtol=1e-10, atol=1e-12)
    assert not np.allclose(y2[:, t + 1:], y[:, t + 1:])  # the future did change: the test can fail


@PROPS
@given(B=sizes, Tq=sizes, Tk=sizes, extra=st.integers(1, 3), n_heads=sizes, d_k=st.integers(1, 3),
       padded_already=st.booleans(), seed=seeds)
def test_multi_head_attention_padding_invariance(B, Tq, Tk, extra, n_heads, d_k, padded_already, seed):
    backend.manual_seed(seed)
    d_model = n_heads * d_k
    mha = MultiHeadAttention(d_model, n_heads).to(dtype="float64")
    rng = backend.host_rng(seed)
    query, memory = _randn(rng, B, Tq, d_model), _randn(rng, B, Tk, d_model)
    pad = _padding(rng, B, Tk) if padded_already else np.zeros((B, Tk), dtype=bool)
    y = backend.to_numpy(mha(query, memory, key_padding_mask=_bool(pad)))
    longer = backend.xp().concatenate([memory, _randn(rng, B, extra, d_model, scale=10.0)], axis=1)
    pad2 = np.concatenate([pad, np.ones((B, extra), dtype=bool)], axis=1)
    y2 = backend.to_numpy(mha(query, longer, key_padding_mask=_bool(pad2)))
    assert_close(y2, y, rtol=1e-10, atol=1e-12)


@PROPS
@given(B=sizes, T=sizes, extra=st.integers(1, 3), n_heads=sizes, d_k=st.integers(1, 2), norm_first=st.booleans(),
       causal=st.booleans(), seed=seeds)
def test_encoder_padding_invariance(B, T, extra, n_heads, d_k, norm_first, causal, seed):
    enc = _encoder(n_heads, d_k, norm_first, seed)
    rng = backend.host_rng(seed)
    d_model = n_heads * d_k
    x = _randn(rng, B, T, d_model)
    y = backend.to_numpy(enc(x, key_padding_mask=_bool(np.zeros((B, T), dtype=bool)), causal=causal))
    longer = backend.xp().concatenate([x, _randn(rng, B, extra, d_model, scale=10.0)], axis=1)
    pad = np.concatenate([np.zeros((B, T), dtype=bool), np.ones((B, extra), dtype=bool)], axis=1)
    y2 = backend.to_numpy(enc(longer, key_padding_mask=_bool(pad), causal=causal))
    assert np.isfinite(y2).all()
    assert_close(y2[:, :T], y, rtol=1e-10, atol=1e-12)


# -- checkpoint round trip ---------------------------------------------------------------------


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n_heads=sizes, d_k=st.integers(1, 3), layers=st.tuples(st.integers(1, 2), st.integers(1, 2)),
       vocab=st.tuples(st.integers(2, 9), st.integers(2, 9)), share=st.booleans(), norm_first=st.booleans(),
       activation=st.sampled_from(["relu", "gelu", "gelu_tanh"]), dtype=dtypes, seed=seeds)
def test_checkpoint_round_trip_is_exact(n_heads, d_k, layers, vocab, share, norm_first, activation, dtype, seed):
    src_vocab, tgt_vocab = (vocab[0], vocab[0]) if share else vocab
    config = dict(src_vocab_size=src_vocab, tgt_vocab_size=tgt_vocab, d_model=n_heads * d_k, n_heads=n_heads,
                  d_ff=3, n_encoder_layers=layers[0], n_decoder_layers=layers[1], max_len=8,
                  share_embeddings=share, norm_first=norm_first, activation=activation)
    backend.manual_seed(seed)
    model = Transformer(dtype=dtype, **config)
    for p in model.parameters():  # random values everywhere, not only the init's ones/zeros
        p.data[...] = backend.asarray(backend.host_rng(seed).standard_normal(p.shape), dtype=dtype)
    backend.manual_seed(seed + 1)
    fresh = Transformer(dtype=dtype, **config)
    with tempfile.TemporaryDirectory() as tmp:
        path = checkpoint.save(tmp, model, config=config)
        ckpt = checkpoint.load_into(fresh, None, path)
    assert ckpt.config == config
    before, after = model.state_dict(), fresh.state_dict()
    assert sorted(before) == sorted(after)
    for name, a in before.items():
        assert after[name].dtype == a.dtype == np.dtype(dtype), name
        np.testing.assert_array_equal(after[name], a, err_msg=name)
    if share:  # tying survives the load: one Parameter, two names
        assert fresh.tgt_embed.W is fresh.src_embed.W
    assert math.isfinite(float(backend.to_numpy(fresh.src_embed.W.data).sum()))
