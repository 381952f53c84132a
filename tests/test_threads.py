"""The host's threads: ``backend.for_each_block``, ``row_blocks``, ``matmul`` and the layers that use them.

The promise under test: spreading work over threads changes the time, never the numbers. Every layer
that runs its lines block by block on several threads gives the same bits with one thread and with
two, on inputs with several blocks (the block size is shrunk here), ragged last blocks, an odd batch,
unequal query and key lengths, masks and dropout.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from minitransformer import backend
from minitransformer.nn import batch_split
from minitransformer.nn.activations import gelu_backward, gelu_forward
from minitransformer.nn.attention import (
    AttentionCache,
    SplitAttentionCache,
    build_attention_mask,
    scaled_dot_product_attention_backward,
    scaled_dot_product_attention_forward,
)
from minitransformer.nn.layernorm import layernorm_backward, layernorm_forward
from minitransformer.nn.multihead import MultiHeadAttention
from minitransformer.nn.softmax import log_softmax_forward
from minitransformer.optim import AdamW


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 64 entries and matmuls split from 1 multiply up: small arrays take the threaded paths."""
    monkeypatch.setattr(backend, "_HOST_BLOCK", 64)
    monkeypatch.setattr(backend, "_SPLIT_MATMUL_MIN", 1)


def _with_threads(n, fn):
    with threadpool_limits(n, user_api="blas"):
        return fn()


def _same_bits(fn):
    """fn() with one thread and with two: the outputs (a tuple of arrays) must be equal bit for bit."""
    one, two = _with_threads(1, fn), _with_threads(2, fn)
    assert len(one) == len(two)
    for a, b in zip(one, two, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    return two


def test_host_threads_follows_the_blas_limit():
    with threadpool_limits(1, user_api="blas"):
        assert backend.host_threads() == 1
    with threadpool_limits(2, user_api="blas"):
        assert backend.host_threads() == 2


def test_for_each_block_runs_every_block_once_on_several_threads():
    seen, names = [], set()

    def body(i):
        seen.append(i)
        names.add(threading.current_thread().name)

    with threadpool_limits(2, user_api="blas"):
        backend.for_each_block(body, [(i,) for i in range(7)])
    assert sorted(seen) == list(range(7))
    assert len(names) == 2  # the caller and one helper
    seen.clear()
    with threadpool_limits(1, user_api="blas"):
        backend.for_each_block(body, [(i,) for i in range(7)])
    assert seen == list(range(7))  # one thread: in order, in the caller


def test_for_each_block_inside_a_block_runs_in_turn_and_blas_has_one_thread():
    inner = []

    def body(i):
        inner.append(backend.host_threads())  # BLAS is held to one thread while blocks run

    with threadpool_limits(2, user_api="blas"):
        backend.for_each_block(body, [(i,) for i in range(4)])
        assert backend.host_threads() == 2  # restored afterwards
    assert inner == [1, 1, 1, 1]


def test_for_each_block_raises_a_helpers_error_after_every_helper_is_done():
    done = []

    def body(i):
        if i == 3:
            raise KeyError("block 3")
        done.append(i)

    with threadpool_limits(2, user_api="blas"), pytest.raises(KeyError, match="block 3"):
        backend.for_each_block(body, [(i,) for i in range(4)])
    assert sorted(done) == [0, 1, 2]


def test_helpers_see_the_callers_errstate():
    seen = []

    def body(i):
        seen.append(np.geterr()["over"])

    with threadpool_limits(2, user_api="blas"), np.errstate(over="raise"):
        backend.for_each_block(body, [(i,) for i in range(4)])
    assert seen == ["raise"] * 4


def test_helper_pool_is_remade_after_a_fork(monkeypatch):
    pool = backend._helper_pool()
    monkeypatch.setattr(backend, "_POOL", (-1, pool))  # as a forked child sees its parent's pool
    assert backend._helper_pool() is not pool


def test_row_blocks_are_views_of_whole_rows(monkeypatch):
    monkeypatch.setattr(backend, "_HOST_BLOCK", 8)
    a, b = np.arange(15.0).reshape(5, 3), np.zeros((5, 1))
    blocks = list(backend.row_blocks(a, b))
    assert [x.shape for x, _ in blocks] == [(2, 3), (2, 3), (1, 3)]  # 8 // 3 = 2 rows, a ragged last block
    for x, y in blocks:
        y += x.sum(axis=1, keepdims=True)  # written through to b
    np.testing.assert_array_equal(b[:, 0], a.sum(axis=1))
    (whole,) = backend.row_blocks(np.zeros((2, 3)))  # fits in one block: the array itself
    assert whole[0].shape == (2, 3)
    with pytest.raises(ValueError, match="one number of rows"):
        list(backend.row_blocks(a, np.zeros((4, 3))))
    with pytest.raises(ValueError, match="2-D"):
        list(backend.row_blocks(np.zeros(5)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_split_over_threads_equals_one_call(small_blocks, rng, dtype):
    a = rng.standard_normal((7, 5)).astype(dtype)  # 7 rows: runs of 3 and 4
    b = rng.standard_normal((5, 6)).astype(dtype)
    for left in (a, rng.standard_normal((5, 7)).astype(dtype).T):  # contiguous, and a transposed view
        with threadpool_limits(1, user_api="blas"):
            expected = left @ b
        got = _same_bits(lambda left=left: (backend.matmul(left, b),))[0]
        np.testing.assert_array_equal(got, expected)
        bias = rng.standard_normal(6).astype(dtype)  # added by each thread to its rows: a @ b + bias, same bits
        got = _same_bits(lambda left=left, bias=bias: (backend.matmul(left, b, add=bias),))[0]
        np.testing.assert_array_equal(got, expected + bias)
    np.testing.assert_array_equal(backend.matmul(a[0], b), a[0] @ b)  # not 2-D: plain a @ b
    np.testing.assert_array_equal(backend.matmul(a[0], b, add=b[0]), a[0] @ b + b[0])


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_same_bits_on_one_and_two_threads(small_blocks, rng, approximate):
    x = rng.standard_normal((3, 5, 43)).astype(np.float32)  # 645 entries: 11 blocks, a ragged last one
    dy = rng.standard_normal(x.shape).astype(np.float32)

    def run():
        y, cache = gelu_forward(x, approximate)
        y_no_t, _ = gelu_forward(x, approximate, keep_t=False)
        return y, y_no_t, cache.t, gelu_backward(dy, cache)

    y, y_no_t, _, _ = _same_bits(run)
    np.testing.assert_array_equal(y, y_no_t)


def test_layernorm_same_bits_on_one_and_two_threads(small_blocks, rng):
    x = rng.standard_normal((3, 7, 10))  # 21 rows of 10: blocks of 6 rows, a ragged last one
    gamma, beta = rng.standard_normal(10) + 1.0, rng.standard_normal(10)  # non-unit gain
    dy = rng.standard_normal(x.shape)

    def run():
        y, cache = layernorm_forward(x, gamma, beta)
        return (y, cache.x_hat, cache.rstd, *layernorm_backward(dy, cache))

    _same_bits(run)


def test_log_softmax_same_bits_on_one_and_two_threads(small_blocks, rng):
    x = rng.standard_normal((5, 3, 9)).astype(np.float32)
    x[0, 0] *= 1e4  # large logits: the row max keeps exp finite

    def run():
        y, cache = log_softmax_forward(x)
        return y, cache.P

    y, P = _same_bits(run)
    assert np.isfinite(y).all() and np.allclose(P.sum(-1), 1.0)


@pytest.mark.parametrize("run_scores, run_sizes", [(48, [1, 1, 1]), (100, [2, 1]), (1000, [2, 1])])
def test_attention_same_bits_on_one_and_two_threads(small_blocks, monkeypatch, rng, run_scores, run_sizes):
    monkeypatch.setattr(batch_split, "_RUN_SCORES", run_scores)  # an example's scores are 2 * 4 * 6 = 48 entries
    B, h, Tq, Tk, d = 3, 2, 4, 6, 5  # odd batch: runs of 1 example, or of 2 and a ragged 1; Tq != Tk
    Q, K, V = (rng.standard_normal((B, h, T, d)) for T in (Tq, Tk, Tk))
    dY = rng.standard_normal((B, h, Tq, d))
    pad = np.arange(Tk)[None, :] >= np.array([6, 3, 5])[:, None]  # (B, Tk) True = padding
    mask = build_attention_mask(B, Tq, Tk, key_padding_mask=pad, causal=True)  # (B, 1, Tq, Tk)
    keep = rng.random((B, h, Tq, Tk)) > 0.25

    def run():
        Y, cache = scaled_dot_product_attention_forward(Q, K, V, mask, keep, 0.25)
        return (Y, cache.P, *scaled_dot_product_attention_backward(dY, cache))

    _same_bits(run)
    with threadpool_limits(2, user_api="blas"):
        _, split = scaled_dot_product_attention_forward(Q, K, V, mask, keep, 0.25)
    with threadpool_limits(1, user_api="blas"):
        _, whole = scaled_dot_product_attention_forward(Q, K, V, mask, keep, 0.25)
        # a split cache goes backward with any number of threads, here one
        split_grads = scaled_dot_product_attention_backward(dY, split)
        whole_grads = scaled_dot_product_attention_backward(dY, whole)
    assert isinstance(split, SplitAttentionCache) and isinstance(whole, AttentionCache)
    assert [r.stop - r.start for r in split.rows] == run_sizes
    np.testing.assert_array_equal(split.P, whole.P)  # put together on demand
    assert (split.dropout_scale, split.scale) == (whole.dropout_scale, whole.scale)
    assert split.dropout_mask is keep and split.Q is Q
    for a, b in zip(split_grads, whole_grads, strict=True):
        np.testing.assert_array_equal(a, b)


def test_attention_errors_name_the_whole_arrays_on_two_threads(rng):
    Q = rng.standard_normal((4, 2, 3, 5))
    with threadpool_limits(2, user_api="blas"):
        with pytest.raises(ValueError, match=r"= \(4, 2, 3, 3\), got \(2, 1, 3, 3\)"):
            scaled_dot_product_attention_forward(Q, Q, Q, mask=np.ones((2, 1, 3, 3), dtype=bool))
        with pytest.raises(ValueError, match="needs dropout_mask"):
            scaled_dot_product_attention_forward(Q, Q, Q, dropout_p=0.5)


def test_multihead_weights_and_grads_same_on_one_and_two_threads(small_blocks, rng):
    x = rng.standard_normal((3, 5, 8)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)

    def run():
        backend.manual_seed(0)
        mha = MultiHeadAttention(8, 2)
        y, weights = mha(x, need_weights=True, causal=True)
        dx = mha.backward(dy)
        return y, weights, dx, mha.W_q.grad, mha.W_o.grad

    _, weights, *_ = _same_bits(run)
    assert weights.shape == (3, 2, 5, 5)


def test_adamw_same_bits_on_one_and_two_threads(small_blocks, rng):
    from minitransformer.nn.module import Parameter

    start = rng.standard_normal((13, 11)).astype(np.float32)  # 143 entries: 3 blocks of 64, the last ragged
    grads = [rng.standard_normal(start.shape).astype(np.float32) for _ in range(3)]

    def run():
        p = Parameter(start.copy())
        opt = AdamW([p], lr=1e-2, weight_decay=0.1)
        for g in grads:
            p.grad[...] = g
            opt.step()
        return (p.data,)

    _same_bits(run)


def test_malloc_settings_unless_the_user_chose(monkeypatch):
    """One arena, arrays from the heap, freed memory kept: three mallopt calls, each unless its variable is set."""
    import ctypes

    calls = []

    class FakeLibc:
        def mallopt(self, param, value):
            calls.append((param, value))

    monkeypatch.setattr(ctypes, "CDLL", lambda name: FakeLibc())
    for variable in ("MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"):
        monkeypatch.delenv(variable, raising=False)
    backend._malloc_settings()
    linux = backend.sys.platform.startswith("linux")
    assert calls == ([(-8, 1), (-3, 32 << 20), (-1, 256 << 20)] if linux else [])
    calls.clear()
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "0")
    backend._malloc_settings()
    assert calls == ([(-3, 32 << 20)] if linux else [])  # the user's settings stand


@pytest.mark.parametrize("shape", [(3, 5, 7), (2, 3, 64, 64), (101,)])
def test_dropout_masks_same_draws_on_one_and_two_threads(small_blocks, shape):
    def run():
        backend.manual_seed(3)
        backend.device_rng().random(1, dtype=np.float32)  # leaves half of a raw draw buffered
        mask = backend.dropout_keep_mask(shape, 0.3)
        after = backend.device_rng().random(4, dtype=np.float32)  # the buffered half is used first
        return mask, after, backend.device_rng().bit_generator.random_raw(2)

    mask, *_ = _same_bits(run)
    assert mask.shape == shape and mask.dtype == bool


def test_attention_runs_give_every_thread_a_run(monkeypatch):
    """Runs are capped by the cache budget, and there are never fewer runs than threads (up to one per example)."""
    Q = np.zeros((32, 4, 64, 8), np.float32)  # 16K score entries per example: 16 examples fit 2^18
    monkeypatch.setattr(backend, "host_threads", lambda: 2)
    assert [r.stop - r.start for r in batch_split.batch_runs(Q, Q, Q)] == [16, 16]
    monkeypatch.setattr(backend, "host_threads", lambda: 4)
    assert [r.stop - r.start for r in batch_split.batch_runs(Q, Q, Q)] == [8, 8, 8, 8]
    big = np.zeros((5, 12, 128, 8), np.float32)  # 196K entries per example: one example per run
    assert [r.stop - r.start for r in batch_split.batch_runs(big, big, big)] == [1] * 5
    monkeypatch.setattr(backend, "host_threads", lambda: 1)
    assert batch_split.batch_runs(Q, Q, Q) == [slice(None)]  # one thread: the whole batch, one call
