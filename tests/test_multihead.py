import math

import numpy as np
import pytest

from minitransformer import backend
from minitransformer.gradcheck import check_module, check_op, numeric_grad
from minitransformer.nn.attention import causal_mask
from minitransformer.nn.multihead import (
    MultiHeadAttention,
    merge_heads,
    multi_head_attention_backward,
    multi_head_attention_forward,
    split_heads,
)
from tests.conftest import assert_close, randn, require

B, Tq, Tk, d_model = 2, 3, 5, 6
STRUCTURE = np.array([[1, 1, 0, 1, 0],  # a structured (Tq, Tk) attn_mask, True = may attend
                      [0, 1, 1, 0, 1],
                      [1, 0, 1, 1, 1]], dtype=bool)


def np_(x):
    return backend.to_numpy(x)


def padding(lengths, T):
    """key_padding_mask (len(lengths), T): True = padding, after each sequence's length."""
    return backend.asarray(np.arange(T)[None, :] >= np.asarray(lengths)[:, None])


def make_mha(n_heads=2, dropout=0.0, bias=True, seed=3):
    """A float64 module with random (non-zero) biases, so bias handling is exercised."""
    backend.manual_seed(seed)
    mha = MultiHeadAttention(d_model, n_heads, dropout=dropout, bias=bias).to(dtype="float64")
    for name, p in mha.named_parameters():
        if name.startswith("b_"):
            p.data[...] = backend.asarray(backend.host_rng(seed).standard_normal(p.shape))
    return mha


def assert_gradcheck(r, mha=None, key_bias="b_k"):
    """All relative errors < 1e-6, except the key bias, checked absolutely.

    b_k's true gradient is exactly 0: it adds q_i . b_k to every score of row i,
    and softmax ignores a constant added to a whole row. Its relative error
    would compare two rounding noises, so we check that the analytic gradient is ~0.
    """
    errors = {k: v for k, v in r.errors.items() if k != key_bias}
    assert max(errors.values()) < 1e-6, r
    if mha is not None and mha.b_k is not None:
        assert float(np.abs(np_(mha.b_k.grad)).max()) < 1e-12


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_mha_gradcheck_self_attention_causal_padding(rng, dropout):
    mha = make_mha(n_heads=3, dropout=dropout)
    x = randn(rng, B, 4, d_model)
    r = check_module(mha, (x,), kwargs={"key_padding_mask": padding([4, 2], 4), "causal": True})
    assert set(r.errors) == {"arg0", "W_q", "b_q", "W_k", "b_k", "W_v", "b_v", "W_o", "b_o"}
    assert_gradcheck(r, mha)


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_mha_gradcheck_cross_attention_padding_attn_mask(rng, dropout):
    mha = make_mha(dropout=dropout)
    x, memory = randn(rng, B, Tq, d_model), randn(rng, B, Tk, d_model)
    kwargs = {"key_padding_mask": padding([5, 3], Tk), "attn_mask": backend.asarray(STRUCTURE)}
    r = check_module(mha, (x, memory), kwargs=kwargs)
    assert {"arg0", "arg1"} <= set(r.errors)
    assert_gradcheck(r, mha)


def test_mha_gradcheck_three_inputs_per_head_mask_no_bias(rng):
    mha = make_mha(n_heads=3, dropout=0.3, bias=False)
    q, k, v = randn(rng, B, Tq, d_model), randn(rng, B, Tk, d_model), randn(rng, B, Tk, d_model)
    per_head = np.ones((B, 3, Tq, Tk), dtype=bool)
    per_head[0, 1] = STRUCTURE
    per_head[1, 2, 1] = False  # a fully masked row
    r = check_module(mha, (q, k, v), kwargs={"attn_mask": backend.asarray(per_head), "causal": True})
    assert set(r.errors) == {"arg0", "arg1", "arg2", "W_q", "W_k", "W_v", "W_o"}
    assert_gradcheck(r)


def test_mha_functional_gradcheck(rng):
    q, k, v = randn(rng, B, Tq, d_model), randn(rng, B, Tk, d_model), randn(rng, B, Tk, d_model)
    weights = [randn(rng, *shape) for shape in [(d_model, d_model), (d_model,)] * 4]
    keep = backend.device_rng().random((B, 2, Tq, Tk)) >= 0.3
    mask = backend.asarray(STRUCTURE & np_(causal_mask(Tq, Tk)))
    r = check_op(multi_head_attention_forward, multi_head_attention_backward, (q, k, v, *weights, 2),
                 kwargs={"mask": mask, "dropout_mask": keep, "dropout_p": 0.3})
    assert len(r.errors) == 11
    assert_gradcheck(r, key_bias="arg6")  # arg6 = b_k


def test_key_bias_gets_zero_gradient(rng):
    mha = make_mha()
    x, memory = randn(rng, B, Tq, d_model), randn(rng, B, Tk, d_model)
    dY = randn(rng, B, Tq, d_model)
    mha(x, memory, key_padding_mask=padding([5, 3], Tk))
    mha.backward(dY)
    num = numeric_grad(lambda: float((mha(x, memory, key_padding_mask=padding([5, 3], Tk)) * dY).sum()), mha.b_k.data)
    assert float(np.abs(np_(num)).max()) < 1e-8
    assert float(np.abs(np_(mha.b_k.grad)).max()) < 1e-12
    assert float(np.abs(np_(mha.b_q.grad)).max()) > 1e-3  # the other biases do learn


def test_mha_one_gradient_per_input(rng):
    mha = make_mha()
    x, dY = randn(rng, B, Tq, d_model), randn(rng, B, Tq, d_model)
    y1 = mha(x)
    dx = mha.backward(dY)
    y3 = mha(x, x, x)
    dq, dk, dv = mha.backward(dY)
    assert_close(y1, y3, rtol=0)
    assert_close(dx, dq + dk + dv, rtol=1e-14)  # forward(x): the three uses of x add up
    memory = randn(rng, B, Tk, d_model)
    dY2 = mha(x, memory)
    grads = mha.backward(dY)
    mha(x, memory, memory)
    dq, dk, dv = mha.backward(dY)
    assert len(grads) == 2 and grads[1].shape == (B, Tk, d_model) and dY2.shape == (B, Tq, d_model)
    assert_close(grads[1], dk + dv, rtol=1e-14)


def test_mha_fused_qkv_projection_matches_three_projections(rng):
    """x given once runs x [W_q | W_k | W_v] as one matmul; copies of x take the three-matmul path: same numbers."""
    mha = make_mha()
    x, dY = randn(rng, B, Tq, d_model), randn(rng, B, Tq, d_model)
    y_fused = mha(x, causal=True)
    dx = mha.backward(dY)
    fused = {n: np_(p.grad).copy() for n, p in mha.named_parameters()}
    mha.zero_grad()
    y_sep = mha(x, x.copy(), x.copy(), causal=True)
    dq, dk, dv = mha.backward(dY)
    assert_close(y_fused, y_sep, rtol=1e-13, atol=1e-15)
    assert_close(dx, dq + dk + dv, rtol=1e-13, atol=1e-15)
    for n, p in mha.named_parameters():
        assert_close(fused[n], p.grad, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("bias", [True, False])
def test_mha_fused_functional_gradcheck(rng, bias):
    """fused=True: one Q/K/V matmul forward and backward; dquery is x's whole gradient, dkey and dvalue None."""
    T = 4
    x = randn(rng, B, T, d_model)
    shapes = [(d_model, d_model), (d_model,)] * 4
    weights = [randn(rng, *shape) if bias or len(shape) == 2 else None for shape in shapes]
    keep = backend.device_rng().random((B, 3, T, T)) >= 0.3
    mask = backend.asarray(np_(causal_mask(T, T))[None, None] & ~np_(padding([4, 2], T))[:, None, None, :])

    def forward(x, *w):
        return multi_head_attention_forward(x, x, x, *w, 3, mask=mask, dropout_mask=keep, dropout_p=0.3, fused=True)

    def backward(dY, cache):
        dx, dkey, dvalue, *dw = multi_head_attention_backward(dY, cache)
        assert dkey is None and dvalue is None
        return (dx, *(g for g, w in zip(dw, weights, strict=True) if w is not None))

    r = check_op(forward, backward, (x, *weights), name="mha_fused")
    assert len(r.errors) == (9 if bias else 5)
    assert_gradcheck(r, key_bias="arg4")  # args: x, W_q, b_q, W_k, b_k, ...


def test_mha_fused_needs_one_input_array(rng):
    x = randn(rng, B, Tq, d_model)
    weights = [randn(rng, *shape) for shape in [(d_model, d_model), (d_model,)] * 4]
    with pytest.raises(ValueError, match="fused=True needs one array"):
        multi_head_attention_forward(x, x.copy(), x, *weights, 2, fused=True)
    with pytest.raises(ValueError, match="all three biases or none"):
        multi_head_attention_forward(x, x, x, *weights[:5], None, *weights[6:], 2, fused=True)  # b_v None


def naive_mha(mha, query, key, value, allowed):
    """Per batch, per head, per query: the paper's formulas with Python loops."""
    W = {n: np_(p.data) for n, p in mha.named_parameters()}
    query, key, value = np_(query), np_(key), np_(value)
    d_k = mha.d_k
    Y = np.zeros(query.shape)
    for b in range(query.shape[0]):
        for i in range(query.shape[1]):
            heads = []
            for h in range(mha.n_heads):
                cols = slice(h * d_k, (h + 1) * d_k)
                q = (query[b, i] @ W["W_q"] + W["b_q"])[cols]
                js = [j for j in range(key.shape[1]) if allowed[b, h, i, j]]
                scores = [q @ (key[b, j] @ W["W_k"] + W["b_k"])[cols] / math.sqrt(d_k) for j in js]
                top = max(scores, default=0.0)
                a = [math.exp(s - top) / sum(math.exp(t - top) for t in scores) for s in scores]
                v = [(value[b, j] @ W["W_v"] + W["b_v"])[cols] for j in js]
                heads.append(sum((a_j * v_j for a_j, v_j in zip(a, v, strict=True)), np.zeros(d_k)))
            Y[b, i] = np.concatenate(heads) @ W["W_o"] + W["b_o"]
    return Y


def test_mha_matches_naive_loop(rng):
    mha = make_mha(n_heads=3)
    q, k, v = randn(rng, B, Tq, d_model), randn(rng, B, Tk, d_model), randn(rng, B, Tk, d_model)
    per_head = np.ones((B, 3, Tq, Tk), dtype=bool)
    per_head[1, 0] = STRUCTURE
    per_head[0, 2, 2] = False  # fully masked row: that head contributes 0
    kpm = padding([5, 2], Tk)
    Y = mha(q, k, v, key_padding_mask=kpm, attn_mask=backend.asarray(per_head))
    allowed = per_head & ~np_(kpm)[:, None, None, :]
    assert_close(Y, naive_mha(mha, q, k, v, allowed), rtol=1e-12, atol=1e-14)


def test_split_merge_heads_inverse(rng):
    X = randn(rng, B, Tq, d_model)
    H = split_heads(X, 3)
    assert H.shape == (B, 3, Tq, 2)
    assert_close(H[:, 1], np_(X)[:, :, 2:4], rtol=0)  # head 1 owns features 2..3
    assert_close(merge_heads(H), X, rtol=0)


def test_mha_fully_masked_row(rng):
    mha = make_mha()
    x, memory = randn(rng, B, Tq, d_model), randn(rng, B, Tk, d_model)
    allowed = np.ones((Tq, Tk), dtype=bool)
    allowed[1] = False
    Y, P = mha(x, memory, attn_mask=backend.asarray(allowed), need_weights=True)
    dx, dmem = mha.backward(randn(rng, B, Tq, d_model))
    for a in (Y, P, dx, dmem, *(p.grad for p in mha.parameters())):
        assert np.isfinite(np_(a)).all()
    assert float(np.abs(np_(P)[:, :, 1]).max()) == 0.0
    assert_close(np_(Y)[:, 1], np.broadcast_to(np_(mha.b_o.data), (B, d_model)), rtol=0)  # attention output 0
    assert float(np.abs(np_(dx)[:, 1]).max()) == 0.0


def test_mha_causal_ignores_future_tokens(rng):
    mha = make_mha()
    x = randn(rng, B, 4, d_model)
    Y = mha(x, causal=True)
    x2 = np_(x).copy()
    x2[:, 2:] += rng.standard_normal((B, 2, d_model))
    Y2 = mha(backend.asarray(x2), causal=True)
    assert_close(np_(Y2)[:, :2], np_(Y)[:, :2], rtol=0)
    assert not np.allclose(np_(Y2)[:, 2:], np_(Y)[:, 2:])


def test_mha_huge_logits_no_nan(rng):
    mha = MultiHeadAttention(d_model, 2)
    x = randn(rng, B, 4, d_model, dtype="float32") * 300.0  # scores ~ 1e4
    Y, P = mha(x, causal=True, need_weights=True)
    Q = np_(x) @ np_(mha.W_q.data)
    assert float(np.abs(Q[:, :, :3] @ (np_(x) @ np_(mha.W_k.data))[:, :, :3].swapaxes(1, 2)).max()) > 1e4
    dx = mha.backward(randn(rng, B, 4, d_model, dtype="float32"))
    for a in (Y, P, dx):
        assert np.isfinite(np_(a)).all()


def test_mha_grads_accumulate(rng):
    mha = make_mha(dropout=0.3)
    x, memory, dY = randn(rng, B, Tq, d_model), randn(rng, B, Tk, d_model), randn(rng, B, Tq, d_model)
    once = {}
    for step in range(2):
        backend.manual_seed(5)  # same dropout mask both times
        mha(x, memory, key_padding_mask=padding([5, 3], Tk))
        mha.backward(dY)
        if step == 0:
            once = {n: np_(p.grad).copy() for n, p in mha.named_parameters()}
    for n, p in mha.named_parameters():
        assert_close(p.grad, 2 * once[n], rtol=1e-14, atol=1e-15, err_msg=n)
    mha.zero_grad()
    assert all(float(np.abs(np_(p.grad)).max()) == 0.0 for p in mha.parameters())


def test_mha_backward_before_forward_raises():
    with pytest.raises(RuntimeError, match="before forward"):
        MultiHeadAttention(d_model, 2).backward(np.zeros((B, Tq, d_model), dtype=np.float32))


def test_mha_backward_does_not_mutate_dy(rng):
    mha = make_mha()
    mha(randn(rng, B, Tq, d_model))
    dY = randn(rng, B, Tq, d_model)
    dY0 = np_(dY).copy()
    mha.backward(dY)
    np.testing.assert_array_equal(np_(dY), dY0)


def test_mha_float32_in_float32_out(rng):
    mha = MultiHeadAttention(d_model, 2, dropout=0.1)
    x, memory = randn(rng, B, Tq, d_model, dtype="float32"), randn(rng, B, Tk, d_model, dtype="float32")
    additive = backend.asarray(np.where(STRUCTURE, 0.0, -np.inf))  # float64 mask: must not upcast
    Y, P = mha(x, memory, attn_mask=additive, need_weights=True)
    dx, dmem = mha.backward(randn(rng, B, Tq, d_model, dtype="float32"))
    assert Y.dtype == P.dtype == dx.dtype == dmem.dtype == np.float32
    assert all(p.grad.dtype == np.float32 for p in mha.parameters())


def test_mha_need_weights_rows_sum_to_one(rng):
    mha = make_mha(n_heads=3)
    x = randn(rng, B, 4, d_model)
    Y, P = mha(x, key_padding_mask=padding([4, 2], 4), causal=True, need_weights=True)
    assert P.shape == (B, 3, 4, 4)
    assert_close(np_(P).sum(-1), np.ones((B, 3, 4)), rtol=1e-13)
    assert float(np.abs(np_(P)[1, :, :, 2:]).max()) == 0.0  # padded keys get no weight
    assert float(np.abs(np.triu(np_(P), k=1)).max()) == 0.0  # nor do future keys


def test_mha_padding_invariance(rng):
    mha = make_mha()
    x, memory = randn(rng, B, Tq, d_model), randn(rng, B, Tk, d_model)
    Y = mha(x, memory)
    longer = np.concatenate([np_(memory), 50.0 * rng.standard_normal((B, 3, d_model))], axis=1)
    Y2 = mha(x, backend.asarray(longer), key_padding_mask=padding([Tk, Tk], Tk + 3))
    assert_close(Y2, Y, rtol=1e-12, atol=1e-14)


def test_mha_dropout_only_in_training(rng):
    mha = make_mha(dropout=0.5)
    x = randn(rng, B, Tq, d_model)
    assert not np.allclose(np_(mha(x)), np_(mha(x)))  # two different masks
    mha.eval()
    assert_close(mha(x), mha(x), rtol=0)
    assert_close(mha(x), make_mha(dropout=0.0)(x), rtol=0)


def test_mha_same_weights_for_same_seed():
    backend.manual_seed(7)
    a = MultiHeadAttention(d_model, 2)
    backend.manual_seed(7)
    b = MultiHeadAttention(d_model, 2)
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        np.testing.assert_array_equal(np_(p.data), np_(q.data), err_msg=n)
    bound = math.sqrt(6.0 / (2 * d_model))
    assert float(np.abs(np_(a.W_q.data)).max()) <= bound and float(np.abs(np_(a.b_q.data)).max()) == 0.0


def test_mha_bad_inputs(rng):
    with pytest.raises(ValueError, match="d_model=6 must be divisible by n_heads=4"):
        MultiHeadAttention(6, 4)
    mha = MultiHeadAttention(d_model, 2)
    x = randn(rng, B, Tq, d_model, dtype="float32")
    with pytest.raises(ValueError, match=r"expected last dimension 6, got shape \(2, 3, 5\)"):
        mha(randn(rng, B, Tq, 5, dtype="float32"))
    with pytest.raises(ValueError, match=r"expected 3 axes \(B, T, d_model\), got shape \(3, 6\)"):
        mha(randn(rng, Tq, d_model, dtype="float32"))
    with pytest.raises(TypeError, match="float64 does not match"):
        mha(randn(rng, B, Tq, d_model))
    with pytest.raises(ValueError, match=r"got \(2, 3, 6\), \(3, 5, 6\), \(3, 5, 6\)"):
        mha(x, randn(rng, 3, Tk, d_model, dtype="float32"))
    with pytest.raises(ValueError, match=r"got \(2, 3, 6\), \(2, 5, 6\), \(2, 4, 6\)"):
        mha(x, randn(rng, B, Tk, d_model, dtype="float32"), randn(rng, B, 4, d_model, dtype="float32"))
    with pytest.raises(ValueError, match="value given without key"):
        mha(x, value=x)
    with pytest.raises(ValueError, match=r"key_padding_mask: expected shape \(B, Tk\) = \(2, 3\), got \(2, 5\)"):
        mha(x, key_padding_mask=padding([5, 5], 5))
    with pytest.raises(ValueError, match=r"attn_mask: expected shape \(Tq, Tk\) = \(3, 3\).*got \(3, 5\)"):
        mha(x, attn_mask=backend.asarray(STRUCTURE))
    with pytest.raises(ValueError, match=r"\(B, n_heads, Tq, Tk\) = \(2, 2, 3, 3\), got \(2, 3, 3, 3\)"):
        mha(x, attn_mask=backend.asarray(np.ones((B, 3, Tq, Tq), dtype=bool)))
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\), got 1.0"):
        MultiHeadAttention(d_model, 2, dropout=1.0)


def torch_mha(torch, mha):
    """torch.nn.MultiheadAttention with our weights: in_proj packs W_q, W_k, W_v as (out, in) rows."""
    ref = torch.nn.MultiheadAttention(d_model, mha.n_heads, batch_first=True, dtype=torch.float64)
    t = {n: torch.from_numpy(np_(p.data)) for n, p in mha.named_parameters()}
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([t["W_q"].T, t["W_k"].T, t["W_v"].T], dim=0))
        ref.in_proj_bias.copy_(torch.cat([t["b_q"], t["b_k"], t["b_v"]]))
        ref.out_proj.weight.copy_(t["W_o"].T)
        ref.out_proj.bias.copy_(t["b_o"])
    return ref


@pytest.mark.torch
@pytest.mark.parametrize("case", ["self", "cross", "three"])
def test_mha_torch_parity(rng, case):
    torch = require("torch")
    mha = make_mha(n_heads=3)
    ref = torch_mha(torch, mha)
    if case == "self":
        inputs = (randn(rng, B, 4, d_model),)
        kpm, allowed = padding([4, 2], 4), np.broadcast_to(np_(causal_mask(4, 4)), (B, 3, 4, 4))
        Y, P = mha(*inputs, key_padding_mask=kpm, causal=True, need_weights=True)
    else:
        inputs = (randn(rng, B, Tq, d_model), randn(rng, B, Tk, d_model))
        if case == "three":
            inputs += (randn(rng, B, Tk, d_model),)
        kpm, allowed = padding([5, 4], Tk), np.ones((B, 3, Tq, Tk), dtype=bool)
        allowed[0, 1], allowed[1, 2] = STRUCTURE, STRUCTURE[::-1]  # per-head masks, no fully masked row
        Y, P = mha(*inputs, key_padding_mask=kpm, attn_mask=backend.asarray(allowed), need_weights=True)
    dY = randn(rng, *Y.shape)
    grads = mha.backward(dY)
    grads = grads if isinstance(grads, tuple) else (grads,)
    ts = [torch.from_numpy(np_(a)).requires_grad_() for a in inputs]
    q, k, v = (ts * 3)[:3] if case == "self" else (ts[0], ts[1], ts[-1])
    # torch: boolean attn_mask True = NOT allowed (invert ours), 3-D attn_mask is (B * n_heads, Tq, Tk)
    torch_mask = torch.from_numpy(~np.ascontiguousarray(allowed).reshape(-1, *allowed.shape[2:]))
    Yt, Pt = ref(q, k, v, key_padding_mask=torch.from_numpy(np_(kpm)), attn_mask=torch_mask,
                 need_weights=True, average_attn_weights=False)
    Yt.backward(torch.from_numpy(np_(dY)))
    tol = {"rtol": 1e-10, "atol": 1e-12}
    assert_close(Y, Yt.detach().numpy(), **tol)
    assert_close(P, Pt.detach().numpy(), **tol)
    for g, t in zip(grads, ts, strict=True):
        assert_close(g, t.grad.numpy(), **tol)
    Wg, bg = ref.in_proj_weight.grad.numpy(), ref.in_proj_bias.grad.numpy()
    for i, s in enumerate("qkv"):
        assert_close(getattr(mha, f"W_{s}").grad, Wg[i * d_model:(i + 1) * d_model].T, err_msg=f"W_{s}", **tol)
        assert_close(getattr(mha, f"b_{s}").grad, bg[i * d_model:(i + 1) * d_model], err_msg=f"b_{s}", **tol)
    assert_close(mha.W_o.grad, ref.out_proj.weight.grad.numpy().T, **tol)
    assert_close(mha.b_o.grad, ref.out_proj.bias.grad.numpy(), **tol)
