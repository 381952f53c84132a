import numpy as np
import pytest

from minitransformer import backend
from minitransformer.gradcheck import check_module, check_op
from minitransformer.nn import Linear, linear_backward, linear_forward
from tests.conftest import assert_close, randn, require


def test_linear_op_gradcheck_batched(rng):
    x = randn(rng, 3, 5, 4)  # B=3, T=5, d_in=4
    W = randn(rng, 4, 6)
    b = randn(rng, 6)
    r = check_op(linear_forward, linear_backward, (x, W, b))
    assert r.passed, r


def test_linear_module_gradcheck(rng):
    layer = Linear(4, 6).to(dtype="float64")
    r = check_module(layer, (randn(rng, 2, 3, 4),))
    assert r.passed, r
    assert set(r.errors) == {"arg0", "W", "b"}


def test_linear_matches_loop(rng):
    x = randn(rng, 2, 3, 4)
    W = randn(rng, 4, 5)
    b = randn(rng, 5)
    y, _ = linear_forward(x, W, b)
    for i in range(2):
        for t in range(3):
            for j in range(5):
                ref = sum(x[i, t, k] * W[k, j] for k in range(4)) + b[j]
                assert abs(y[i, t, j] - ref) < 1e-12


def test_linear_grads_accumulate(rng):
    layer = Linear(4, 3).to(dtype="float64")
    x = randn(rng, 2, 4)
    dy = randn(rng, 2, 3)
    layer(x)
    layer.backward(dy)
    once = layer.W.grad.copy()
    layer(x)
    layer.backward(dy)
    assert_close(layer.W.grad, 2 * once)
    layer.zero_grad()
    assert float(abs(layer.W.grad).max()) == 0.0


def test_linear_backward_does_not_mutate_dy(rng):
    layer = Linear(4, 3).to(dtype="float64")
    layer(randn(rng, 2, 4))
    dy = randn(rng, 2, 3)
    dy0 = dy.copy()
    layer.backward(dy)
    assert_close(dy, dy0, rtol=0)


def test_linear_backward_before_forward_raises():
    with pytest.raises(RuntimeError, match="before forward"):
        Linear(4, 3).backward(np.zeros((2, 3), dtype=np.float32))


def test_linear_float32_in_float32_out(rng):
    y = Linear(4, 3)(randn(rng, 2, 4, dtype="float32"))
    assert y.dtype == np.float32


def test_linear_bad_inputs(rng):
    layer = Linear(4, 3)
    with pytest.raises(ValueError, match="expected last dimension 4, got shape \\(2, 5\\)"):
        layer(randn(rng, 2, 5, dtype="float32"))
    with pytest.raises(TypeError, match="float64 does not match"):
        layer(randn(rng, 2, 4, dtype="float64"))
    with pytest.raises(TypeError, match="NumPy or CuPy array"):
        layer([[1.0, 2.0, 3.0, 4.0]])


def test_linear_same_weights_for_same_seed():
    backend.manual_seed(7)
    a = Linear(4, 3)
    backend.manual_seed(7)
    b = Linear(4, 3)
    np.testing.assert_array_equal(backend.to_numpy(a.W.data), backend.to_numpy(b.W.data))


@pytest.mark.torch
def test_linear_torch_parity(rng):
    torch = require("torch")
    layer = Linear(4, 6).to(dtype="float64")
    x = randn(rng, 3, 5, 4)
    dy = randn(rng, 3, 5, 6)
    ref = torch.nn.Linear(4, 6).double()
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(backend.to_numpy(layer.W.data).T))
        ref.bias.copy_(torch.from_numpy(backend.to_numpy(layer.b.data)))
    xt = torch.from_numpy(backend.to_numpy(x)).requires_grad_()
    yt = ref(xt)
    yt.backward(torch.from_numpy(backend.to_numpy(dy)))
    y = layer(x)
    dx = layer.backward(dy)
    np.testing.assert_allclose(backend.to_numpy(y), yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(backend.to_numpy(dx), xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(backend.to_numpy(layer.W.grad), ref.weight.grad.numpy().T, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(backend.to_numpy(layer.b.grad), ref.bias.grad.numpy(), rtol=1e-12, atol=1e-12)
