import math

import numpy as np
import pytest

from minitransformer import backend
from minitransformer.gradcheck import check_op
from minitransformer.nn.attention import (
    build_attention_mask,
    causal_mask,
    scaled_dot_product_attention_backward,
    scaled_dot_product_attention_forward,
)
from tests.conftest import assert_close, randn, require

sdpa_forward = scaled_dot_product_attention_forward
sdpa_backward = scaled_dot_product_attention_backward
B, H, Tq, Tk, d_k, d_v = 2, 2, 3, 5, 4, 3


def qkv(rng, Tq=Tq, Tk=Tk, dtype="float64"):
    return randn(rng, B, H, Tq, d_k, dtype=dtype), randn(rng, B, H, Tk, d_k, dtype=dtype), \
        randn(rng, B, H, Tk, d_v, dtype=dtype)


def np_(x):
    return backend.to_numpy(x)


def padding(lengths, T):
    """key_padding_mask (len(lengths), T): True = padding, after each sequence's length."""
    return backend.asarray(np.arange(T)[None, :] >= np.asarray(lengths)[:, None])


STRUCTURE = np.array([[1, 1, 0, 1, 0],  # a structured (Tq, Tk) attn_mask, True = may attend
                      [0, 1, 1, 0, 1],
                      [1, 0, 1, 1, 1]], dtype=bool)


def masks():
    """Every mask kind the op must handle, as (name, mask, Tq, Tk)."""
    yield "none", None, Tq, Tk
    yield "padding+attn_mask", build_attention_mask(B, Tq, Tk, backend.asarray(STRUCTURE), padding([5, 3], Tk)), Tq, Tk
    yield "padding+causal offset", build_attention_mask(B, Tq, Tk, key_padding_mask=padding([5, 4], Tk),
                                                        causal=True), Tq, Tk
    yield "padding+causal self", build_attention_mask(B, 4, 4, key_padding_mask=padding([4, 2], 4), causal=True), 4, 4
    additive = np.where(STRUCTURE, 0.0, -np.inf) + np.linspace(-1.0, 1.0, Tk)  # float: -inf and finite biases
    yield "float additive", backend.asarray(additive), Tq, Tk
    per_head = np.ones((B, H, Tq, Tk), dtype=bool)
    per_head[1, 0, 2, :] = False  # one fully masked query row
    yield "per-head with a fully masked row", backend.asarray(per_head), Tq, Tk


@pytest.mark.parametrize("name,mask,tq,tk", list(masks()), ids=[m[0] for m in masks()])
def test_attention_gradcheck_masks(rng, name, mask, tq, tk):
    Q, K, V = qkv(rng, tq, tk)
    r = check_op(sdpa_forward, sdpa_backward, (Q, K, V), kwargs={"mask": mask})
    assert r.passed, r


def test_attention_gradcheck_dropout_replayed(rng):
    Q, K, V = qkv(rng)
    keep = backend.device_rng().random((B, H, Tq, Tk)) >= 0.3  # the mask is data: every forward reuses it
    mask = build_attention_mask(B, Tq, Tk, backend.asarray(STRUCTURE), padding([5, 3], Tk))
    r = check_op(sdpa_forward, sdpa_backward, (Q, K, V), kwargs={"mask": mask, "dropout_mask": keep, "dropout_p": 0.3})
    assert r.passed, r


def naive_attention(Q, K, V, allowed, keep=None, p=0.0):
    """One query at a time, one key at a time: the definition, with no matrix algebra."""
    Q, K, V, allowed = np_(Q), np_(K), np_(V), np.broadcast_to(np_(allowed), Q.shape[:-1] + (K.shape[-2],))
    Y = np.zeros(Q.shape[:-1] + (V.shape[-1],))
    for b in range(Q.shape[0]):
        for h in range(Q.shape[1]):
            for i in range(Q.shape[2]):
                js = [j for j in range(K.shape[2]) if allowed[b, h, i, j]]
                scores = {j: sum(Q[b, h, i, c] * K[b, h, j, c] for c in range(Q.shape[3])) / math.sqrt(Q.shape[3])
                          for j in js}
                top = max(scores.values(), default=0.0)
                z = sum(math.exp(s - top) for s in scores.values())
                for j in js:
                    a = math.exp(scores[j] - top) / z
                    if keep is not None:
                        a = a * keep[b, h, i, j] / (1.0 - p)
                    Y[b, h, i] += a * V[b, h, j]
    return Y


def test_attention_matches_naive_loop(rng):
    Q, K, V = qkv(rng)
    allowed = np.ones((B, H, Tq, Tk), dtype=bool)
    allowed[0, 1] = STRUCTURE
    allowed[1, :, :, 3:] = False  # padding
    allowed[1, 0, 1] = False  # a fully masked row: Y = 0
    keep = np_(backend.device_rng().random((B, H, Tq, Tk))) >= 0.3
    Y, _ = sdpa_forward(Q, K, V, mask=backend.asarray(allowed), dropout_mask=backend.asarray(keep), dropout_p=0.3)
    assert_close(Y, naive_attention(Q, K, V, allowed, keep, 0.3), rtol=1e-12, atol=1e-14)
    assert float(np.abs(np_(Y)[1, 0, 1]).max()) == 0.0


def test_attention_course_text_formula_four_tokens():
    # course text 3.1: a_ij = exp(q_i.k_j) / sum_j exp(q_i.k_j), y_i = sum_j a_ij v_j; we add the 1/sqrt(d_k) scale
    q = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.5]]
    k = [[0.5, -1.0], [2.0, 0.0], [0.0, 0.0], [1.0, 1.0]]
    v = [[1.0, 2.0, 3.0], [0.0, -1.0, 1.0], [4.0, 0.0, 0.0], [-2.0, 1.0, 0.5]]
    dot = [[sum(a * b for a, b in zip(qi, kj, strict=True)) / math.sqrt(2) for kj in k] for qi in q]
    a = [[math.exp(s) / sum(math.exp(t) for t in row) for s in row] for row in dot]
    y = [[sum(a[i][j] * v[j][c] for j in range(4)) for c in range(3)] for i in range(4)]
    Q, K, V = (backend.asarray(m, dtype="float64") for m in (q, k, v))
    Y, cache = sdpa_forward(Q, K, V)
    assert_close(Y, y, rtol=1e-13)
    assert_close(cache.P, a, rtol=1e-13)
    Y_unscaled, _ = sdpa_forward(Q * math.sqrt(2), K, V)  # the course's unscaled formula: Q * sqrt(d_k)
    a0 = [[math.exp(sum(x * z for x, z in zip(qi, kj, strict=True))) for kj in k] for qi in q]
    y0 = [[sum(a0[i][j] / sum(a0[i]) * v[j][c] for j in range(4)) for c in range(3)] for i in range(4)]
    assert_close(Y_unscaled, y0, rtol=1e-13)


def test_fully_masked_row_gives_zeros_not_nan(rng):
    Q, K, V = qkv(rng)
    allowed = np.ones((Tq, Tk), dtype=bool)
    allowed[1] = False
    for mask in (backend.asarray(allowed), backend.asarray(np.where(allowed, 0.0, -np.inf))):  # bool and float
        Y, cache = sdpa_forward(Q, K, V, mask=mask)
        dQ, dK, dV = sdpa_backward(randn(rng, B, H, Tq, d_v), cache)
        for a in (Y, cache.P, dQ, dK, dV):
            assert np.isfinite(np_(a)).all()
        assert float(np.abs(np_(Y)[:, :, 1]).max()) == 0.0
        assert float(np.abs(np_(cache.P)[:, :, 1]).max()) == 0.0
        assert float(np.abs(np_(dQ)[:, :, 1]).max()) == 0.0
    # a large negative number instead of -inf shifts the whole row: it still sums to 1 (as in torch), not zeros
    _, cache = sdpa_forward(Q, K, V, mask=backend.asarray(np.where(allowed, 0.0, -1e9)))
    assert_close(np_(cache.P)[:, :, 1].sum(-1), np.ones((B, H)), rtol=1e-12)


def test_causal_outputs_ignore_future_tokens(rng):
    Q, K, V = qkv(rng, 4, 4)
    Y, _ = sdpa_forward(Q, K, V, mask=causal_mask(4, 4))
    K2, V2 = np_(K).copy(), np_(V).copy()
    K2[..., 2:, :] += 10.0  # change tokens 2 and 3
    V2[..., 2:, :] -= 7.0
    Y2, _ = sdpa_forward(Q, backend.asarray(K2), backend.asarray(V2), mask=causal_mask(4, 4))
    assert_close(np_(Y2)[..., :2, :], np_(Y)[..., :2, :], rtol=0)  # positions 0, 1 see nothing that changed
    assert not np.allclose(np_(Y2)[..., 2:, :], np_(Y)[..., 2:, :])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_huge_logits_no_nan(rng, dtype):
    Q, K, V = qkv(rng, dtype=dtype)
    Q, K = Q * 70.0, K * 70.0  # scores ~ 70 * 70 * 2 / 2 ~ 1e4
    Y, cache = sdpa_forward(Q, K, V, mask=causal_mask(Tq, Tk))
    assert float(np.abs(np_(Q) @ np_(K).swapaxes(-1, -2)).max()) / 2.0 > 5e3
    grads = sdpa_backward(randn(rng, B, H, Tq, d_v, dtype=dtype), cache)
    for a in (Y, cache.P, *grads):
        assert np.isfinite(np_(a)).all()
    assert_close(np_(cache.P).sum(-1), np.ones((B, H, Tq)), rtol=1e-5)


def test_float32_in_float32_out(rng):
    Q, K, V = qkv(rng, dtype="float32")
    additive = backend.asarray(np.where(STRUCTURE, 0.0, -np.inf))  # a float64 mask must not upcast
    keep = backend.device_rng().random((B, H, Tq, Tk), dtype="float32") >= 0.3
    Y, cache = sdpa_forward(Q, K, V, mask=additive, dropout_mask=keep, dropout_p=0.3)
    grads = sdpa_backward(randn(rng, B, H, Tq, d_v, dtype="float32"), cache)
    assert Y.dtype == np.float32 and cache.P.dtype == np.float32
    assert all(g.dtype == np.float32 for g in grads)


def test_backward_does_not_mutate_dy_or_cache(rng):
    Q, K, V = qkv(rng)
    keep = backend.device_rng().random((B, H, Tq, Tk)) >= 0.3
    _, cache = sdpa_forward(Q, K, V, mask=causal_mask(Tq, Tk), dropout_mask=keep, dropout_p=0.3)
    dY = randn(rng, B, H, Tq, d_v)
    before = [np_(a).copy() for a in (dY, cache.Q, cache.K, cache.V, cache.P, cache.dropout_mask)]
    sdpa_backward(dY, cache)
    for a, b in zip((dY, cache.Q, cache.K, cache.V, cache.P, cache.dropout_mask), before, strict=True):
        np.testing.assert_array_equal(np_(a), b)


def test_padding_invariance(rng):
    Q, K, V = qkv(rng)
    Y, _ = sdpa_forward(Q, K, V)
    K2 = np.concatenate([np_(K), 100.0 * rng.standard_normal((B, H, 2, d_k))], axis=2)  # two padded keys
    V2 = np.concatenate([np_(V), rng.standard_normal((B, H, 2, d_v))], axis=2)
    mask = build_attention_mask(B, Tq, Tk + 2, key_padding_mask=padding([Tk, Tk], Tk + 2))
    Y2, _ = sdpa_forward(Q, backend.asarray(K2), backend.asarray(V2), mask=mask)
    assert_close(Y2, Y, rtol=1e-13, atol=1e-15)


def test_causal_mask_values():
    np.testing.assert_array_equal(np_(causal_mask(3, 3)), np.tril(np.ones((3, 3), dtype=bool)))
    # Tk > Tq: the 2 queries are the last 2 of 4 positions (cached decoding)
    np.testing.assert_array_equal(np_(causal_mask(2, 4)), [[1, 1, 1, 0], [1, 1, 1, 1]])
    np.testing.assert_array_equal(np_(causal_mask(1, 4)), [[1, 1, 1, 1]])


def test_build_attention_mask_conventions():
    assert build_attention_mask(B, Tq, Tk) is None
    kpm = padding([5, 3], Tk)  # True = padding
    m = np_(build_attention_mask(B, Tq, Tk, key_padding_mask=kpm))
    assert m.shape == (B, 1, Tq, Tk) and m.dtype == bool
    assert m[0].all() and not m[1, :, :, 3:].any() and m[1, :, :, :3].all()  # True in result = may attend
    m = np_(build_attention_mask(B, Tq, Tk, backend.asarray(STRUCTURE), kpm, causal=True))
    expected = STRUCTURE & np_(causal_mask(Tq, Tk)) & ~np_(kpm)[:, None, None, :]
    np.testing.assert_array_equal(m, expected)
    per_head = np.ones((B, 3, Tq, Tk), dtype=bool)
    per_head[0, 2, 0, 0] = False
    m = np_(build_attention_mask(B, Tq, Tk, backend.asarray(per_head), kpm, n_heads=3))
    assert m.shape == (B, 3, Tq, Tk) and not m[0, 2, 0, 0] and m[0, 1, 0, 0]
    batch = np.ones((B, Tq, Tk), dtype=bool)
    batch[1, 2, 4] = False
    m = np_(build_attention_mask(B, Tq, Tk, backend.asarray(batch)))
    assert m.shape == (B, 1, Tq, Tk) and m.sum() == B * Tq * Tk - 1 and not m[1, 0, 2, 4]


def test_build_attention_mask_float_stays_additive():
    additive = np.linspace(-1.0, 1.0, Tq * Tk).reshape(Tq, Tk)
    m = np_(build_attention_mask(B, Tq, Tk, backend.asarray(additive), padding([5, 3], Tk), causal=True))
    assert m.shape == (B, 1, Tq, Tk) and m.dtype == np.float64
    hidden = ~(np_(causal_mask(Tq, Tk)) & (np.arange(Tk) < np.array([5, 3])[:, None, None, None]))
    assert np.isneginf(m[hidden]).all()
    np.testing.assert_array_equal(m[~hidden], np.broadcast_to(additive, m.shape)[~hidden])


def test_bad_masks_and_shapes(rng):
    with pytest.raises(ValueError, match=r"key_padding_mask: expected shape \(B, Tk\) = \(2, 5\), got \(2, 4\)"):
        build_attention_mask(B, Tq, Tk, key_padding_mask=padding([4, 4], 4))
    with pytest.raises(ValueError, match=r"attn_mask: expected shape \(Tq, Tk\) = \(3, 5\).*got \(5, 3\)"):
        build_attention_mask(B, Tq, Tk, backend.asarray(STRUCTURE.T))
    with pytest.raises(ValueError, match=r"\(B, n_heads, Tq, Tk\) = \(2, 2, 3, 5\), got \(2, 3, 3, 5\)"):
        build_attention_mask(B, Tq, Tk, backend.asarray(np.ones((B, 3, Tq, Tk), dtype=bool)), n_heads=2)
    with pytest.raises(TypeError, match="attention_mask == 0"):
        build_attention_mask(B, Tq, Tk, key_padding_mask=backend.asarray(np.ones((B, Tk), dtype=np.int64)))
    with pytest.raises(TypeError, match="bool .* or float"):
        build_attention_mask(B, Tq, Tk, backend.asarray(STRUCTURE.astype(np.int64)))
    Q, K, V = qkv(rng)
    with pytest.raises(ValueError, match=r"broadcastable to \(..., Tq, Tk\) = \(2, 2, 3, 5\), got \(3, 4\)"):
        sdpa_forward(Q, K, V, mask=backend.asarray(np.ones((3, 4), dtype=bool)))
    with pytest.raises(ValueError, match=r"got Q \(2, 2, 3, 4\), K \(2, 2, 5, 3\)"):
        sdpa_forward(Q, V, V)
    with pytest.raises(ValueError, match="needs dropout_mask"):
        sdpa_forward(Q, K, V, dropout_p=0.1)
    with pytest.raises(ValueError, match=r"dropout_p must be in \[0, 1\), got 1.0"):
        sdpa_forward(Q, K, V, dropout_mask=backend.asarray(np.ones((Tq, Tk), dtype=bool)), dropout_p=1.0)


@pytest.mark.torch
@pytest.mark.parametrize("kind", ["bool", "float"])
def test_attention_torch_parity(rng, kind):
    torch = require("torch")
    Q, K, V = qkv(rng)
    mask = build_attention_mask(B, Tq, Tk, backend.asarray(STRUCTURE), padding([5, 4], Tk))  # no fully masked row
    if kind == "float":
        mask = backend.asarray(np.where(np_(mask), 0.0, -np.inf) + rng.standard_normal((B, 1, Tq, Tk)))
    dY = randn(rng, B, H, Tq, d_v)
    Y, cache = sdpa_forward(Q, K, V, mask=mask)
    dQ, dK, dV = sdpa_backward(dY, cache)
    Qt, Kt, Vt = (torch.from_numpy(np_(a)).requires_grad_() for a in (Q, K, V))
    Yt = torch.nn.functional.scaled_dot_product_attention(Qt, Kt, Vt, attn_mask=torch.from_numpy(np_(mask)))
    Yt.backward(torch.from_numpy(np_(dY)))
    for ours, theirs in ((Y, Yt.detach()), (dQ, Qt.grad), (dK, Kt.grad), (dV, Vt.grad)):
        assert_close(ours, theirs.numpy(), rtol=1e-10, atol=1e-13)
