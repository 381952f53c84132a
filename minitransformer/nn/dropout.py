"""Inverted dropout: zero each entry with probability p, scale the survivors by 1 / (1 - p).

Scaling at training time keeps the expected value of every entry unchanged
(E[y] = (1 - p) * x / (1 - p) = x), so evaluation needs no rescaling: in eval
mode dropout is the identity.

The mask is data, not hidden state: ``dropout_forward(x, mask, p)`` takes it
as an argument, so a gradient check can replay one mask through many forward
passes. The ``Dropout`` module draws it with ``backend.dropout_keep_mask``, from
``backend.device_rng()``, which ``backend.manual_seed`` resets: one seed, one
mask, bit for bit.

Ref: Srivastava et al. 2014, "Dropout: A Simple Way to Prevent Neural Networks
from Overfitting"; Vaswani et al. 2017, section 5.4 (P_drop = 0.1).
"""

from __future__ import annotations

from typing import NamedTuple

from .. import backend
from .checks import check_array, check_float
from .module import Module

__all__ = ["Dropout", "DropoutCache", "dropout_backward", "dropout_forward"]


def _check_p(p) -> float:
    """``p`` must be a number in [0, 1); returned as a Python float (no NumPy scalars)."""
    p = float(p)
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability p must satisfy 0 <= p < 1, got p={p}")
    return p


class DropoutCache(NamedTuple):
    mask: object  # broadcastable to x, boolean (True = keep); None for the identity
    scale: float  # 1 / (1 - p), a Python float


def dropout_forward(x, mask, p: float):
    """Apply a given keep-mask with inverted scaling.

    Args:
        x: (...) input.
        mask: boolean, broadcastable to x (True = keep), or None for the identity.
        p: drop probability in [0, 1) that the mask was drawn with.
    Returns:
        y: (...) like x, and the cache for backward.

    Math:
        y = x * mask / (1 - p)
    """
    p = _check_p(p)
    if mask is None:
        return x, DropoutCache(None, 1.0)
    check_array(mask, "dropout mask")
    if mask.dtype.kind != "b":
        raise TypeError(f"dropout mask: expected a boolean array (True = keep), got dtype {mask.dtype}")
    if mask.ndim > x.ndim or any(m not in (1, n) for m, n in zip(mask.shape[::-1], x.shape[::-1], strict=False)):
        raise ValueError(
            f"dropout mask: shape {tuple(mask.shape)} does not broadcast to the input shape {tuple(x.shape)}"
        )
    # BEGIN SOLUTION dropout: inverted dropout: y = x * mask * scale, scale = 1 / (1 - p) (a Python float)
    scale = 1.0 / (1.0 - p)  # Python float: float32 stays float32
    y = x * mask  # (...)  like x; dropped entries are exactly 0
    y *= scale  # (...)  in place: one temporary, not two
    return y, DropoutCache(mask, scale)
    # END SOLUTION


def dropout_backward(dy, cache: DropoutCache):
    """Gradient of ``dropout_forward``: the same mask and scale.

    Args:
        dy: (...) upstream gradient, like x.
        cache: from ``dropout_forward``.
    Returns:
        dx: (...) like dy (``dy`` itself, not a copy, for the identity).

    Math:
        dx = dy * mask / (1 - p)
    """
    # BEGIN SOLUTION dropout: dx = dy * mask * scale with the cached mask and scale; dx = dy when the mask is None
    mask, scale = cache
    if mask is None:
        return dy  # inverts y = x (eval mode or p = 0)
    return dy * mask * scale  # (...)  inverts y = x * mask * scale
    # END SOLUTION


class Dropout(Module):
    """Inverted dropout with drop probability ``p``; the identity in eval mode or when p = 0.

    Args:
        p: drop probability, 0 <= p < 1.

    Attributes:
        last_mask: boolean mask of the last training forward, (like x), or None
            when the last forward was the identity. For inspection only.
    """

    def __init__(self, p: float = 0.1):
        super().__init__()
        self.p = _check_p(p)
        self.last_mask = None

    def forward(self, x):
        """x: (...) -> y: (...) like x."""
        check_float(x, "Dropout input")
        mask = None
        if self.training and self.p > 0.0:
            mask = backend.dropout_keep_mask(x.shape, self.p)  # (...) like x, bool: True with probability 1 - p
        self.last_mask = mask
        y, self._cache = dropout_forward(x, mask, self.p)
        return y

    def backward(self, dy):
        """dy: (...) -> dx: (...) like dy."""
        return dropout_backward(dy, self._pop_cache())

    def __repr__(self) -> str:
        return f"Dropout(p={self.p})"
