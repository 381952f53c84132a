"""Linear (fully connected) layer: y = x W + b.

The weight is stored as ``W`` with shape ``(d_in, d_out)`` so the code reads
like the formula. PyTorch's ``nn.Linear.weight`` is the transpose,
``(d_out, d_in)``; the torch interop transposes when it copies.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from .. import backend
from .checks import check_dtype_match, check_last_dim, check_size
from .module import Module, Parameter

__all__ = ["Linear", "LinearCache", "linear_backward", "linear_forward"]


class LinearCache(NamedTuple):
    x: object  # (..., d_in)   input, needed for dW
    W: object  # (d_in, d_out) weight, needed for dx


def linear_forward(x, W, b=None):
    """Affine map of the last axis.

    Args:
        x: (..., d_in) input.
        W: (d_in, d_out) weight.
        b: (d_out,) bias, or None.
    Returns:
        y: (..., d_out), and the cache for backward.

    Math:
        y = x @ W + b
    """
    # x @ W, for (B, T, d_in) as ONE (B*T, d_in) matmul (on a 3-D x, NumPy's @ calls BLAS once per b).
    # backend.matmul(a, b, add) is a @ b + add with the rows spread over the CPU's cores (see there why not by
    # BLAS itself); each core adds the bias to its rows of the product.
    y = backend.matmul(x.reshape(-1, x.shape[-1]), W, add=b)  # (N, d_out)  x @ W + b, N = product of leading axes
    return y.reshape(*x.shape[:-1], W.shape[1]), LinearCache(x, W)  # (..., d_out)


def linear_backward(dy, cache: LinearCache):
    """Gradients of ``linear_forward``.

    Args:
        dy: (..., d_out) upstream gradient dL/dy.
        cache: from ``linear_forward``.
    Returns:
        dx: (..., d_in), dW: (d_in, d_out), db: (d_out,).

    Math:
        dx = dy @ W^T
        dW = sum over all leading positions of x^T dy
        db = sum over all leading positions of dy
    """
    # BEGIN SOLUTION linear: dx = dy @ W^T; dW = x^T dy and db = dy, each summed over every leading axis
    # HINT: reshape x to (N, d_in) and dy to (N, d_out) first (N = B * T): then dW is one matmul
    x, W = cache
    d_in, d_out = W.shape
    x2 = x.reshape(-1, d_in)  # (N, d_in)  N = product of leading axes
    dy2 = dy.reshape(-1, d_out)  # (N, d_out)
    dx = backend.matmul(dy2, W.T).reshape(x.shape)  # (..., d_in)  dy @ W^T, inverts y = x @ W (one 2-D matmul)
    dW = backend.matmul(x2.T, dy2)  # (d_in, d_out)  x^T dy: one matmul, not a sum of per-token outer products
    db = dy2.sum(axis=0)  # (d_out,)                      inverts y = ... + b (broadcast)
    return dx, dW, db
    # END SOLUTION


class Linear(Module):
    """``y = x W + b`` with ``W`` initialised uniformly in ±1/sqrt(d_in) (as PyTorch).

    Args:
        d_in, d_out: input and output sizes.
        bias: whether to add ``b``.
        dtype: parameter dtype (float32 default).
    """

    def __init__(self, d_in: int, d_out: int, bias: bool = True, dtype="float32"):
        super().__init__()
        check_size(d_in, "Linear d_in")
        check_size(d_out, "Linear d_out")
        self.d_in, self.d_out = d_in, d_out
        bound = 1.0 / math.sqrt(d_in)
        rng = backend.host_rng()  # host init: same weights on CPU and GPU for one seed
        self.W = Parameter(backend.asarray(rng.uniform(-bound, bound, (d_in, d_out)), dtype=dtype))
        self.b = Parameter(backend.asarray(rng.uniform(-bound, bound, (d_out,)), dtype=dtype)) if bias else None

    def forward(self, x):
        """x: (..., d_in) -> y: (..., d_out)."""
        check_last_dim(x, self.d_in, "Linear input")
        check_dtype_match(x, self.W.data, "Linear input")
        y, self._cache = linear_forward(x, self.W.data, None if self.b is None else self.b.data)
        return y

    def backward(self, dy):
        """dy: (..., d_out) -> dx: (..., d_in); accumulates W.grad and b.grad."""
        dx, dW, db = linear_backward(dy, self._pop_cache())
        self.W.grad += dW
        if self.b is not None:
            self.b.grad += db
        return dx

    def __repr__(self) -> str:
        return f"Linear(d_in={self.d_in}, d_out={self.d_out}, bias={self.b is not None})"
