import math

import numpy as np
import pytest

from minitransformer import backend
from minitransformer.gradcheck import check_module, check_op
from minitransformer.nn.activations import (
    GELU,
    ReLU,
    gelu_backward,
    gelu_forward,
    get_activation,
    relu_backward,
    relu_forward,
)
from minitransformer.nn.tanh import Tanh, tanh_backward, tanh_forward
from tests.conftest import assert_close, randn, require

APPROX = ["none", "tanh"]


def _away_from_zero(rng, *shape, dtype="float64"):
    """ReLU's kink at 0 breaks finite differences: keep every |x| >= 0.1."""
    x = rng.standard_normal(shape) * 2.0
    x = np.where(np.abs(x) < 0.1, 0.5, x)
    return backend.asarray(x, dtype=dtype)


def test_relu_op_gradcheck(rng):
    r = check_op(relu_forward, relu_backward, (_away_from_zero(rng, 2, 3, 4),))
    assert r.passed, r


@pytest.mark.parametrize("approximate", APPROX)
def test_gelu_op_gradcheck(rng, approximate):
    x = randn(rng, 2, 3, 4) * 3.0  # wide range: both tails and the curved middle
    r = check_op(gelu_forward, gelu_backward, (x,), kwargs={"approximate": approximate})
    assert r.passed, r
    assert r.worst < 1e-8, r


def test_tanh_op_gradcheck(rng):
    x = randn(rng, 2, 3, 4) * 3.0  # saturated tails and the steep middle
    r = check_op(tanh_forward, tanh_backward, (x,))
    assert r.passed, r
    assert r.worst < 1e-8, r


def test_tanh_reference_values():
    xs = [-20.0, -2.0, -0.5, 0.0, 0.3, 1.0, 4.0]
    y, cache = tanh_forward(backend.asarray(xs))
    dx = tanh_backward(backend.asarray([2.0] * len(xs)), cache)
    for i, v in enumerate(xs):
        assert abs(float(y[i]) - math.tanh(v)) < 1e-15
        assert abs(float(dx[i]) - 2.0 / math.cosh(v) ** 2) < 1e-15  # d tanh / dx = sech^2
    assert float(y[0]) == -1.0 and float(dx[0]) == 0.0  # saturated: no NaN, no gradient


@pytest.mark.parametrize("module", [ReLU(), GELU(), GELU("tanh"), Tanh()], ids=repr)
def test_activation_module_gradcheck(rng, module):
    r = check_module(module, (_away_from_zero(rng, 2, 3, 4),))
    assert r.passed, r
    assert set(r.errors) == {"arg0"}


def test_relu_reference():
    x = backend.asarray([-2.0, -0.0, 0.0, 0.5, 3.0])
    y, cache = relu_forward(x)
    dx = relu_backward(backend.asarray([1.0, 2.0, 3.0, 4.0, 5.0]), cache)
    assert_close(y, [0.0, 0.0, 0.0, 0.5, 3.0], rtol=0)
    assert_close(dx, [0.0, 0.0, 0.0, 4.0, 5.0], rtol=0)  # derivative 0 at x = 0, as torch


def test_gelu_reference_values():
    xs = [-5.0, -1.5, -0.3, 0.0, 0.7, 1.0, 2.0, 6.0]
    y, cache = gelu_forward(backend.asarray(xs))
    dx = gelu_backward(backend.asarray([1.0] * len(xs)), cache)
    for i, v in enumerate(xs):
        phi_cdf = 0.5 * (1.0 + math.erf(v / math.sqrt(2.0)))
        phi_pdf = math.exp(-v * v / 2.0) / math.sqrt(2.0 * math.pi)
        assert abs(float(y[i]) - v * phi_cdf) < 1e-15
        assert abs(float(dx[i]) - (phi_cdf + v * phi_pdf)) < 1e-15
    assert abs(float(y[5]) - 0.8413447460685429) < 1e-15  # GELU(1) = Phi(1), the normal table's 0.841345


def test_gelu_tanh_reference_values():
    xs = [-4.0, -1.0, 0.0, 0.5, 3.0]
    y, _ = gelu_forward(backend.asarray(xs), approximate="tanh")
    for i, v in enumerate(xs):
        ref = 0.5 * v * (1.0 + math.tanh(math.sqrt(2.0 / math.pi) * (v + 0.044715 * v**3)))
        assert abs(float(y[i]) - ref) < 1e-15
    exact, _ = gelu_forward(backend.asarray(xs))
    assert_close(y, exact, atol=1e-3)  # the approximation is close but not equal
    assert float(abs(backend.to_numpy(y) - backend.to_numpy(exact)).max()) > 1e-6


@pytest.mark.parametrize("op", ["relu", "none", "tanh", "tanh_act"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_activation_dtype_preserved(rng, op, dtype):
    x = randn(rng, 2, 3, 4, dtype=dtype)
    dy = randn(rng, 2, 3, 4, dtype=dtype)
    if op == "relu":
        y, cache = relu_forward(x)
        dx = relu_backward(dy, cache)
    elif op == "tanh_act":
        y, cache = tanh_forward(x)
        dx = tanh_backward(dy, cache)
    else:
        y, cache = gelu_forward(x, approximate=op)
        dx = gelu_backward(dy, cache)
    assert y.dtype == np.dtype(dtype) and dx.dtype == np.dtype(dtype)


@pytest.mark.parametrize("name", ["relu", "gelu", "gelu_tanh", "tanh"])
def test_activation_module_float32(rng, name):
    m = get_activation(name)
    y = m(randn(rng, 2, 4, dtype="float32"))
    dx = m.backward(randn(rng, 2, 4, dtype="float32"))
    assert y.dtype == np.float32 and dx.dtype == np.float32


@pytest.mark.parametrize("module", [ReLU(), GELU(), GELU("tanh"), Tanh()], ids=repr)
def test_activation_backward_does_not_mutate(rng, module):
    x = randn(rng, 2, 5)
    x0 = x.copy()
    module(x)
    dy = randn(rng, 2, 5)
    dy0 = dy.copy()
    module.backward(dy)
    assert_close(dy, dy0, rtol=0)
    assert_close(x, x0, rtol=0)
    with pytest.raises(RuntimeError, match="before forward"):
        module.backward(dy)


def test_get_activation_names():
    assert isinstance(get_activation("relu"), ReLU)
    assert get_activation("gelu").approximate == "none"
    for name in ("gelu_tanh", "gelu_new", "gelu_pytorch_tanh"):
        m = get_activation(name)
        assert isinstance(m, GELU) and m.approximate == "tanh"
    assert isinstance(get_activation("tanh"), Tanh)  # Hugging Face's ACT2FN name
    assert get_activation("gelu") is not get_activation("gelu")  # fresh modules, separate caches


def test_activation_bad_inputs(rng):
    with pytest.raises(ValueError, match=r"approximate must be one of \('none', 'tanh'\), got 'fast'"):
        gelu_forward(randn(rng, 3), approximate="fast")
    with pytest.raises(ValueError, match="approximate must be one of"):
        GELU(approximate="exact")
    with pytest.raises(ValueError, match=r"unknown activation 'swish'.*'gelu_new'"):
        get_activation("swish")
    with pytest.raises(TypeError, match="expected float32 or float64, got int64"):
        GELU()(backend.asarray([1, 2, 3], dtype="int64"))
    with pytest.raises(TypeError, match="NumPy or CuPy array"):
        ReLU()([1.0, -1.0])
    with pytest.raises(TypeError, match="Tanh input: expected float32 or float64, got int64"):
        Tanh()(backend.asarray([1, 2, 3], dtype="int64"))


@pytest.mark.torch
@pytest.mark.parametrize("op", ["relu", "none", "tanh", "tanh_act"])
@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-10), ("float32", 1e-5)])
def test_activation_torch_parity(rng, op, dtype, rtol):
    torch = require("torch")
    F = torch.nn.functional
    x = randn(rng, 3, 4, 5, dtype=dtype) * 3.0
    dy = randn(rng, 3, 4, 5, dtype=dtype)
    m = ReLU() if op == "relu" else Tanh() if op == "tanh_act" else GELU(op)
    y = m(x)
    dx = m.backward(dy)
    xt = torch.from_numpy(backend.to_numpy(x).copy()).requires_grad_()
    yt = F.relu(xt) if op == "relu" else torch.tanh(xt) if op == "tanh_act" else F.gelu(xt, approximate=op)
    yt.backward(torch.from_numpy(backend.to_numpy(dy).copy()))
    atol = 1e-12 if dtype == "float64" else 1e-6
    assert_close(y, yt.detach().numpy(), rtol=rtol, atol=atol)
    assert_close(dx, xt.grad.numpy(), rtol=rtol, atol=atol)
