"""Synthetic tasks (minitransformer.data.tasks, dates, numbers, sequences)."""

import datetime
import random
import re
import subprocess
import sys

import pytest

from minitransformer.data import DATE_FORMATS, format_date, get_task, number_to_words, ordinal, task_names

# ---------------------------------------------------------------- a date parser written for the test
MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december"]
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
SUFFIX = {1: "st", 2: "nd", 3: "rd", 21: "st", 22: "nd", 23: "rd", 31: "st"}  # every other day: "th"


def parse_date(s: str) -> str:
    """Independent reading of every format the task writes; checks weekday and ordinal suffix."""
    month = weekday = None
    for word in re.findall(r"[a-z]+", s.lower()):
        if word in ("the", "of", "st", "nd", "rd", "th"):
            continue
        if word in WEEKDAYS or word in [w[:3] for w in WEEKDAYS]:
            weekday = [w[:3] for w in WEEKDAYS].index(word[:3])
        elif word in MONTHS or word in [m[:3] for m in MONTHS]:
            month = [m[:3] for m in MONTHS].index(word[:3]) + 1
        else:
            raise AssertionError(f"unexpected word {word!r} in {s!r}")
    for day, suffix in re.findall(r"(\d+)(st|nd|rd|th)", s):
        assert suffix == SUFFIX.get(int(day), "th"), s
    if month is not None:
        nums = re.findall(r"\d+", s)
        year = next(int(n) for n in nums if len(n) == 4)
        day = next(int(n) for n in nums if len(n) <= 2)
    elif re.fullmatch(r"\d{8}", s):
        year, month, day = int(s[:4]), int(s[4:6]), int(s[6:])
    else:
        a, sep, b, c = re.fullmatch(r"(\d+)([/.-])(\d+)\2(\d+)", s).groups()
        if sep == "/" and len(a) == 4:
            year, month, day = int(a), int(b), int(c)
        elif sep in "/-":
            month, day, year = int(a), int(b), c
        else:
            day, month, year = int(a), int(b), c
        if isinstance(year, str):
            year = int(year) if len(year) == 4 else (2000 if int(year) < 50 else 1900) + int(year)
    date = datetime.date(year, month, day)
    if weekday is not None:
        assert weekday == date.weekday(), f"wrong weekday in {s!r}"
    return date.isoformat()


SOME_DAYS = [datetime.date(1950, 1, 1) + datetime.timedelta(days=k) for k in range(0, 36524, 97)]


def test_every_date_format_parses_back():
    assert len(DATE_FORMATS) >= 10
    for template in DATE_FORMATS:
        for day in SOME_DAYS:
            assert parse_date(format_date(day, template)) == day.isoformat(), template


def test_date_formats_on_the_issue_example():
    got = [format_date(datetime.date(2026, 11, 28), f) for f in DATE_FORMATS]
    for s in ("Saturday, 28th of November 2026", "28 Nov 2026", "November 28, 2026", "11/28/26", "28.11.2026",
              "2026/11/28", "Nov 28th, 2026", "saturday 28 november 2026", "28-NOV-2026"):
        assert s in got


def test_dates_with_strptime():
    day = datetime.date(1969, 7, 20)
    for template, fmt in [("{d} {Mon} {Y}", "%d %b %Y"), ("{Month} {d}, {Y}", "%B %d, %Y"),
                          ("{dd}.{mm}.{Y}", "%d.%m.%Y"), ("{Y}/{mm}/{dd}", "%Y/%m/%d"), ("{Y}{mm}{dd}", "%Y%m%d"),
                          ("{dd}-{MON}-{Y}", "%d-%b-%Y"), ("{Dy}, {d} {Mon} {Y}", "%a, %d %b %Y")]:
        assert datetime.datetime.strptime(format_date(day, template), fmt).date() == day


def test_weekdays_and_ordinals():
    full = "{Wday}, {o} of {Month} {Y}"
    assert format_date(datetime.date(2026, 11, 28), full) == "Saturday, 28th of November 2026"
    assert format_date(datetime.date(1900, 1, 1), full) == "Monday, 1st of January 1900"
    assert format_date(datetime.date(1969, 7, 20), full) == "Sunday, 20th of July 1969"
    assert format_date(datetime.date(2099, 12, 31), "{wday} {d} {month} {Y}") == "thursday 31 december 2099"
    want = "1st 2nd 3rd 4th 11th 12th 13th 21st 22nd 23rd 24th 31st 101st 111th 112th".split()
    assert [ordinal(int(w[:-2])) for w in want] == want


def test_dates_samples_parse_and_stay_in_range():
    task = get_task("dates")
    for src, tgt in task.sample(5000, seed=1) + task.sample(1000, seed=1, split="test"):
        assert parse_date(src) == tgt
        assert 1900 <= int(tgt[:4]) <= 2099


def test_two_digit_years_outside_1950_2049_are_refused():
    assert format_date(datetime.date(1950, 3, 4), "{mm}/{dd}/{yy}") == "03/04/50"
    assert format_date(datetime.date(2049, 3, 4), "{d}.{m}.{yy}") == "4.3.49"
    with pytest.raises(ValueError, match="two-digit year"):
        format_date(datetime.date(1926, 11, 28), "{mm}/{dd}/{yy}")


def test_no_date_source_has_two_targets():
    seen = {}
    edges = [datetime.date(y, 1, 1) + datetime.timedelta(days=k)
             for y in (1900, 1949, 1950, 1999, 2000, 2049, 2050, 2099) for k in range(365)]
    for day in edges:
        for template in DATE_FORMATS:
            if "{yy}" in template and not 1950 <= day.year <= 2049:
                continue
            src = format_date(day, template)
            assert seen.setdefault(src, day.isoformat()) == day.isoformat(), src
    task = get_task("dates")
    for src, tgt in task.sample(20000, seed=2) + task.sample(2000, seed=2, split="test"):
        assert seen.setdefault(src, tgt) == tgt, src


# ---------------------------------------------------------------- numbers
UNITS = {w: i for i, w in enumerate("zero one two three four five six seven eight nine ten eleven twelve thirteen "
                                      "fourteen fifteen sixteen seventeen eighteen nineteen".split())}
UNITS.update({w: 10 * i for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split(), 2)})


def words_to_int(s: str) -> int:
    total = current = 0
    for word in s.replace("-", " ").split():
        if word == "hundred":
            current *= 100
        elif word in ("thousand", "million"):
            total, current = total + current * {"thousand": 1000, "million": 10**6}[word], 0
        elif word != "and":
            current += UNITS[word]
    return total + current


def test_numbers_hand_written_cases():
    cases = {0: "zero", 7: "seven", 13: "thirteen", 20: "twenty", 42: "forty-two", 100: "one hundred",
             101: "one hundred and one", 342: "three hundred and forty-two", 1000: "one thousand",
             1001: "one thousand and one", 1100: "one thousand one hundred", 20015: "twenty thousand and fifteen",
             100001: "one hundred thousand and one", 120000: "one hundred and twenty thousand",
             999999: "nine hundred and ninety-nine thousand nine hundred and ninety-nine",
             1000005: "one million and five"}
    for n, words in cases.items():
        assert number_to_words(n) == words
        assert words_to_int(words) == n
    with pytest.raises(ValueError, match=r"expected an int in \[0, 999999999\]"):
        number_to_words(-1)


def test_numbers_round_trip_and_are_distinct():
    task = get_task("numbers")
    pairs = task.sample(5000, seed=3)
    assert all(words_to_int(src) == int(tgt) and 0 <= int(tgt) <= 999_999 for src, tgt in pairs)
    assert {len(t) for _, t in pairs} == set(range(1, 7))  # every digit count is drawn
    words = [number_to_words(n) for n in range(0, 1_000_000, 7)]
    assert len(set(words)) == len(words)


# ---------------------------------------------------------------- all tasks
def test_registry():
    assert task_names() == ["copy", "reverse", "sort", "dates", "numbers"]
    with pytest.raises(ValueError, match="unknown task 'french'; available tasks: copy, reverse, sort, dates"):
        get_task("french")
    with pytest.raises(TypeError, match="task 'copy': bad options"):
        get_task("copy", max_lenght=3)


def test_sequence_tasks_targets_and_lengths():
    for name, fn in [("copy", lambda s: s), ("reverse", lambda s: s[::-1]), ("sort", lambda s: "".join(sorted(s)))]:
        task = get_task(name, min_len=2, max_len=6)
        pairs = task.sample(1000, seed=4)
        assert all(tgt == fn(src) and 2 <= len(src) <= 6 for src, tgt in pairs)
        assert {len(s) for s, _ in pairs} == set(range(2, 7))
    with pytest.raises(ValueError, match="min_len <= max_len"):
        get_task("copy", min_len=5, max_len=4)


@pytest.mark.parametrize("name", ["copy", "reverse", "sort", "dates", "numbers"])
def test_split_never_overlaps(name):
    task = get_task(name)
    train = task.sample(20000, seed=5)
    test = task.sample(2000, seed=6, split="test")
    assert not {t for _, t in train} & {t for _, t in test}
    assert not {s for s, _ in train} & {s for s, _ in test}
    rng = random.Random(0)
    values = {task._draw(rng)[1] for _ in range(5000)}  # the whole value space, both splits
    share = sum(task.split_of(v) == "test" for v in values) / len(values)
    assert 0.07 < share < 0.13, share


@pytest.mark.parametrize("name", ["copy", "reverse", "sort", "dates", "numbers"])
def test_vocab_covers_every_sample_and_seeds_reproduce(name):
    task = get_task(name)
    pairs = task.sample(3000, seed=8)
    src_chars, tgt_chars = task.vocab_chars()
    assert set("".join(s for s, _ in pairs)) <= set(src_chars) and set("".join(t for _, t in pairs)) <= set(tgt_chars)
    sv, tv = task.build_vocabs()
    assert all(sv.decode(sv.encode(s)) == s and tv.decode(tv.encode(t)) == t for s, t in pairs[:200])
    shared, same = task.build_vocabs(shared=True)
    assert shared is same and set(shared.chars) == set(src_chars) | set(tgt_chars)
    assert task.sample(50, seed=8) == pairs[:50] and task.sample(50, seed=9) != pairs[:50]


def test_samples_are_the_same_in_another_process():
    code = ("from minitransformer.data import get_task; "
            "print([get_task(n).sample(5, seed=11, split=s) for n in ('dates', 'sort') for s in ('train', 'test')])")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert len(outs) == 1 and "-" in outs.pop()


def test_sample_arguments_and_unique():
    task = get_task("copy", alphabet="ab", min_len=1, max_len=3)  # 14 values in all
    pairs = task.sample(10, seed=0, unique=True)
    assert len({s for s, _ in pairs}) == 10
    with pytest.raises(RuntimeError, match="value space is too small"):
        task.sample(14, seed=0, unique=True)
    with pytest.raises(ValueError, match="unknown split 'valid'"):
        task.sample(3, split="valid")
    with pytest.raises(ValueError, match="n must be a non-negative int"):
        task.sample(-1)
    with pytest.raises(ValueError, match="test_fraction must be in"):
        get_task("numbers", test_fraction=1.0)
