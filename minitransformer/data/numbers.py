"""Number words to digits, British style: ``"three hundred and forty-two" -> "342"``.

Words follow British usage: "and" before the last part below one hundred
whenever something bigger comes first (``101 -> "one hundred and one"``,
``1001 -> "one thousand and one"``, ``20015 -> "twenty thousand and
fifteen"``), tens joined to units by a hyphen (``"forty-two"``), no commas.
The target is the plain decimal number, which is the underlying value.

Sampling first picks a number of digits uniformly, then a value with that
many digits, so "seven" is as likely a length as "six hundred thousand ...".
"""

from __future__ import annotations

import random

from .base import Task

__all__ = ["MAX_SUPPORTED", "NumbersTask", "number_to_words"]

_ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
         "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_SCALES = ((1_000_000, "million"), (1_000, "thousand"))
MAX_SUPPORTED = 999_999_999


def _below_100(n: int) -> str:
    if n < 20:
        return _ONES[n]
    tens, units = divmod(n, 10)
    return _TENS[tens] + (f"-{_ONES[units]}" if units else "")


def _below_1000(n: int) -> str:
    hundreds, rest = divmod(n, 100)
    if not hundreds:
        return _below_100(rest)
    words = f"{_ONES[hundreds]} hundred"
    return f"{words} and {_below_100(rest)}" if rest else words


def number_to_words(n: int) -> str:
    """British English words for ``0 <= n <= 999_999_999``."""
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_SUPPORTED:
        raise ValueError(f"number_to_words: expected an int in [0, {MAX_SUPPORTED}], got {n!r}")
    if n == 0:
        return "zero"
    parts = []
    for scale, word in _SCALES:
        group, n = divmod(n, scale)
        if group:
            parts.append(f"{_below_1000(group)} {word}")
    if n:
        parts.append(f"and {_below_100(n)}" if parts and n < 100 else _below_1000(n))
    return " ".join(parts)


class NumbersTask(Task):
    """Number words -> digits, for values in ``[0, max_value]``.

    Args:
        max_value: largest value, at most 999,999,999 (default 999,999).
        test_fraction: share of the values reserved for the test split.
    """

    name = "numbers"

    def __init__(self, max_value: int = 999_999, test_fraction: float = 0.1):
        super().__init__(test_fraction)
        if isinstance(max_value, bool) or not isinstance(max_value, int) or not 1 <= max_value <= MAX_SUPPORTED:
            raise ValueError(f"numbers: max_value must be an int in [1, {MAX_SUPPORTED}], got {max_value!r}")
        self.max_value = max_value

    def _draw(self, rng: random.Random) -> tuple[str, str]:
        digits = rng.randint(1, len(str(self.max_value)))
        lo = 0 if digits == 1 else 10 ** (digits - 1)
        n = rng.randint(lo, min(10**digits - 1, self.max_value))
        return number_to_words(n), str(n)

    def source_chars(self) -> str:
        words = _ONES + _TENS + ("hundred", "and") + tuple(w for s, w in _SCALES if s <= self.max_value)
        return "".join(sorted(set("".join(words)) | {" ", "-"}))

    def target_chars(self) -> str:
        return "0123456789"
