"""The base of every synthetic task: seeded sampling and a held-out split.

A task turns an underlying value (a date, a number, a sequence) into a
``(source, target)`` string pair. The target is always the value written in
one canonical way (``"2026-11-28"``, ``"342"``, the copied/reversed/sorted
sequence), and the source always determines the target.

Held-out split. Whether a value belongs to ``"test"`` is decided by a stable
hash of the target string (BLAKE2b, the same on every machine and Python run),
so about ``test_fraction`` of all values are reserved for testing and
training can never draw one of them, in any format: ``"11/28/26"`` and
``"28 Nov 2026"`` share the target ``"2026-11-28"``, hence the split. Because
each source has a single target, sources of the two splits never overlap
either. Sampling draws from the whole value space and rejects values of the
other split.
"""

from __future__ import annotations

import hashlib
import math
import random

from .vocab import Vocab

__all__ = ["SPLITS", "Task"]

SPLITS = ("train", "test")


def _unit_hash(key: str) -> float:
    """A stable pseudo-random number in [0, 1) for ``key``."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


class Task:
    """A seeded generator of ``(source, target)`` pairs with a value-disjoint test split.

    Subclasses set ``name`` and implement ``_draw(rng)`` (one pair from the
    whole value space), ``source_chars()`` and ``target_chars()``.

    Args:
        test_fraction: share of the values reserved for the ``"test"`` split, in (0, 1).
    """

    name = "task"

    def __init__(self, test_fraction: float = 0.1):
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"{self.name}: test_fraction must be in (0, 1), got {test_fraction}")
        self.test_fraction = float(test_fraction)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, test_fraction={self.test_fraction})"

    # -- to implement -------------------------------------------------------
    def _draw(self, rng: random.Random) -> tuple[str, str]:
        raise NotImplementedError

    def source_chars(self) -> str:
        """Every character a source of this task can contain, sorted."""
        raise NotImplementedError

    def target_chars(self) -> str:
        """Every character a target of this task can contain, sorted."""
        raise NotImplementedError

    # -- shared -------------------------------------------------------------
    def split_of(self, target: str) -> str:
        """``"test"`` or ``"train"``: the split that owns the value written as ``target``."""
        return "test" if _unit_hash(f"{self.name}:{target}") < self.test_fraction else "train"

    def sample(self, n: int, seed: int = 0, split: str = "train", unique: bool = False) -> list[tuple[str, str]]:
        """``n`` pairs drawn with ``random.Random(seed)`` from one split.

        Args:
            n: number of pairs.
            seed: an int; the same seed gives the same pairs.
            split: ``"train"`` or ``"test"``; the two never share a value.
            unique: if True, no source string repeats (for evaluation sets).
        Returns:
            a list of ``n`` ``(source, target)`` string pairs.
        """
        if split not in SPLITS:
            raise ValueError(f"{self.name}: unknown split {split!r}; expected one of {SPLITS}")
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"{self.name}: n must be a non-negative int, got {n!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"{self.name}: seed must be an int, got {seed!r}")
        rng = random.Random(seed)
        share = min(self.test_fraction, 1.0 - self.test_fraction)
        budget = 1000 + n * math.ceil(50.0 / share)  # expected cost is n / share draws
        pairs: list[tuple[str, str]] = []
        seen: set[str] = set()
        for _ in range(budget):
            if len(pairs) == n:
                break
            src, tgt = self._draw(rng)
            if self.split_of(tgt) != split or (unique and src in seen):
                continue
            seen.add(src)
            pairs.append((src, tgt))
        if len(pairs) < n:
            raise RuntimeError(
                f"{self.name}: drew only {len(pairs)} of {n} {'distinct ' if unique else ''}{split!r} pairs "
                f"in {budget} tries; the task's value space is too small for this request"
            )
        return pairs

    def vocab_chars(self) -> tuple[str, str]:
        """``(source_chars, target_chars)``: everything the task can produce."""
        return self.source_chars(), self.target_chars()

    def build_vocabs(self, shared: bool = False) -> tuple[Vocab, Vocab]:
        """``(src_vocab, tgt_vocab)`` covering every pair; one shared vocabulary if ``shared``."""
        src, tgt = self.vocab_chars()
        if shared:
            v = Vocab(sorted(set(src) | set(tgt)))
            return v, v
        return Vocab(sorted(set(src))), Vocab(sorted(set(tgt)))
