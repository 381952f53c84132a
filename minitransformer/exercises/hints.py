"""Name the mistake behind a wrong array: compare the student's answer with transformations of the true one.

``explain(name, mine, true, ...)`` tries, in order: the shape (transposed?
a leading axis not summed?), NaN or inf, all zeros, the known mistakes of
the exercise (``grading.py``: a missing term, a forgotten mask), a constant
factor (x2, 1/sqrt(d_k), a flipped sign), a transpose, and another output's
value (gradients returned in the wrong order). The first match is the hint.
All comparisons are normwise relative errors, as in ``gradcheck.rel_error``.
"""

from __future__ import annotations

import math

from ..gradcheck import rel_error

__all__ = ["REL_TOL", "ABS_TOL", "explain", "matches"]

REL_TOL = 1e-6  # as the gradient checks: a right float64 answer is ~1e-15 away
ABS_TOL = 1e-9  # a true gradient of exactly 0 (b_k of attention): both sides are rounding noise


def matches(mine, true) -> bool:
    """Same shape and equal up to REL_TOL (normwise), or both within ABS_TOL of each other."""
    if mine.shape != true.shape:
        return False
    if rel_error(mine, true) < REL_TOL:
        return True
    return mine.size > 0 and bool(abs(mine - true).max() < ABS_TOL)


def _shape_hint(name, mine, true) -> str:
    got, want = tuple(mine.shape), tuple(true.shape)
    text = f"{name} has shape {got}, expected {want}"
    if len(got) >= 2 and got == want[::-1]:
        return text + ": transposed?"
    if len(got) >= 2 and len(got) == len(want) and got[:-2] + got[-2:][::-1] == want:
        return text + ": the last two axes are swapped (transposed?)"
    if len(got) > len(want) and got[len(got) - len(want):] == want:
        return text + ": sum over every leading axis too (reshape to (-1, d) first)"
    if len(got) < len(want):
        return text + ": summed over an axis that should stay?"
    if mine.size == true.size:
        return text + ": reshaped in the wrong order?"
    return text


def _factor_hint(name, c, factors) -> str:
    if math.isclose(c, -1.0, rel_tol=1e-6):
        return f"{name} has the wrong sign (yours = -1 x the true one)"
    for label, v in {"2": 2.0, **factors}.items():
        for value, text in ((v, label), (1.0 / v, f"1/{label}")):
            if math.isclose(c, value, rel_tol=1e-6):
                return f"{name} is off by a factor of {text} (yours = {text} x the true one)"
            if math.isclose(c, -value, rel_tol=1e-6):
                return f"{name} has the wrong sign and is off by a factor of {text} (yours = -{text} x the true one)"
    return f"{name} is off by a constant factor: yours = {c:.4g} x the true one"


def explain(name: str, mine, true, *, factors=None, mistakes=(), others=None, function: str = "",
            nonfinite: str = "") -> str:
    """One line saying how ``mine`` differs from ``true``.

    Args:
        name: the array's name (``dK``).
        mine, true: host arrays, the student's and the reference's.
        factors: named constants of the problem, ``{"sqrt(d_k)": 1.732}``.
        mistakes: ``[(message, array)]``: what known mistakes return on this problem.
        others: ``{name: true array}`` of the probe's other outputs (to spot a swapped order).
        function: where to look, for the fallback hint.
        nonfinite: what a NaN or inf means on this problem.
    Returns:
        the hint.
    """
    factors = dict(factors or {})
    if mine.shape != true.shape:
        for other, a in (others or {}).items():
            if other != name and a.shape == mine.shape and matches(mine, a):
                return f"{name} holds the value of {other}: return the gradients in the forward's argument order"
        return _shape_hint(name, mine, true)
    if mine.size and not bool(abs(mine).max() < math.inf):  # NaN or inf
        return f"{name} contains NaN or inf" + (f": {nonfinite}" if nonfinite else "")
    if mine.size and float(abs(mine).max()) == 0.0 and float(abs(true).max()) > 0.0:
        return f"{name} is all zeros"
    for message, a in mistakes:
        if a.shape == mine.shape and matches(mine, a):
            return f"{name}: {message}"
    flat_m, flat_t = mine.reshape(-1), true.reshape(-1)
    tt = float(flat_t @ flat_t)
    if tt > 0.0:
        c = float(flat_m @ flat_t) / tt
        if c != 0.0 and not math.isclose(c, 1.0, rel_tol=1e-6) and matches(mine, c * true):
            return _factor_hint(name, c, factors)
    if mine.ndim >= 2 and mine.shape[-1] == mine.shape[-2] and matches(mine.swapaxes(-1, -2), true):
        return f"{name} is transposed (its last two axes are swapped)"
    for other, a in (others or {}).items():
        if other != name and a.shape == mine.shape and matches(mine, a):
            return f"{name} holds the value of {other}: return the gradients in the forward's argument order"
    where = f" of {function}" if function else ""
    return (f"{name} differs from the reference (rel. error {rel_error(mine, true):.1e}); "
            f"compare with the Math: block{where}")
