"""Opt-in NaN/inf checking of every Module call, with the failing layer named.

Off by default. When it is on, ``Module.__call__`` checks every float array
among the arguments for NaN before ``forward`` runs (not for inf: an additive
attention mask holds -inf on purpose) and every float array it returns for NaN
and inf afterwards, and raises ``FloatingPointError`` at the first bad one:

    NaN in the output of LayerNorm 'encoder.layers.0.norm1'

Inner calls finish first, so the layer named is the first one whose output
went bad (or the first that was handed a bad input). When it is off, the
only cost is one boolean test per call.

The dotted path is found lazily, only when an error is raised, by walking
the model given to ``set_check_finite`` (Modules keep no parent pointer);
without a model, the outermost module being called is the root. Backward
passes are not checked.

Usage::

    minitransformer.set_check_finite(True, model)     # or:
    with minitransformer.check_finite(model):
        loss = model.loss(src, tgt_in, tgt_out)
"""

from __future__ import annotations

import contextlib

from .. import backend

__all__ = ["check_finite", "checked_call", "is_check_finite", "set_check_finite"]

enabled = False  # read by Module.__call__ as ``finite.enabled``: the whole cost when off
_root = None  # the model whose dotted names the messages use, or None
_stack: list = []  # modules inside a checked call, outermost first


def set_check_finite(enabled_: bool = True, model=None) -> None:
    """Turn NaN/inf checking of every Module call on or off.

    Args:
        enabled_: True to check, False to stop checking.
        model: the top Module, so that errors name layers by their dotted path
            in it (``'encoder.layers.0.norm1'``); None keeps only the class name
            unless the outermost called module contains the failing one.
    """
    global enabled, _root
    enabled = bool(enabled_)
    _root = model if enabled else None


def is_check_finite() -> bool:
    """Whether NaN/inf checking is on."""
    return enabled


@contextlib.contextmanager
def check_finite(model=None, enabled_: bool = True):
    """Check for NaN/inf inside a ``with`` block, then restore the previous setting."""
    previous = (enabled, _root)
    set_check_finite(enabled_, model)
    try:
        yield
    finally:
        set_check_finite(*previous)


def _named_modules(module, prefix: str = ""):
    yield prefix, module
    for name, child in module.named_children():
        yield from _named_modules(child, f"{prefix}.{name}" if prefix else name)


def _describe(module) -> str:
    """``LayerNorm 'encoder.layers.0.norm1'``, or just the class name when no path is known."""
    outer = _stack[0] if _stack else None
    for root in (_root, outer):
        if root is None:
            continue
        for path, m in _named_modules(root):
            if m is module and not path:
                return f"{type(module).__name__} (the model)" if root is _root else type(module).__name__
            if m is module:
                where = "" if root is _root else f" of {type(root).__name__}"  # a path below the outer call
                return f"{type(module).__name__} '{path}'{where}"
    return type(module).__name__


def _first_bad(obj, allow_inf: bool):
    """'NaN' (or 'inf', unless allow_inf) for the first bad float array in obj (arrays, tuples, lists, dicts)."""
    if backend.is_array(obj):
        if obj.dtype.kind != "f" or obj.size == 0:
            return None
        xp = backend.get_array_module(obj)
        if bool(xp.isnan(obj).any()):
            return "NaN"
        return None if allow_inf or bool(xp.isfinite(obj).all()) else "inf"
    if isinstance(obj, dict):
        obj = tuple(obj.values())
    if isinstance(obj, (tuple, list)):
        for item in obj:
            bad = _first_bad(item, allow_inf)
            if bad:
                return bad
    return None


def checked_call(module, args, kwargs):
    """``module.forward(*args, **kwargs)`` with its inputs and output checked for NaN/inf."""
    _stack.append(module)
    try:
        bad = _first_bad((args, kwargs), allow_inf=True)  # -inf is a valid additive mask
        if bad:
            raise FloatingPointError(f"{bad} in the input of {_describe(module)}")
        out = module.forward(*args, **kwargs)
        bad = _first_bad(out, allow_inf=False)
        if bad:
            raise FloatingPointError(f"{bad} in the output of {_describe(module)}")
        return out
    finally:
        _stack.pop()
