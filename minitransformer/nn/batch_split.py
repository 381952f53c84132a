"""Attention on runs of examples side by side: the forward and backward split over the host's threads.

Examples never meet in attention: example b's output depends only on example b's Q, K, V and mask
rows. So the batch axis can be cut into runs of examples, small enough for a run's scores to stay in
a core's cache (``batch_runs``), and the host's threads (``backend.host_threads()``) each run the whole
attention forward or backward on their share of the runs (the per-head GEMMs, the masks, the softmax)
with one BLAS thread (``backend.for_each_block``). The per-head GEMMs are too small to share across
BLAS threads: NumPy runs Q K^T and P V as B * n_heads GEMMs of
0.5-2 MFLOP each, which gained nothing from a second OpenBLAS thread on a quiet 2-core machine
(forward + backward at GPT's (16, 8, 128, 64): 52 ms with 2 threads, 55 ms with 1) and lost much on
a busy one (131 vs 67 ms), each GEMM waiting for the second thread to get a core. So even the
one-call path runs with one BLAS thread. The runs of examples are big enough to share.

Each run is computed by the same lines as the whole batch, so the numbers are the same bit for bit
(``tests/test_threads.py``). The two decorators here wrap ``scaled_dot_product_attention_forward``
and ``..._backward`` in ``attention.py``, whose code stays the one-call formula. With one thread, one
example, no batch axis, or on a GPU they call the function once, as it is.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

from .. import backend

__all__ = ["SplitAttentionCache", "split_backward_over_batch", "split_forward_over_batch"]


class SplitAttentionCache(NamedTuple):
    """The cache of an attention forward that ran on runs of examples side by side.

    Reads like an ``AttentionCache``: ``Q``, ``K``, ``V`` and ``dropout_mask`` are the whole arrays, and
    ``P``, ``dropout_scale``, ``scale`` are properties. The backward uses ``parts`` directly, so the whole
    P (B, n_heads, Tq, Tk) is only put together when someone asks for it (a heatmap, ``need_weights``).
    """

    Q: object  # (..., Tq, d_k)
    K: object  # (..., Tk, d_k)
    V: object  # (..., Tk, d_v)
    dropout_mask: object  # (..., Tq, Tk) or None, as given to the forward
    parts: list  # AttentionCache of each run of examples
    rows: list  # slice of axis 0 of each run

    @property
    def P(self):  # (..., Tq, Tk)  a new array: the runs' weights one after the other
        return backend.get_array_module(self.Q).concatenate([part.P for part in self.parts])

    @property
    def dropout_scale(self) -> float:
        return self.parts[0].dropout_scale

    @property
    def scale(self) -> float:
        return self.parts[0].scale


_RUN_SCORES = 1 << 18  # score entries per run of examples (1 MiB of float32, half a core's L2 cache here)


def batch_runs(Q, K, V) -> list:
    """Runs of examples (slices of axis 0) of at most ``_RUN_SCORES`` score entries (n_heads * Tq * Tk
    per example; at least one example, and at least one run per thread), handed out to the host's
    threads in consecutive groups by ``backend.for_each_block``.

    Small runs keep a run's passes over its scores (mask, softmax; in the backward dP and dS) in one
    core's cache; each run also costs ~0.1 ms of Python. Measured on 2 threads (medians of 11),
    against one run per thread: GPT's (16, 8, 128, 64) backward 26.4 -> 17.3 ms (2 examples per run),
    its forward 13.1 -> 11.5; BERT-MiniLM's (16, 12, 128, 32) forward 14.5 -> 14.3 (1 example, the
    noise); the encoder-decoder's (32, 4, 64, 64) runs of 16 examples are as before (runs of 1 example
    there were 1.3-1.5x slower). One slice, the whole batch, when there is no batch axis (2-D), one
    example, one thread, a GPU, or arrays of different dtypes (the split path allocates its outputs in
    one dtype).
    """
    whole = [slice(None)]
    n_examples = Q.shape[0] if Q.ndim >= 3 else 1
    if n_examples < 2 or not backend.on_host(Q) or len({a.dtype for a in (Q, K, V)}) != 1:
        return whole
    threads = backend.host_threads()
    if threads < 2:
        return whole
    scores_per_example = math.prod(Q.shape[1:-1]) * K.shape[-2]  # entries of (..., Tq, Tk) for one example
    per_run = max(1, _RUN_SCORES // max(1, scores_per_example))
    per_run = min(per_run, -(-n_examples // threads))  # at least one run for each thread
    return [slice(i, min(i + per_run, n_examples)) for i in range(0, n_examples, per_run)]


def batch_rows(mask, rows: slice, ndim: int):
    """Examples ``rows`` of a mask of rank ``ndim`` with a batch axis; a mask that broadcasts over it as is."""
    if mask is None or mask.ndim < ndim or mask.shape[0] == 1:
        return mask
    return mask[rows]


def split_forward_over_batch(check):
    """Decorator factory: run the attention forward ``f(Q, K, V, mask, dropout_mask, dropout_p)`` on runs
    of examples side by side, each writing its rows of Y; ``check`` (the same arguments) runs first on the
    whole batch, so that an error names the arrays as they were given. Returns (Y, SplitAttentionCache).
    """

    def decorate(forward):
        @functools.wraps(forward)
        def wrapper(Q, K, V, mask=None, dropout_mask=None, dropout_p=0.0):
            runs = batch_runs(Q, K, V)
            if len(runs) == 1:
                with backend.blas_threads(1):
                    return forward(Q, K, V, mask, dropout_mask, dropout_p)
            check(Q, K, V, mask, dropout_mask, dropout_p)
            Y = backend.get_array_module(Q).empty((*Q.shape[:-1], V.shape[-1]), dtype=Q.dtype)  # (..., Tq, d_v)
            ndim = Q.ndim  # the rank of the scores (..., Tq, Tk)
            parts = [None] * len(runs)

            def run(k, rows):  # the forward of examples `rows`, into their rows of Y
                Y[rows], parts[k] = forward(Q[rows], K[rows], V[rows], batch_rows(mask, rows, ndim),
                                            batch_rows(dropout_mask, rows, ndim), dropout_p)

            backend.for_each_block(run, enumerate(runs))
            return Y, SplitAttentionCache(Q, K, V, dropout_mask, parts, runs)

        return wrapper

    return decorate


def split_backward_over_batch(backward):
    """Decorator: the attention backward ``f(dY, cache)`` of a ``SplitAttentionCache`` run by run, side by side,
    each writing its rows of dQ, dK, dV. Any other cache: one call, as it is."""

    @functools.wraps(backward)
    def wrapper(dY, cache):
        if not isinstance(cache, SplitAttentionCache):
            with backend.blas_threads(1):
                return backward(dY, cache)
        xp = backend.get_array_module(dY, cache.Q)
        dQ, dK, dV = (xp.empty(a.shape, dtype=dY.dtype) for a in (cache.Q, cache.K, cache.V))  # as Q, K, V

        def run(part, rows):  # the backward of examples `rows`, into their rows of dQ, dK, dV
            dQ[rows], dK[rows], dV[rows] = backward(dY[rows], part)

        backend.for_each_block(run, zip(cache.parts, cache.rows, strict=True))
        return dQ, dK, dV

    return wrapper
