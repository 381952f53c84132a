"""The gradient checker itself: it must pass right backwards and catch wrong ones.

A checker that passes everything is worse than none, so most tests here feed
it deliberately broken backward passes (built from ``linear_backward``) and
assert that it fails them by a wide margin.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from minitransformer import backend
from minitransformer.gradcheck import CheckResult, check_module, check_op, format_table, numeric_grad, rel_error
from minitransformer.nn.linear import Linear, linear_backward, linear_forward
from minitransformer.nn.module import Module, Parameter
from tests.conftest import assert_close, randn

# -- rel_error ---------------------------------------------------------------------


def test_rel_error_hand_computed():
    a = np.array([1.0, 2.0, -3.0])
    b = np.array([1.0, 2.5, -3.0])
    # max|a-b| = 0.5; max|a| + max|b| = 3 + 3 = 6
    assert rel_error(a, b) == pytest.approx(0.5 / 6.0, rel=1e-15)
    assert rel_error(a, a) == 0.0
    assert rel_error(a, -a) == pytest.approx(6.0 / 6.0)
    # normwise, not elementwise: a tiny absolute error on a zero entry is fine
    assert rel_error(np.array([0.0, 10.0]), np.array([1e-9, 10.0])) == pytest.approx(1e-9 / 20.0)


def test_rel_error_floor_and_edge_cases():
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0
    # both tiny: the denominator floor 1e-8 makes 1e-10 vs 0 a 1e-2 error
    assert rel_error(np.array([1e-10]), np.array([0.0])) == pytest.approx(1e-2)
    assert rel_error(np.zeros((0, 3)), np.zeros((0, 3))) == 0.0
    assert rel_error(np.array(2.0), np.array(1.0)) == pytest.approx(1.0 / 3.0)
    with pytest.raises(ValueError, match=r"shapes differ, \(2,\) vs \(3,\)"):
        rel_error(np.zeros(2), np.zeros(3))


def test_rel_error_non_finite_is_inf():
    good = np.array([1.0, 2.0])
    assert rel_error(np.array([1.0, np.nan]), good) == math.inf
    assert rel_error(good, np.array([np.inf, 2.0])) == math.inf
    assert rel_error(np.array([np.nan]), np.array([np.nan])) == math.inf


def test_check_result_nan_never_passes():
    # regression: Python's max() skips a NaN that is not first, so a NaN gradient used to PASS
    for errors, nan_name in (({"a": 1e-9, "b": math.nan}, "b"), ({"a": math.nan, "b": 1e-9}, "a")):
        r = CheckResult("op", "2x3", errors)
        assert not r.passed, errors
        assert r.worst_name == nan_name
        assert "FAIL" in str(r)


# -- numeric_grad ------------------------------------------------------------------


def test_numeric_grad_of_quadratic_is_exact(rng):
    # L(x) = 0.5 x^T A x + c^T x  ->  dL/dx = (A + A^T)/2 x + c ; centred differences are exact
    # for quadratics up to rounding
    n = 5
    A = rng.standard_normal((n, n))
    c = rng.standard_normal(n)
    x = rng.standard_normal(n)
    x0 = x.copy()
    g = numeric_grad(lambda: float(0.5 * x @ A @ x + c @ x), x)
    exact = 0.5 * (A + A.T) @ x + c
    np.testing.assert_allclose(g, exact, rtol=0, atol=1e-8)
    np.testing.assert_array_equal(x, x0)  # every nudge was undone


def test_numeric_grad_multi_dim_and_refuses_non_contiguous(rng):
    x = rng.standard_normal((3, 4))
    w = rng.standard_normal((3, 4))
    g = numeric_grad(lambda: float(np.sum(w * x * x)), x)
    np.testing.assert_allclose(g, 2 * w * x, rtol=0, atol=1e-8)
    with pytest.raises(ValueError, match="C-contiguous"):
        numeric_grad(lambda: 0.0, x.T)


# -- check_op on right and wrong backwards of linear -------------------------------


def _linear_args(rng, B=3, d_in=4, d_out=4):
    return randn(rng, B, d_in), randn(rng, d_in, d_out), randn(rng, d_out)


def test_correct_linear_backward_passes(rng):
    r = check_op(linear_forward, linear_backward, _linear_args(rng))
    assert r.passed, r
    assert r.worst < 1e-6
    assert set(r.errors) == {"arg0", "arg1", "arg2"}
    assert r.name == "linear"
    assert r.shapes == "3x4 4x4 4"


def _dx_times_two(dy, cache):
    dx, dW, db = linear_backward(dy, cache)
    return 2 * dx, dW, db


def _dW_transposed(dy, cache):
    # right shape when d_in == d_out, wrong values: the transpose bug a shape check misses
    dx, _, db = linear_backward(dy, cache)
    x2 = cache.x.reshape(-1, cache.W.shape[0])
    dy2 = dy.reshape(-1, cache.W.shape[1])
    return dx, (x2.T @ dy2).T, db


def _db_missing(dy, cache):
    dx, dW, db = linear_backward(dy, cache)
    return dx, dW, backend.get_array_module(db).zeros_like(db)


@pytest.mark.parametrize(
    ("wrong", "bad_arg"), [(_dx_times_two, "arg0"), (_dW_transposed, "arg1"), (_db_missing, "arg2")]
)
def test_check_op_catches_wrong_backwards(rng, wrong, bad_arg):
    x, W, b = _linear_args(rng)  # d_in == d_out == 4: the transposed dW has the right shape
    r = check_op(linear_forward, wrong, (x, W, b))
    assert not r.passed
    assert r.worst > 1e-3, r
    assert r.worst_name == bad_arg, r
    for other in {"arg0", "arg1", "arg2"} - {bad_arg}:
        assert r.errors[other] < 1e-6, (other, r)  # the blame lands on the broken tensor only


def _db_first_row(dy, cache):
    # right only at batch size 1: takes the first row instead of summing over the batch
    dx, dW, _ = linear_backward(dy, cache)
    return dx, dW, dy[0]


def test_batch_size_one_hides_a_batch_bug(rng):
    # why every check uses batch > 1: at B=1 dy[0] == dy.sum(0), so this bug is invisible
    r1 = check_op(linear_forward, _db_first_row, _linear_args(rng, B=1, d_in=3, d_out=2))
    assert r1.passed, r1
    r2 = check_op(linear_forward, _db_first_row, _linear_args(rng, B=2, d_in=3, d_out=2))
    assert not r2.passed
    assert r2.worst_name == "arg2" and r2.worst > 1e-3, r2


def test_check_op_wrt_and_kwargs(rng):
    x, W, _ = _linear_args(rng, d_in=3, d_out=2)
    r = check_op(linear_forward, lambda dy, c: linear_backward(dy, c)[:2], (x, W), kwargs={"b": None})
    assert r.passed and set(r.errors) == {"arg0", "arg1"}, r
    r = check_op(linear_forward, lambda dy, c: linear_backward(dy, c)[1], (x, W), wrt=[1], name="W only")
    assert r.passed and set(r.errors) == {"arg1"} and r.name == "W only", r
    with pytest.raises(ValueError, match="returned 3 gradients for 2 inputs"):
        check_op(linear_forward, linear_backward, (x, W))


def test_check_op_scalar_output(rng):
    def sumsq_forward(x):
        return (x * x).sum(), x

    def sumsq_backward(dy, x):
        return 2.0 * x * dy

    r = check_op(sumsq_forward, sumsq_backward, (randn(rng, 2, 3),))
    assert r.passed, r
    r = check_op(sumsq_forward, lambda dy, x: 3.0 * x * dy, (randn(rng, 2, 3),))
    assert not r.passed and r.worst > 1e-3, r


def test_check_op_fails_a_nan_gradient(rng):
    def nan_dx(dy, cache):
        dx, dW, db = linear_backward(dy, cache)
        dx = dx.copy()
        dx[-1, -1] = math.nan
        return dx, dW, db

    # the NaN sits in arg0, the first error: the order that max() used to hide
    r = check_op(linear_forward, nan_dx, _linear_args(rng))
    assert not r.passed, r
    assert r.worst == math.inf and r.worst_name == "arg0"


def test_float32_is_refused(rng):
    x, W, b = (a.astype("float32") for a in _linear_args(rng))
    with pytest.raises(TypeError, match="arg0 is float32.*float64"):
        check_op(linear_forward, linear_backward, (x, W, b))
    with pytest.raises(TypeError, match="W is float32.*float64"):
        check_module(Linear(4, 4), (randn(rng, 2, 4),), wrt=())
    with pytest.raises(TypeError, match="arg0 is float32.*float64"):
        check_module(Linear(4, 4).to(dtype="float64"), (x,))


# -- check_module --------------------------------------------------------------------


class _LinearForgetsBias(Linear):
    """A Linear whose backward never accumulates b.grad."""

    def backward(self, dy):
        dx, dW, _ = linear_backward(dy, self._pop_cache())
        self.W.grad += dW
        return dx


def test_check_module_checks_parameters_by_name(rng):
    good = check_module(Linear(3, 2).to(dtype="float64"), (randn(rng, 2, 5, 3),))
    assert good.passed, good
    assert set(good.errors) == {"arg0", "W", "b"}
    bad = check_module(_LinearForgetsBias(3, 2).to(dtype="float64"), (randn(rng, 2, 5, 3),))
    assert not bad.passed
    assert bad.worst_name == "b" and bad.errors["b"] > 1e-3, bad
    assert bad.errors["W"] < 1e-6 and bad.errors["arg0"] < 1e-6, bad
    only_inputs = check_module(_LinearForgetsBias(3, 2).to(dtype="float64"), (randn(rng, 2, 3),), params=False)
    assert only_inputs.passed and set(only_inputs.errors) == {"arg0"}, only_inputs


class _NoisyScale(Module):
    """y = x * m * w with a random mask m drawn every forward (like dropout)."""

    def __init__(self, d):
        super().__init__()
        self.w = Parameter(backend.asarray(backend.host_rng(3).standard_normal(d), dtype="float64"))

    def forward(self, x):
        m = backend.device_rng().random(x.shape, dtype="float64")  # (..., d)
        self._cache = (x, m)
        return x * m * self.w.data  # (..., d)

    def backward(self, dy):
        x, m = self._pop_cache()
        self.w.grad += (dy * x * m).reshape(-1, x.shape[-1]).sum(axis=0)  # (d,)
        return dy * m * self.w.data  # (..., d)


def test_check_module_replays_the_random_mask(rng):
    # check_module reseeds before every forward, so each nudged forward draws the same mask
    r = check_module(_NoisyScale(4), (randn(rng, 2, 3, 4),))
    assert r.passed, r


def test_check_module_leaves_no_cache_behind(rng):
    class Pair(Module):  # no cache of its own: only its children hold one
        def __init__(self):
            super().__init__()
            self.a = Linear(3, 3, dtype="float64")
            self.b = Linear(3, 2, dtype="float64")

        def forward(self, x):
            return self.b(self.a(x))  # (B, 2)

        def backward(self, dy):
            return self.a.backward(self.b.backward(dy))  # inverts b then a

    m = Pair()
    assert check_module(m, (randn(rng, 2, 3),)).passed
    with pytest.raises(RuntimeError, match="before forward"):
        m.backward(randn(rng, 2, 2))


def test_check_module_upstream_is_seeded(rng):
    x = randn(rng, 2, 3)
    layer = Linear(3, 2).to(dtype="float64")
    r1 = check_module(layer, (x,), seed=1)
    r2 = check_module(layer, (x,), seed=1)
    r3 = check_module(layer, (x,), seed=2)
    assert r1.errors == r2.errors  # same upstream gradient, bit for bit
    assert r1.errors != r3.errors


# -- reporting -----------------------------------------------------------------------


def test_format_table(rng):
    ok = check_op(linear_forward, linear_backward, _linear_args(rng))
    bad = check_op(linear_forward, _db_missing, _linear_args(rng), name="linear (no db)")
    text = format_table([ok, bad])
    lines = text.splitlines()
    assert lines[0].split() == ["check", "input", "shapes", "worst", "tensor", "rel.", "error", "tol"]
    assert set(lines[1]) <= {"-", " "}
    assert lines[2].startswith("linear ") and lines[2].endswith("PASS")
    assert lines[3].startswith("linear (no db)") and lines[3].endswith("FAIL")
    assert "arg2" in lines[3] and "1e-06" in lines[3]
    assert lines[-1] == "1/2 checks passed"
    assert format_table([]).splitlines()[-1] == "0/0 checks passed"


def test_check_result_str():
    r = CheckResult("op", "2x3", {"arg0": 2e-10, "arg1": 5e-9})
    assert r.passed and r.worst == 5e-9 and r.worst_name == "arg1"
    assert str(r) == "op: worst rel. error 5.0e-09 (arg1) < 1e-06? PASS"
    assert not CheckResult("op", "2x3", {"arg0": 2e-6}).passed
    assert CheckResult("op", "", {}).worst_name == "-"


def test_gradcheck_works_on_active_backend(rng):
    # inputs on the active backend (CuPy under MINITRANSFORMER_BACKEND=cupy)
    x, W, b = _linear_args(rng)
    assert backend.get_array_module(x) is backend.xp()
    x0, W0 = x.copy(), W.copy()
    r = check_op(linear_forward, linear_backward, (x, W, b))
    assert r.passed, r
    assert_close(x, x0, rtol=0)  # every nudge was undone
    assert_close(W, W0, rtol=0)
