"""Gradient checking by centred finite differences, for ops and for modules.

A backward pass is right when it agrees with the slope of its own forward.
For a random upstream gradient ``dy`` we look at the scalar

    L(x) = sum(forward(x) * dy)

whose gradient dL/dx is exactly what ``backward(dy)`` must return. Each input
element is nudged by +eps and -eps and

    dL/dx[i] ~= (L(x + eps e_i) - L(x - eps e_i)) / (2 eps)

(error O(eps^2)). In float64 with eps = 1e-6 the two agree to about 1e-9
relative error when backward is right, and disagree at 1e-2 or worse when a
term is missing or a transpose is wrong.

The relative error is measured per tensor, normwise:

    rel_error(a, b) = max|a - b| / max(1e-8, max|a| + max|b|)

Normwise, not elementwise, because many true gradients are exactly zero
(masked keys, ignored targets): an elementwise ratio of two rounding errors
would flag a correct backward.

A whole tensor can have a true gradient of exactly zero too: the key bias
``b_k`` of attention adds the same number to every score of a row, which
softmax ignores. Then both gradients are rounding noise (~1e-10) and their
ratio means nothing. So a tensor also passes when its absolute error
``max|a - b|`` is below ``atol`` (1e-8, well under any real gradient here);
the table marks such tensors as "abs" (see ``CheckResult``).

Used by the tests, the ``minitransformer gradcheck`` report and the notebooks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from . import backend

__all__ = ["CheckResult", "check_module", "check_op", "format_table", "numeric_grad", "rel_error"]


def rel_error(a, b) -> float:
    """Normwise relative error ``max|a-b| / max(1e-8, max|a| + max|b|)`` (0 for empty arrays).

    A NaN or inf in either array gives ``inf``: a non-finite gradient never passes.
    """
    a = backend.to_numpy(a)
    b = backend.to_numpy(b)
    if a.shape != b.shape:
        raise ValueError(f"rel_error: shapes differ, {a.shape} vs {b.shape}")
    if a.size == 0:
        return 0.0
    xp = backend.get_array_module(a)
    if not (bool(xp.isfinite(a).all()) and bool(xp.isfinite(b).all())):
        return math.inf
    num = float(xp.max(xp.abs(a - b)))
    den = max(1e-8, float(xp.max(xp.abs(a))) + float(xp.max(xp.abs(b))))
    return num / den


def numeric_grad(loss_fn, x, eps: float = 1e-6):
    """Centred-difference gradient of the scalar ``loss_fn()`` with respect to ``x``.

    ``x`` is perturbed in place one element at a time (and restored), so
    ``loss_fn`` must read ``x`` itself (a closure).

    Args:
        loss_fn: callable with no arguments returning a Python float.
        x: float64 array, (any shape).
    Returns:
        grad: array like ``x``.
    """
    xp = backend.get_array_module(x)
    grad = xp.zeros_like(x)  # (*x.shape)
    if not x.flags.c_contiguous:
        raise ValueError("numeric_grad perturbs x in place and needs a C-contiguous array")
    flat_x = x.reshape(-1)  # (x.size,) a view: writing it writes x
    flat_g = grad.reshape(-1)  # (x.size,) a view of grad
    for i in range(x.size):
        old = float(flat_x[i])
        flat_x[i] = old + eps
        plus = loss_fn()
        flat_x[i] = old - eps
        minus = loss_fn()
        flat_x[i] = old
        flat_g[i] = (plus - minus) / (2.0 * eps)
    return grad


def _badness(err: float) -> float:
    """Sort key for errors: NaN counts as worse than anything (``max`` would skip it)."""
    return math.inf if math.isnan(err) else err


@dataclass
class CheckResult:
    """Outcome of one gradient check: the relative error of every tensor."""

    name: str
    shapes: str
    errors: dict[str, float] = field(default_factory=dict)
    tol: float = 1e-6
    abs_errors: dict[str, float] = field(default_factory=dict)
    atol: float = 1e-8

    def add(self, key: str, analytic, numeric) -> None:
        """Record the relative and absolute error of one tensor."""
        self.errors[key] = rel_error(analytic, numeric)
        a, b = backend.to_numpy(analytic), backend.to_numpy(numeric)
        self.abs_errors[key] = float(abs(a - b).max()) if a.size else 0.0

    def tensor_passed(self, key: str) -> bool:
        """Relative error below ``tol``, or both gradients zero up to ``atol``."""
        return _badness(self.errors[key]) < self.tol or _badness(self.abs_errors.get(key, math.inf)) < self.atol

    @property
    def worst(self) -> float:
        """Worst relative error among tensors that do not pass on the absolute bound."""
        judged = [e for k, e in self.errors.items() if not self._zero(k)]
        return max(judged, key=_badness, default=0.0)

    def _zero(self, key: str) -> bool:
        """True for a tensor that passes only on the absolute bound (its relative error is noise)."""
        return not _badness(self.errors[key]) < self.tol and _badness(self.abs_errors.get(key, math.inf)) < self.atol

    @property
    def worst_name(self) -> str:
        judged = [k for k in self.errors if not self._zero(k)]
        return max(judged, key=lambda k: _badness(self.errors[k])) if judged else "-"

    @property
    def passed(self) -> bool:
        return all(self.tensor_passed(k) for k in self.errors)

    def __str__(self) -> str:
        status = "PASS" if self.passed else "FAIL"
        return f"{self.name}: worst rel. error {self.worst:.1e} ({self.worst_name}) < {self.tol:.0e}? {status}"


def _scalar(y, dy) -> float:
    """L = sum(y * dy) as a Python float."""
    xp = backend.get_array_module(y)
    return float(xp.sum(y * dy))


def _upstream(y, seed: int):
    """A random upstream gradient like ``y`` (1.0 for a scalar loss)."""
    xp = backend.get_array_module(y)
    if getattr(y, "ndim", 0) == 0:
        return xp.asarray(1.0, dtype=getattr(y, "dtype", "float64"))
    # An offset seed: with host_rng(seed) itself, inputs drawn from the same seed and shape would make
    # dy a copy of x, and for LayerNorm dx = 0 exactly, a check that can no longer fail.
    return xp.asarray(backend.host_rng(seed + 977_123).standard_normal(y.shape), dtype=y.dtype)  # (*y.shape)


def _require_float64(name: str, arrays: dict) -> None:
    for key, a in arrays.items():
        if a.dtype != backend.dtype("float64"):
            raise TypeError(
                f"gradient check of {name}: {key} is {a.dtype}; finite differences need "
                "float64 (float32 rounding swamps eps=1e-6). Cast inputs with "
                ".astype('float64') and modules with .to(dtype='float64')."
            )


def _as_tuple(grads):
    return grads if isinstance(grads, tuple) else (grads,)


def _shapes(arrays) -> str:
    return " ".join("x".join(str(d) for d in a.shape) or "()" for a in arrays)


def check_op(forward, backward, args, *, wrt=None, kwargs=None, name=None,
             tol: float = 1e-6, eps: float = 1e-6, seed: int = 0) -> CheckResult:
    """Check a pure pair ``forward(*args, **kwargs) -> (y, cache)``, ``backward(dy, cache) -> grads``.

    Args:
        forward, backward: the pair under test.
        args: positional arguments of forward; the float arrays among them are
            the candidates for checking.
        wrt: indices of ``args`` that backward returns gradients for, in
            order (default: every floating-point array argument).
        kwargs: keyword arguments of forward (masks, flags), held fixed.
    Returns:
        CheckResult with one error per checked argument, named ``arg{i}``.
    """
    kwargs = dict(kwargs or {})
    name = name or forward.__name__.removesuffix("_forward")
    if wrt is None:
        wrt = [i for i, a in enumerate(args) if backend.is_array(a) and a.dtype.kind == "f"]
    args = list(args)
    _require_float64(name, {f"arg{i}": args[i] for i in wrt})
    y, cache = forward(*args, **kwargs)
    dy = _upstream(y, seed)
    analytic = _as_tuple(backward(dy, cache))
    if len(analytic) != len(wrt):
        raise ValueError(f"{name}: backward returned {len(analytic)} gradients for {len(wrt)} inputs")
    result = CheckResult(name=name, shapes=_shapes([args[i] for i in wrt]), tol=tol)
    for i, g in zip(wrt, analytic, strict=False):
        num = numeric_grad(lambda: _scalar(forward(*args, **kwargs)[0], dy), args[i], eps)
        result.add(f"arg{i}", g, num)
    return result


def check_module(module, args, *, wrt=None, kwargs=None, name=None, tol: float = 1e-6,
                 eps: float = 1e-6, seed: int = 0, params: bool = True) -> CheckResult:
    """Check ``module.backward`` against finite differences, inputs and parameters.

    The module's RNG (dropout) is reseeded with ``seed`` before every forward,
    so each of the many forward passes draws the same mask: the check replays it.

    Args:
        module: a float64 Module whose ``backward(dy)`` returns the gradients of
            the ``wrt`` inputs (a tuple when there are several).
        args: positional inputs of forward.
        wrt: indices of ``args`` that backward returns gradients for
            (default: every floating-point array argument; ``()`` for none).
        kwargs: keyword inputs (masks), held fixed.
        params: also check every parameter's gradient.
    Returns:
        CheckResult with errors named ``arg{i}`` and by parameter name.
    """
    kwargs = dict(kwargs or {})
    name = name or type(module).__name__
    if wrt is None:
        wrt = [i for i, a in enumerate(args) if backend.is_array(a) and a.dtype.kind == "f"]
    args = list(args)
    named = dict(module.named_parameters()) if params else {}
    _require_float64(name, {**{f"arg{i}": args[i] for i in wrt},
                            **{k: p.data for k, p in named.items()}})

    def run():
        backend.manual_seed(seed)
        return module.forward(*args, **kwargs)

    y = run()
    dy = _upstream(y, seed)
    module.zero_grad()
    analytic = [g for g in _as_tuple(module.backward(dy)) if g is not None]
    if len(analytic) != len(wrt):
        raise ValueError(f"{name}: backward returned {len(analytic)} gradients for {len(wrt)} inputs")
    result = CheckResult(name=name, shapes=_shapes([args[i] for i in wrt]), tol=tol)
    param_grads = {k: p.grad.copy() for k, p in named.items()}

    def loss() -> float:
        return _scalar(run(), dy)

    for i, g in zip(wrt, analytic, strict=False):
        result.add(f"arg{i}", g, numeric_grad(loss, args[i], eps))
    for k, p in named.items():
        result.add(k, param_grads[k], numeric_grad(loss, p.data, eps))
    for m in module.modules():  # drop every cache of the last forward, children's too
        m._cache = None
    return result


def format_table(results: list[CheckResult]) -> str:
    """A plain-text table: name, shapes, worst tensor, worst relative error, tolerance, status."""
    rows = [("check", "input shapes", "worst tensor", "rel. error", "tol", "")]
    zero_notes = []
    for r in results:
        zeros = [k for k in r.errors if r._zero(k) and not _badness(r.errors[k]) < r.tol]
        status = "PASS" if r.passed else "FAIL"
        if zeros:
            status += "*"
            zero_notes.append(f"  * {r.name}: {', '.join(zeros)} has a true gradient of zero "
                              f"(|analytic - numeric| < {r.atol:.0e}; the ratio is rounding noise)")
        rows.append((r.name, r.shapes, r.worst_name, f"{r.worst:.1e}", f"{r.tol:.0e}", status))
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    lines = []
    for j, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.extend(zero_notes)
    n_pass = sum(r.passed for r in results)
    lines.append(f"\n{n_pass}/{len(results)} checks passed")
    return "\n".join(lines)
