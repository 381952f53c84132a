"""The three warm-up tasks: copy, reverse and sort a random string.

Each source is ``L`` symbols drawn uniformly from ``alphabet``, with ``L``
uniform in ``[min_len, max_len]``. The target is the same string, the string
backwards, or its symbols sorted in alphabet order. The held-out split is
decided by the target (see ``base.py``): for sort that is the multiset of
symbols, so a test multiset is never seen in training in any order.
"""

from __future__ import annotations

import random
import string

from .base import Task

__all__ = ["DEFAULT_ALPHABET", "CopyTask", "ReverseTask", "SequenceTask", "SortTask"]

DEFAULT_ALPHABET = string.digits + string.ascii_lowercase


class SequenceTask(Task):
    """Base of copy / reverse / sort: random strings over ``alphabet``.

    Args:
        alphabet: the symbols, distinct single characters.
        min_len, max_len: inclusive range of the source length, 1 <= min_len <= max_len.
        test_fraction: share of the targets reserved for the test split.
    """

    def __init__(self, alphabet: str = DEFAULT_ALPHABET, min_len: int = 3, max_len: int = 10,
                 test_fraction: float = 0.1):
        super().__init__(test_fraction)
        if not alphabet or len(set(alphabet)) != len(alphabet):
            raise ValueError(f"{self.name}: alphabet must be non-empty distinct characters, got {alphabet!r}")
        if not 1 <= min_len <= max_len:
            raise ValueError(f"{self.name}: need 1 <= min_len <= max_len, got min_len={min_len}, max_len={max_len}")
        self.alphabet = alphabet
        self.min_len, self.max_len = int(min_len), int(max_len)
        self._rank = {c: i for i, c in enumerate(alphabet)}

    def transform(self, seq: str) -> str:
        """The target of ``seq``."""
        raise NotImplementedError

    def _draw(self, rng: random.Random) -> tuple[str, str]:
        L = rng.randint(self.min_len, self.max_len)
        src = "".join(rng.choice(self.alphabet) for _ in range(L))
        return src, self.transform(src)

    def source_chars(self) -> str:
        return "".join(sorted(self.alphabet))

    def target_chars(self) -> str:
        return "".join(sorted(self.alphabet))


class CopyTask(SequenceTask):
    """``"a3k9" -> "a3k9"``."""

    name = "copy"

    def transform(self, seq: str) -> str:
        return seq


class ReverseTask(SequenceTask):
    """``"a3k9" -> "9k3a"``."""

    name = "reverse"

    def transform(self, seq: str) -> str:
        return seq[::-1]


class SortTask(SequenceTask):
    """``"a3k9" -> "39ak"`` (sorted in alphabet order)."""

    name = "sort"

    def transform(self, seq: str) -> str:
        return "".join(sorted(seq, key=self._rank.__getitem__))
