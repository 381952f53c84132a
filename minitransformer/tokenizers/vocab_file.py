"""Reading and writing ``vocab.txt``: one token per line, the id is the line number minus one.

Written atomically (a temp file in the same folder, then ``os.replace``), so a
crash mid-write never leaves a half-written vocabulary behind.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..fileio import atomic_write

__all__ = ["read_vocab", "save_vocab", "write_text_atomic"]


def read_vocab(path) -> list[str]:
    """The tokens of a ``vocab.txt``, in id order.

    Lines are split the way transformers reads them (universal newlines, so
    ``\\r\\n`` files work); the newline that ends the last line is not a token.
    Duplicates and missing special tokens are checked by the tokenizer.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"vocabulary file not found: {path!r}")
    try:
        with open(path, encoding="utf-8") as f:
            tokens = f.read().split("\n")
    except UnicodeDecodeError as e:
        raise ValueError(f"vocabulary file {path!r} is not UTF-8 text ({e})") from None
    if tokens and tokens[-1] == "":
        tokens.pop()
    if not tokens:
        raise ValueError(f"vocabulary file {path!r} is empty")
    return tokens


def write_text_atomic(path, text: str) -> str:
    """Write ``text`` (UTF-8, ``\\n`` line ends) to ``path`` through a temp file and a rename."""
    path = os.fspath(path)
    with atomic_write(path, "wb") as f:  # bytes: "\n" line ends on every platform
        f.write(text.encode("utf-8"))
    return path


def save_vocab(tokens: Sequence[str], path) -> str:
    """Write ``tokens`` one per line to ``path`` (atomically); returns the path."""
    bad = [t for t in tokens if not isinstance(t, str) or t == "" or any(c in t for c in "\n\r")]
    if bad:
        raise ValueError(f"save_vocab: tokens must be non-empty str without line breaks, got {bad[:3]!r}")
    return write_text_atomic(path, "".join(t + "\n" for t in tokens))
