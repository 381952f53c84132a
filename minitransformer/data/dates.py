"""Human-written dates to ISO dates: ``"Saturday, 28th of November 2026" -> "2026-11-28"``.

Every date between ``min_year`` and ``max_year`` (1900-2099 by default) is
equally likely; then one of the ``FORMATS`` below writes it. Weekdays come
from ``datetime``, so they are always right.

No source has two readings; the rules that guarantee it:

- slashes and dashes between numbers are US order, month first
  (``"11/28/26"``, ``"11/28/2026"``, ``"11-28-2026"``), except a four-digit
  year written first (``"2026/11/28"``);
- dots are day first (``"28.11.2026"``, ``"28.11.26"``);
- two-digit years mean 1950-2049 (``"49"`` is 2049, ``"50"`` is 1950), and
  a date outside that window is never written with a two-digit year.
"""

from __future__ import annotations

import datetime
import random

from .base import Task

__all__ = ["FORMATS", "TWO_DIGIT_YEARS", "DatesTask", "format_date", "ordinal"]

TWO_DIGIT_YEARS = (1950, 2049)
# str.format templates; the fields are filled by format_date. Example: 2026-11-28.
FORMATS = (
    "{Wday}, {o} of {Month} {Y}",  # Saturday, 28th of November 2026
    "{d} {Mon} {Y}",  # 28 Nov 2026
    "{Month} {d}, {Y}",  # November 28, 2026
    "{mm}/{dd}/{yy}",  # 11/28/26
    "{dd}.{mm}.{Y}",  # 28.11.2026
    "{Y}/{mm}/{dd}",  # 2026/11/28
    "{Mon} {o}, {Y}",  # Nov 28th, 2026
    "{wday} {d} {month} {Y}",  # saturday 28 november 2026
    "{dd}-{MON}-{Y}",  # 28-NOV-2026
    "{m}/{d}/{Y}",  # 11/28/2026
    "the {o} of {Month}, {Y}",  # the 28th of November, 2026
    "{Dy}, {d} {Mon} {Y}",  # Sat, 28 Nov 2026
    "{Wday} {Month} {o}, {Y}",  # Saturday November 28th, 2026
    "{o} {Month} {Y}",  # 28th November 2026
    "{MONTH} {d}, {Y}",  # NOVEMBER 28, 2026
    "{Y}{mm}{dd}",  # 20261128
    "{d}.{m}.{yy}",  # 28.11.26
    "{mm}-{dd}-{Y}",  # 11-28-2026
)
# Spelled out rather than taken from `calendar`, whose names follow the locale.
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
    "November", "December")
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def ordinal(n: int) -> str:
    """``1 -> "1st"``, ``2 -> "2nd"``, ``3 -> "3rd"``, ``11 -> "11th"``, ``22 -> "22nd"``."""
    suffix = "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _uses_two_digit_year(template: str) -> bool:
    return "{yy}" in template


def format_date(date: datetime.date, template: str) -> str:
    """Write ``date`` with one of the ``FORMATS`` templates (names fixed in English)."""
    if _uses_two_digit_year(template) and not TWO_DIGIT_YEARS[0] <= date.year <= TWO_DIGIT_YEARS[1]:
        raise ValueError(f"format_date: {template!r} has a two-digit year, which only covers "
                         f"{TWO_DIGIT_YEARS[0]}-{TWO_DIGIT_YEARS[1]}; got {date.isoformat()}")
    month, wday = _MONTHS[date.month - 1], _WEEKDAYS[date.weekday()]
    return template.format(
        d=date.day, dd=f"{date.day:02d}", o=ordinal(date.day),
        m=date.month, mm=f"{date.month:02d}", Y=f"{date.year:04d}", yy=f"{date.year % 100:02d}",
        Month=month, month=month.lower(), MONTH=month.upper(),
        Mon=month[:3], MON=month[:3].upper(),
        Wday=wday, wday=wday.lower(), Dy=wday[:3],
    )


class DatesTask(Task):
    """Dates in many human formats -> ``"YYYY-MM-DD"``.

    Args:
        formats: templates to use (default: all ``FORMATS``).
        min_year, max_year: inclusive range of years, within 1900-2099 by default.
        test_fraction: share of the dates reserved for the test split.
    """

    name = "dates"

    def __init__(self, formats=FORMATS, min_year: int = 1900, max_year: int = 2099, test_fraction: float = 0.1):
        super().__init__(test_fraction)
        self.formats = tuple(formats)
        unknown = [f for f in self.formats if f not in FORMATS]
        if not self.formats or unknown:
            raise ValueError(f"dates: formats must be a non-empty subset of dates.FORMATS; unknown: {unknown}")
        if not 1 <= min_year <= max_year <= 9999:
            raise ValueError(f"dates: need 1 <= min_year <= max_year <= 9999, got {min_year}, {max_year}")
        if all(_uses_two_digit_year(f) for f in self.formats) and (
                min_year < TWO_DIGIT_YEARS[0] or max_year > TWO_DIGIT_YEARS[1]):
            raise ValueError(f"dates: only two-digit-year formats were given, which cannot write years outside "
                             f"{TWO_DIGIT_YEARS[0]}-{TWO_DIGIT_YEARS[1]}")
        self.min_year, self.max_year = int(min_year), int(max_year)
        self._first = datetime.date(self.min_year, 1, 1)
        self._n_days = (datetime.date(self.max_year, 12, 31) - self._first).days + 1
        self._all = self.formats
        self._no_yy = tuple(f for f in self.formats if not _uses_two_digit_year(f))

    def _draw(self, rng: random.Random) -> tuple[str, str]:
        date = self._first + datetime.timedelta(days=rng.randrange(self._n_days))
        in_window = TWO_DIGIT_YEARS[0] <= date.year <= TWO_DIGIT_YEARS[1]
        template = rng.choice(self._all if in_window else self._no_yy)
        return format_date(date, template), date.isoformat()

    def source_chars(self) -> str:
        # One year in the two-digit window shows every month, weekday and day digit of every template.
        chars = set("0123456789")
        day = datetime.date(2001, 1, 1)
        while day.year == 2001:
            for template in self.formats:
                chars.update(format_date(day, template))
            day += datetime.timedelta(days=1)
        return "".join(sorted(chars))

    def target_chars(self) -> str:
        return "-0123456789"
