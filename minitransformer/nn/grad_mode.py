"""Gradient mode: ``no_grad()`` turns off what only a backward pass needs (caches), for inference."""

from __future__ import annotations

import contextlib

__all__ = ["is_grad_enabled", "no_grad"]

_NO_GRAD = [False]  # True inside no_grad()


@contextlib.contextmanager
def no_grad():
    """Inference: forward passes inside keep no cache, so memory holds one layer's arrays at a time."""
    _NO_GRAD[0], previous = True, _NO_GRAD[0]
    try:
        yield
    finally:
        _NO_GRAD[0] = previous


def is_grad_enabled() -> bool:
    """False inside ``no_grad()``: a layer may then skip what only its backward needs (as torch's)."""
    return not _NO_GRAD[0]
