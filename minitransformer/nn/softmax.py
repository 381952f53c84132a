"""Softmax and log-softmax over the last axis, numerically stable, with an optional mask.

Stability: softmax is unchanged by subtracting a constant from every entry of
a row, so we subtract the row maximum first; the largest exponent is then
exp(0) = 1 and nothing overflows, even for logits of 1e4.

Masking: ``mask`` (True = keep) sends the masked entries to -inf before the
exponential, so they get probability exactly 0. A row with every entry
masked would be 0/0 = NaN in the textbook formula; here it is all zeros, and
so is its gradient. (The same happens for a row whose entries are all -inf,
e.g. from an additive attention mask.)
"""

from __future__ import annotations

import math
from typing import NamedTuple

from .. import backend

__all__ = [
    "LogSoftmaxCache",
    "SoftmaxCache",
    "log_softmax_backward",
    "log_softmax_forward",
    "softmax_backward",
    "softmax_forward",
]


class SoftmaxCache(NamedTuple):
    P: object  # (..., n) the probabilities: softmax's backward needs only its output


def _safe_row_max(xp, x):
    """Row maximum, replaced by 0 where the whole row is -inf (fully masked) or empty (no keys)."""
    if x.shape[-1] == 0:  # an empty row (e.g. a length-0 source): max has no identity
        return xp.zeros((*x.shape[:-1], 1), dtype=x.dtype)  # (..., 1)
    # On the host NumPy's fmax reduction is ~1.5x faster than max over short rows (attention's (B, h, Tq, Tk)
    # scores; CuPy's fmax has no reduce). It skips NaNs, but a NaN in a row still makes that row NaN below
    # (exp(NaN - m) = NaN), as max would.
    m = xp.fmax.reduce(x, axis=-1, keepdims=True) if backend.on_host(x) else x.max(axis=-1, keepdims=True)  # (..., 1)
    return xp.where(xp.isfinite(m), m, 0.0)  # (..., 1)


def softmax_forward(x, mask=None, out=None):
    """Softmax over the last axis.

    Args:
        x: (..., n) scores (float32 or float64; may contain -inf).
        mask: boolean, broadcastable to x; True = keep, False = probability 0.
        out: (..., n) array to write P into, or None for a new one; may be x itself
            (attention passes its scores, which it no longer needs).
    Returns:
        P: (..., n), rows summing to 1 (0 for fully masked rows), and the cache.

    Math:
        P[..., j] = exp(x[..., j] - m) / sum_k exp(x[..., k] - m),   m = max_k x[..., k]
    """
    xp = backend.get_array_module(x)
    if mask is not None:
        x = xp.where(mask, x, -xp.inf)  # (..., n)  masked scores -> -inf
    # BEGIN SOLUTION softmax: m = row max (_safe_row_max(xp, x)), E = exp(x - m), P = E / sum(E) over the last axis
    # HINT: a fully masked row has sum(E) = 0: divide by 1 there (xp.where), so P = 0 and not NaN
    m = _safe_row_max(xp, x)  # (..., 1)
    P = xp.subtract(x, m, out=out)  # (..., n)  x - m <= 0: no overflow; exponentiated and normalised in place
    xp.exp(P, out=P)  # (..., n)   E = exp(x - m)
    s = P.sum(axis=-1, keepdims=True)  # (..., 1)   0 only for a fully masked row
    P /= xp.where(s == 0.0, 1.0, s)  # (..., n)  P = E / sum(E); 0/1 = 0 instead of 0/0 = NaN
    return P, SoftmaxCache(P)
    # END SOLUTION


def softmax_backward(dP, cache: SoftmaxCache):
    """Gradient of softmax without building the (n, n) Jacobian.

    Args:
        dP: (..., n) upstream gradient dL/dP.
    Returns:
        dx: (..., n).

    Math:
        dP/dx is diag(P) - P P^T per row, so
        dx = P * (dP - sum_k(dP * P))
    """
    # BEGIN SOLUTION softmax: dx = P * (dP - sum_k(dP * P)), the sum over the last axis (keepdims): no Jacobian
    (P,) = cache
    xp = backend.get_array_module(dP, P)
    inner = xp.einsum("...k,...k->...", dP, P)[..., None]  # (..., 1)  sum_k dP_k P_k, no (..., n) temporary
    dx = dP - inner  # (..., n)
    dx *= P  # (..., n)  in place: masked entries have P = 0, so dx = 0
    return dx
    # END SOLUTION


class LogSoftmaxCache(NamedTuple):
    P: object  # (..., n) softmax probabilities exp(y), for the backward


def log_softmax_forward(x):
    """Log-softmax over the last axis via log-sum-exp.

    Args:
        x: (..., n) logits.
    Returns:
        y: (..., n) log-probabilities, and the cache.

    Math:
        y = x - m - log(sum_k exp(x_k - m)),   m = max_k x_k
    """
    xp = backend.get_array_module(x)
    x2 = x.reshape(math.prod(x.shape[:-1]), x.shape[-1])  # (N, n)  N = product of the leading axes
    y = xp.empty(x2.shape, dtype=x.dtype)  # (N, n)
    P = xp.empty(x2.shape, dtype=x.dtype)  # (N, n)

    # Rows are independent: the lines run on cache-sized blocks of rows (backend.row_blocks), spread over the
    # CPU's cores (backend.for_each_block); one block on a GPU. r is the block's number of rows.
    def block(x_b, y_b, P_b):  # (r, n) views
        m = _safe_row_max(xp, x_b)  # (r, 1)
        z = xp.subtract(x_b, m, out=y_b)  # (r, n)  z = x - m <= 0, built in y
        xp.exp(z, out=P_b)  # (r, n)  exp(z)
        s = P_b.sum(axis=-1, keepdims=True)  # (r, 1)  sum_k exp(z_k) >= 1
        z -= xp.log(s)  # (r, n)  y = z - log-sum-exp
        P_b /= s  # (r, n)  softmax = exp(z) / sum: the same P as exp(y), without a second exp

    backend.for_each_block(block, backend.row_blocks(x2, y, P))
    return y.reshape(x.shape), LogSoftmaxCache(P.reshape(x.shape))


def log_softmax_backward(dy, cache: LogSoftmaxCache):
    """Gradient of log-softmax.

    Args:
        dy: (..., n) upstream gradient.
    Returns:
        dx: (..., n).

    Math:
        dy_i/dx_j = [i == j] - P_j, so dx = dy - P * sum_k dy_k
    """
    # BEGIN SOLUTION cross_entropy: log-softmax backward: dx = dy - P * sum_k(dy_k), the sum over the last axis
    (P,) = cache
    return dy - P * dy.sum(axis=-1, keepdims=True)  # (..., n)
    # END SOLUTION
