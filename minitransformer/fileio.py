"""Writing files atomically: a reader sees the old file or the new one, never half of one.

Every file the library writes (checkpoints, plots, metrics, vocabularies,
safetensors) goes through ``atomic_write``: the data goes to a temporary file
in the same directory, is flushed to disk, and is then renamed over the target
with ``os.replace`` (atomic on POSIX and Windows). If anything fails, the
temporary file is removed and the old file is untouched.
"""

from __future__ import annotations

import contextlib
import os
import tempfile

__all__ = ["atomic_write"]


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb", encoding: str | None = None):
    """Context manager yielding a file object whose contents replace ``path`` on success.

    Args:
        path: the file to (re)write; its directory is created if needed.
        mode: ``"wb"`` (bytes) or ``"w"`` (text, with ``encoding``, UTF-8 by default).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write mode must be 'wb' or 'w', got {mode!r}")
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    suffix = os.path.splitext(path)[1]
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=directory)
    try:
        kwargs = {"encoding": encoding or "utf-8"} if mode == "w" else {}
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the user's files are readable like any other
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
