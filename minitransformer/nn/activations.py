"""Elementwise activations: ReLU and GELU (exact erf form and the tanh approximation); tanh is in tanh.py.

ReLU is the original Transformer's feed-forward nonlinearity; BERT uses the
exact GELU (and tanh in its pooler), GPT-2 the tanh approximation. Both GELUs gate the input by a
smooth step G(x) in (0, 1), so we write y = x * G and cache ``t``, the
erf or tanh value inside G, which backward reuses instead of recomputing.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from .. import backend
from .checks import check_float
from .module import Module, is_grad_enabled
from .tanh import Tanh

__all__ = [
    "GELU", "GELUCache", "ReLU", "ReLUCache", "activation_names", "get_activation", "gelu_backward", "gelu_forward",
    "relu_backward", "relu_forward",
]

_APPROXIMATE = ("none", "tanh")
_SQRT_HALF = 1.0 / math.sqrt(2.0)  # Python floats: float32 inputs stay float32
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_KAPPA = 0.044715


class ReLUCache(NamedTuple):
    keep: object  # (...) bool, True where x > 0


def relu_forward(x):
    """Rectified linear unit.

    Args:
        x: (...) input.
    Returns:
        y: (...) same shape and dtype, and the cache.

    Math:
        y = max(x, 0)
    """
    xp = backend.get_array_module(x)
    y = xp.maximum(x, 0.0)  # (...)   NaN stays NaN, as in torch
    return y, ReLUCache(x > 0.0)  # keep: (...) bool


def relu_backward(dy, cache: ReLUCache):
    """Gradient of ``relu_forward`` (0 at x = 0, as PyTorch).

    Args:
        dy: (...) upstream gradient.
    Returns:
        dx: (...).

    Math:
        dx = dy * [x > 0]
    """
    # BEGIN SOLUTION relu: dx = dy where x > 0, else 0 (also 0 at x == 0, as PyTorch); cache.keep is [x > 0]
    return dy * cache.keep  # (...)  inverts y = max(x, 0); 15x faster than where(keep, dy, 0) with a random mask
    # END SOLUTION


class GELUCache(NamedTuple):
    x: object  # (...) input
    t: object  # (...) erf(x / sqrt 2) for "none", tanh(u) for "tanh"; None when forward had keep_t=False
    approximate: str  # "none" or "tanh"


def _check_approximate(approximate) -> None:
    if approximate not in _APPROXIMATE:
        raise ValueError(f"GELU approximate must be one of {_APPROXIMATE}, got {approximate!r}")


def gelu_forward(x, approximate: str = "none", keep_t: bool = True):
    """Gaussian error linear unit, y = x * Phi(x), exact or tanh-approximated.

    Args:
        x: (...) input.
        approximate: "none" (erf form, BERT) or "tanh" (GPT-2's ``gelu_new``).
        keep_t: keep t for the backward (``GELU`` passes False under ``no_grad()``: t then
            exists one block at a time, and the cache's t is None).
    Returns:
        y: (...) same shape and dtype, and the cache.

    Math:
        "none":  t = erf(x / sqrt 2),  y = 0.5 x (1 + t)                    (= x Phi(x))
        "tanh":  u = sqrt(2/pi) (x + 0.044715 x^3),  t = tanh(u),  y = 0.5 x (1 + t)

    Ref: Hendrycks & Gimpel 2016, "Gaussian Error Linear Units (GELUs)".
    """
    _check_approximate(approximate)
    xp = backend.get_array_module(x)
    x_flat = x.reshape(-1)  # (n,)  a view of a contiguous x
    y = xp.empty(x_flat.shape, dtype=x.dtype)  # (n,)
    t = xp.empty(x_flat.shape, dtype=x.dtype) if keep_t else None  # (n,)

    # The formulas run on cache-sized blocks of x (backend.flat_blocks; one block on a GPU): the ~6 passes of
    # a block stay in the CPU's cache instead of each going through memory over all of (B, T, d_ff), and
    # backend.for_each_block spreads the blocks over the CPU's cores.
    def block(x_b, y_b, t_b=None):  # (b,) views
        if t_b is None:
            t_b = xp.empty_like(x_b)  # (b,)  scratch: t is not kept
        if approximate == "none":
            xp.multiply(x_b, _SQRT_HALF, out=t_b)  # (b,)
            backend.erf(t_b, out=t_b)  # (b,)  t = erf(x / sqrt 2), in place
        else:
            xp.multiply(x_b, x_b, out=t_b)  # (b,)  u = x (sqrt(2/pi) + sqrt(2/pi) 0.044715 x^2), built in t
            t_b *= _SQRT_2_OVER_PI * _KAPPA
            t_b += _SQRT_2_OVER_PI
            t_b *= x_b
            xp.tanh(t_b, out=t_b)  # (b,)  t = tanh(u), in place
        xp.multiply(x_b, t_b, out=y_b)  # (b,)  y = 0.5 x (1 + t) = 0.5 (x t + x), in place
        y_b += x_b
        y_b *= 0.5

    backend.for_each_block(block, backend.flat_blocks(x_flat, y, *([t] if keep_t else [])))
    return y.reshape(x.shape), GELUCache(x, t.reshape(x.shape) if keep_t else None, approximate)  # (...), t (...)


def gelu_backward(dy, cache: GELUCache):
    """Gradient of ``gelu_forward`` by the product rule on y = x * G(x), G = 0.5 (1 + t).

    Args:
        dy: (...) upstream gradient.
    Returns:
        dx: (...).

    Math:
        dy/dx = G + x dG/dx
        "none":  dG/dx = phi(x) = exp(-x^2 / 2) / sqrt(2 pi)        (d erf(z)/dz = 2/sqrt(pi) exp(-z^2))
        "tanh":  dG/dx = 0.5 (1 - t^2) du/dx,  du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2)
        dx = dy * (0.5 (1 + t) + x dG/dx) = 0.5 dy (1 + t + h),   h = 2 x dG/dx   (h built in place)
    """
    # BEGIN SOLUTION gelu: product rule on y = x * G(x), G = 0.5 (1 + t): dx = dy * (G + x * dG/dx)
    # HINT: "none": dG/dx = exp(-x^2 / 2) / sqrt(2 pi); "tanh": dG/dx = 0.5 (1 - t^2) du/dx, u as in the forward
    xp = backend.get_array_module(dy)
    x, t, approximate = cache
    x_f, t_f, dy_f = x.reshape(-1), t.reshape(-1), dy.reshape(-1)  # (n,) views of the contiguous arrays
    dx = xp.empty(x_f.shape, dtype=dy.dtype)  # (n,)

    # As in the forward, the ~10 passes run on cache-sized blocks, spread over the cores (2x faster than
    # whole-array passes for GPT's (B*T, d_ff) in the tanh form on one core; the same numbers bit for bit).
    def block(x_b, t_b, dy_b, h):  # (b,) views; h is dx's block
        if approximate == "none":
            xp.multiply(x_b, x_b, out=h)  # (b,)  h = 2 dG/dx = 2 exp(-x^2 / 2) / sqrt(2 pi)  inverts t = erf(x/sqrt 2)
            h *= -0.5
            xp.exp(h, out=h)
            h *= 2.0 * _INV_SQRT_2PI
        else:
            xp.multiply(x_b, x_b, out=h)  # (b,)  h = du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2)    inverts u = ...
            h *= _SQRT_2_OVER_PI * 3.0 * _KAPPA
            h += _SQRT_2_OVER_PI
            s = xp.multiply(t_b, t_b)  # (b,)  s = 1 - t^2
            xp.subtract(1.0, s, out=s)
            h *= s  # (b,)  h = 2 dG/dx = (1 - t^2) du/dx                                     inverts t = tanh(u)
        h *= x_b  # (b,)  h = 2 x dG/dx
        h += t_b
        h += 1.0
        h *= dy_b
        h *= 0.5  # (b,)  dx = 0.5 dy (1 + t + 2 x dG/dx)                                      inverts y = 0.5 x (1 + t)

    backend.for_each_block(block, backend.flat_blocks(x_f, t_f, dy_f, dx))
    return dx.reshape(x.shape)  # (...)
    # END SOLUTION


class ReLU(Module):
    """``y = max(x, 0)`` elementwise; no parameters."""

    def forward(self, x):
        """x: (...) -> y: (...)."""
        check_float(x, "ReLU input")
        y, self._cache = relu_forward(x)
        return y

    def backward(self, dy):
        """dy: (...) -> dx: (...)."""
        return relu_backward(dy, self._pop_cache())

    def __repr__(self) -> str:
        return "ReLU()"


class GELU(Module):
    """``y = x * Phi(x)`` elementwise (``approximate="tanh"`` for GPT-2's form); no parameters."""

    def __init__(self, approximate: str = "none"):
        super().__init__()
        _check_approximate(approximate)
        self.approximate = approximate

    def forward(self, x):
        """x: (...) -> y: (...)."""
        check_float(x, "GELU input")
        y, self._cache = gelu_forward(x, self.approximate, keep_t=is_grad_enabled())  # no_grad(): no full t
        return y

    def backward(self, dy):
        """dy: (...) -> dx: (...)."""
        return gelu_backward(dy, self._pop_cache())

    def __repr__(self) -> str:
        return f"GELU(approximate={self.approximate!r})"


# Hugging Face config names ("hidden_act") for the tanh GELU: gelu_new, gelu_pytorch_tanh.
_ACTIVATIONS = {
    "relu": ReLU,
    "gelu": GELU,
    "gelu_tanh": lambda: GELU("tanh"),
    "gelu_new": lambda: GELU("tanh"),
    "gelu_pytorch_tanh": lambda: GELU("tanh"),
    "tanh": Tanh,
}


def get_activation(name: str) -> Module:
    """A fresh activation Module by name (as in a model config's ``hidden_act``)."""
    if name not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}: expected one of {activation_names()}")
    return _ACTIVATIONS[name]()


def activation_names() -> list[str]:
    """The names ``get_activation`` knows (a model config's ``hidden_act`` values), sorted."""
    return sorted(_ACTIVATIONS)
