"""tanh, elementwise: BERT's pooler nonlinearity (``get_activation("tanh")`` in activations.py)."""

from __future__ import annotations

from typing import NamedTuple

from .. import backend
from .checks import check_float
from .module import Module

__all__ = ["Tanh", "TanhCache", "tanh_backward", "tanh_forward"]


class TanhCache(NamedTuple):
    y: object  # (...) tanh(x): the derivative is written in terms of the output


def tanh_forward(x):
    """Hyperbolic tangent, elementwise (BERT's pooler).

    Args:
        x: (...) input.
    Returns:
        y: (...) same shape and dtype, and the cache.

    Math:
        y = tanh(x) = (e^x - e^-x) / (e^x + e^-x)
    """
    y = backend.get_array_module(x).tanh(x)  # (...)
    return y, TanhCache(y)


def tanh_backward(dy, cache: TanhCache):
    """Gradient of ``tanh_forward``, from the cached output.

    Args:
        dy: (...) upstream gradient.
    Returns:
        dx: (...).

    Math:
        dx = dy * (1 - y^2)
    """
    return dy * (1.0 - cache.y * cache.y)  # (...)   inverts y = tanh(x)


class Tanh(Module):
    """``y = tanh(x)`` elementwise; no parameters."""

    def forward(self, x):
        """x: (...) -> y: (...)."""
        check_float(x, "Tanh input")
        y, self._cache = tanh_forward(x)
        return y

    def backward(self, dy):
        """dy: (...) -> dx: (...)."""
        return tanh_backward(dy, self._pop_cache())

    def __repr__(self) -> str:
        return "Tanh()"
