"""Input checks shared by the layers: bad input gets a clear error, never a wrong answer.

Each message names what was expected and what was given. Token ids are
checked on the host, because CuPy silently wraps out-of-range indices.
"""

from __future__ import annotations

import operator

from .. import backend

__all__ = [
    "check_array",
    "check_dtype_match",
    "check_float",
    "check_ids",
    "check_last_dim",
    "check_ndim",
    "check_seq_len",
    "check_size",
]


def check_size(value, what: str) -> None:
    """A size argument (``d_model``, ``n_heads``, ``vocab_size``, ...) must be an int >= 1 (a NumPy int will do)."""
    try:
        ok = not isinstance(value, bool) and operator.index(value) >= 1
    except TypeError:  # 2.5, "8", None
        ok = False
    if not ok:
        raise ValueError(f"{what} must be a positive int, got {value!r}")


def check_array(x, what: str) -> None:
    """``x`` must be a NumPy or CuPy array (not a list, not a torch tensor)."""
    if not backend.is_array(x):
        raise TypeError(f"{what}: expected a NumPy or CuPy array, got {type(x).__name__}")


def check_float(x, what: str) -> None:
    """``x`` must be float32 or float64."""
    check_array(x, what)
    if x.dtype.kind != "f" or x.dtype.itemsize < 4:
        raise TypeError(
            f"{what}: expected float32 or float64, got {x.dtype} "
            "(cast float16/int inputs with .astype('float32'))"
        )


def check_dtype_match(x, W, what: str) -> None:
    """Inputs must have the parameters' dtype: no silent up- or down-casts."""
    check_float(x, what)
    if x.dtype != W.dtype:
        raise TypeError(
            f"{what}: dtype {x.dtype} does not match the layer's parameters ({W.dtype}); "
            f"cast the input with .astype('{W.dtype}') or the module with .to(dtype='{x.dtype}')"
        )


def check_ndim(x, ndim: int, what: str, dims: str = "") -> None:
    """``x`` must have exactly ``ndim`` axes (``dims`` names them, e.g. "(B, T, d_model)")."""
    check_array(x, what)
    if x.ndim != ndim:
        raise ValueError(f"{what}: expected {ndim} axes {dims}, got shape {tuple(x.shape)}")


def check_last_dim(x, d: int, what: str) -> None:
    """The last axis of ``x`` must have size ``d``."""
    check_array(x, what)
    if x.ndim == 0 or x.shape[-1] != d:
        raise ValueError(f"{what}: expected last dimension {d}, got shape {tuple(x.shape)}")


def check_ids(ids, vocab_size: int, what: str) -> None:
    """Integer token ids in ``[0, vocab_size)``, checked on the host."""
    check_array(ids, what)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"{what}: token ids must be integers, got dtype {ids.dtype}")
    if ids.size == 0:
        return
    host = backend.to_numpy(ids)
    lo, hi = int(host.min()), int(host.max())
    if lo < 0 or hi >= vocab_size:
        bad = lo if lo < 0 else hi
        raise IndexError(f"{what}: token id {bad} is out of range [0, {vocab_size}) (vocab_size={vocab_size})")


def check_seq_len(T: int, max_len: int, what: str) -> None:
    """A sequence of length ``T`` must fit the model's ``max_len``."""
    if T > max_len:
        raise ValueError(f"{what}: sequence length {T} exceeds max_len={max_len}")
