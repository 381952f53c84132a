import numpy as np
import pytest

from minitransformer import backend
from minitransformer.gradcheck import check_module, check_op
from minitransformer.nn.layernorm import LayerNorm, layernorm_backward, layernorm_forward
from tests.conftest import assert_close, randn, require


def _random_layer(rng, d_model, dtype="float64"):
    """A LayerNorm with random (not unit) gamma and nonzero beta."""
    layer = LayerNorm(d_model).to(dtype=dtype)
    layer.gamma.data[...] = backend.asarray(rng.uniform(0.5, 2.0, d_model) * rng.choice([-1.0, 1.0], d_model))
    layer.beta.data[...] = backend.asarray(rng.standard_normal(d_model))
    return layer


def test_layernorm_op_gradcheck_batched(rng):
    x = randn(rng, 3, 4, 5)  # B=3, T=4, d_model=5
    gamma = randn(rng, 5)
    beta = randn(rng, 5)
    r = check_op(layernorm_forward, layernorm_backward, (x, gamma, beta))
    assert r.passed, r
    assert set(r.errors) == {"arg0", "arg1", "arg2"}


def test_layernorm_op_gradcheck_large_offset_and_scale(rng):
    # rows far from zero with a small spread: the mean/variance terms of dx dominate
    x = 7.0 + 0.1 * randn(rng, 2, 3, 6)
    r = check_op(layernorm_forward, layernorm_backward, (x, randn(rng, 6), randn(rng, 6)))
    assert r.passed, r


def test_layernorm_module_gradcheck(rng):
    layer = _random_layer(rng, 5)
    r = check_module(layer, (randn(rng, 2, 3, 5),))
    assert r.passed, r
    assert set(r.errors) == {"arg0", "gamma", "beta"}


def test_layernorm_matches_loop(rng):
    x = randn(rng, 2, 3, 4)
    gamma = randn(rng, 4)
    beta = randn(rng, 4)
    y, _ = layernorm_forward(x, gamma, beta, eps=1e-5)
    xh, gh, bh, yh = (backend.to_numpy(a) for a in (x, gamma, beta, y))
    for b in range(2):
        for t in range(3):
            row = [float(v) for v in xh[b, t]]
            mu = sum(row) / 4
            var = sum((v - mu) ** 2 for v in row) / 4  # biased
            for j in range(4):
                ref = gh[j] * (row[j] - mu) / (var + 1e-5) ** 0.5 + bh[j]
                assert abs(yh[b, t, j] - ref) < 1e-12


def test_layernorm_backward_matches_long_form(rng):
    # the compact dx against the textbook chain rule through mu and var
    x = randn(rng, 3, 7)
    gamma = randn(rng, 7)
    dy = randn(rng, 3, 7)
    eps = 1e-5
    _, cache = layernorm_forward(x, gamma, randn(rng, 7), eps)
    dx, dgamma, dbeta = layernorm_backward(dy, cache)
    xh, gh, dyh = (backend.to_numpy(a) for a in (x, gamma, dy))
    n = 7
    mu = xh.mean(-1, keepdims=True)
    var = ((xh - mu) ** 2).mean(-1, keepdims=True)
    dxhat = dyh * gh
    dvar = (dxhat * (xh - mu)).sum(-1, keepdims=True) * -0.5 * (var + eps) ** -1.5
    dmu = -(dxhat / np.sqrt(var + eps)).sum(-1, keepdims=True) + dvar * (-2.0 * (xh - mu)).mean(-1, keepdims=True)
    ref = dxhat / np.sqrt(var + eps) + dvar * 2.0 * (xh - mu) / n + dmu / n
    assert_close(dx, ref, rtol=1e-10, atol=1e-12)
    assert_close(dgamma, (dyh * (xh - mu) / np.sqrt(var + eps)).sum(0), rtol=1e-10)
    assert_close(dbeta, dyh.sum(0), rtol=1e-12)


def test_layernorm_zero_variance_rows_are_finite(rng):
    layer = _random_layer(rng, 4, dtype="float32")
    x = backend.asarray(np.stack([np.full((3, 4), 2.5), np.zeros((3, 4))]), dtype="float32")
    y = layer(x)
    dx = layer.backward(randn(rng, 2, 3, 4, dtype="float32"))
    for a in (y, dx, layer.gamma.grad, layer.beta.grad):
        assert np.isfinite(backend.to_numpy(a)).all()
    # x_hat = 0 on a constant row, so y = beta
    assert_close(y, np.broadcast_to(backend.to_numpy(layer.beta.data), (2, 3, 4)), rtol=0, atol=1e-5)


def test_layernorm_zero_variance_gradcheck(rng):
    x = backend.asarray(np.full((2, 5), 3.0))
    r = check_op(layernorm_forward, layernorm_backward, (x, randn(rng, 5), randn(rng, 5)))
    assert r.passed, r


def test_layernorm_grads_accumulate(rng):
    layer = _random_layer(rng, 4)
    x = randn(rng, 2, 3, 4)
    dy = randn(rng, 2, 3, 4)
    layer(x)
    layer.backward(dy)
    once = (layer.gamma.grad.copy(), layer.beta.grad.copy())
    layer(x)
    layer.backward(dy)
    assert_close(layer.gamma.grad, 2 * once[0])
    assert_close(layer.beta.grad, 2 * once[1])
    layer.zero_grad()
    assert float(abs(layer.gamma.grad).max()) == 0.0


def test_layernorm_backward_does_not_mutate_dy_or_cache(rng):
    x = randn(rng, 2, 3, 4)
    _, cache = layernorm_forward(x, randn(rng, 4), randn(rng, 4))
    saved = [a.copy() for a in cache]
    dy = randn(rng, 2, 3, 4)
    dy0 = dy.copy()
    layernorm_backward(dy, cache)
    assert_close(dy, dy0, rtol=0)
    for a, b in zip(cache, saved, strict=True):
        assert_close(a, b, rtol=0)


def test_layernorm_backward_before_forward_raises():
    with pytest.raises(RuntimeError, match="before forward"):
        LayerNorm(4).backward(np.zeros((2, 4), dtype=np.float32))


def test_layernorm_float32_in_float32_out(rng):
    layer = LayerNorm(4)
    y = layer(randn(rng, 2, 3, 4, dtype="float32"))
    dx = layer.backward(randn(rng, 2, 3, 4, dtype="float32"))
    assert y.dtype == np.float32 and dx.dtype == np.float32
    assert layer.gamma.grad.dtype == np.float32 and layer.beta.grad.dtype == np.float32


def test_layernorm_init_and_normalises(rng):
    layer = LayerNorm(6)
    assert_close(layer.gamma.data, np.ones(6), rtol=0)
    assert_close(layer.beta.data, np.zeros(6), rtol=0)
    y = backend.to_numpy(layer(randn(rng, 3, 6, dtype="float32") * 5.0 + 2.0))
    assert np.abs(y.mean(-1)).max() < 1e-5
    assert np.abs(y.var(-1) - 1.0).max() < 1e-3  # var / (var + eps) with var ~ 25


def test_layernorm_bad_inputs(rng):
    layer = LayerNorm(4)
    with pytest.raises(ValueError, match="expected last dimension 4, got shape \\(2, 5\\)"):
        layer(randn(rng, 2, 5, dtype="float32"))
    with pytest.raises(TypeError, match="float64 does not match"):
        layer(randn(rng, 2, 4, dtype="float64"))
    with pytest.raises(TypeError, match="NumPy or CuPy array"):
        layer([[1.0, 2.0, 3.0, 4.0]])


@pytest.mark.torch
def test_layernorm_torch_parity(rng):
    torch = require("torch")
    layer = _random_layer(rng, 6)
    x = randn(rng, 3, 4, 6)
    dy = randn(rng, 3, 4, 6)
    ref = torch.nn.LayerNorm(6, eps=1e-5).double()
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(backend.to_numpy(layer.gamma.data)))
        ref.bias.copy_(torch.from_numpy(backend.to_numpy(layer.beta.data)))
    xt = torch.from_numpy(backend.to_numpy(x)).requires_grad_()
    yt = ref(xt)
    yt.backward(torch.from_numpy(backend.to_numpy(dy)))
    y = layer(x)
    dx = layer.backward(dy)
    np.testing.assert_allclose(backend.to_numpy(y), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(backend.to_numpy(dx), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(backend.to_numpy(layer.gamma.grad), ref.weight.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(backend.to_numpy(layer.beta.grad), ref.bias.grad.numpy(), rtol=1e-10, atol=1e-12)
