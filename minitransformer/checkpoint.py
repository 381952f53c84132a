"""Checkpoints: model + optimizer state + config in one ``.npz`` file, never pickled.

File layout (a plain zip of ``.npy`` arrays, read with ``allow_pickle=False``):

    model/<name>   one array per parameter, as ``model.state_dict()``
    optim/<key>    one array per optimizer state slot, as ``optimizer.state_dict()["arrays"]``
    meta           UTF-8 JSON as a uint8 array: {"format", "format_version", "config",
                   "optim" (the optimizer's scalars, or null), "extra"}

The file is written to a temporary file in the same directory and then
renamed over the target (``os.replace``), so a crash mid-write never leaves a
half-written checkpoint under the real name. Loading an untrusted file cannot
run code: object arrays are refused, and every damaged or foreign file gives
one ValueError naming the file.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import NamedTuple

from . import backend
from .fileio import atomic_write

__all__ = ["Checkpoint", "FORMAT_VERSION", "load", "load_into", "resolve_path", "save"]

FORMAT = "minitransformer-checkpoint"
FORMAT_VERSION = 1
DEFAULT_NAME = "checkpoint.npz"


class Checkpoint(NamedTuple):
    model_state: dict  # name -> host array, for model.load_state_dict
    optim_state: dict | None  # {"arrays", "scalars"} for optimizer.load_state_dict, or None
    config: dict | None  # the model config (JSON)
    extra: dict | None  # anything else JSON-able the caller saved (step, history, RNG state)
    path: str  # the file it came from


def resolve_path(path) -> str:
    """The checkpoint file for ``path``: an existing file or a ``.npz`` name as given, else ``<dir>/checkpoint.npz``."""
    path = os.fspath(path)
    if os.path.isfile(path) or (path.endswith(".npz") and not os.path.isdir(path)):
        return path
    return os.path.join(path, DEFAULT_NAME)


def save(path, model, optimizer=None, config=None, extra=None) -> str:
    """Write model parameters, optimizer state, config and extras atomically.

    Args:
        path: a ``.npz`` file, or a directory (created if needed) for ``<dir>/checkpoint.npz``.
        model: a Module (its ``state_dict()`` is saved).
        optimizer: an Optimizer or None.
        config: JSON-able dict (or dataclass) describing the model.
        extra: JSON-able dict (step, loss history, RNG state, ...).
    Returns:
        the path of the written file.
    """
    path = resolve_path(path)
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    arrays = {f"model/{name}": a for name, a in model.state_dict().items()}
    optim = None
    if optimizer is not None:
        state = optimizer.state_dict()
        arrays.update({f"optim/{key}": a for key, a in state["arrays"].items()})
        optim = state["scalars"]
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": config, "optim": optim, "extra": extra}
    try:
        text = json.dumps(meta, allow_nan=True)
    except (TypeError, ValueError) as e:
        raise TypeError(f"checkpoint config/extra must be JSON-serialisable: {e}") from None
    arrays["meta"] = backend.encode_text(text)
    with atomic_write(path, "wb") as f:  # temp file, fsync, os.replace: old file or new, never half
        backend.save_npz(f, arrays)
    return path


def load(path) -> Checkpoint:
    """Read a checkpoint written by ``save``.

    Args:
        path: the ``.npz`` file or its directory.
    Returns:
        a ``Checkpoint`` (model_state, optim_state, config, extra, path).
    Raises:
        FileNotFoundError when there is no file; ValueError (naming the file) when
        it is truncated, corrupt, not an ``.npz``, holds pickled objects, or has
        an unknown format version.
    """
    path = resolve_path(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        arrays = backend.load_npz(path)
    except Exception as e:  # zipfile, zlib, numpy header, pickle refusal: one clear error
        raise ValueError(f"{path} is not a readable checkpoint ({type(e).__name__}: {e})") from None
    if "meta" not in arrays:
        raise ValueError(f"{path} is not a minitransformer checkpoint (no 'meta' entry)")
    try:
        meta = json.loads(backend.decode_text(arrays.pop("meta")))
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError, JSONDecodeError; RecursionError: [[[[...
        raise ValueError(f"{path} has an unreadable 'meta' entry ({type(e).__name__}: {e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not a minitransformer checkpoint (format {_get(meta, 'format')!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path} has checkpoint format version {meta.get('format_version')!r}; "
            f"this minitransformer reads version {FORMAT_VERSION}"
        )
    unknown = sorted(k for k in arrays if not k.startswith(("model/", "optim/")))
    if unknown:
        raise ValueError(f"{path} has unexpected entries {unknown}")
    model_state = {k[len("model/"):]: a for k, a in arrays.items() if k.startswith("model/")}
    optim_arrays = {k[len("optim/"):]: a for k, a in arrays.items() if k.startswith("optim/")}
    if meta.get("optim") is None and optim_arrays:
        raise ValueError(f"{path} has optimizer arrays but no optimizer scalars")
    optim_state = None if meta.get("optim") is None else {"arrays": optim_arrays, "scalars": meta["optim"]}
    return Checkpoint(model_state, optim_state, meta.get("config"), meta.get("extra"), path)


def _get(d, key):
    return d.get(key) if isinstance(d, dict) else None


def load_into(model, optimizer, path) -> Checkpoint:
    """Load a checkpoint into ``model`` (strict) and ``optimizer`` (if not None).

    Missing or unexpected parameter names raise KeyError listing them all, a
    shape mismatch raises ValueError; both name the file. The model and the
    optimizer state are both checked before anything is copied.

    Returns:
        the ``Checkpoint``, for its ``config`` and ``extra``.
    """
    ckpt = load(path)
    if optimizer is not None and ckpt.optim_state is None:
        raise ValueError(f"{ckpt.path} holds no optimizer state, but an optimizer was given to load into")
    try:
        if optimizer is not None:
            optimizer.check_state_dict(ckpt.optim_state)  # before the model changes
        model.load_state_dict(ckpt.model_state, strict=True)
        if optimizer is not None:
            optimizer.load_state_dict(ckpt.optim_state)
    except (KeyError, ValueError) as e:
        msg = e.args[0] if e.args else str(e)
        raise type(e)(f"checkpoint {ckpt.path} does not fit: {msg}") from None
    return ckpt
