import numpy as np
import pytest

from minitransformer import backend
from minitransformer.gradcheck import check_module
from minitransformer.nn.feedforward import FeedForward
from tests.conftest import assert_close, randn, require


@pytest.mark.parametrize("activation", ["relu", "gelu", "gelu_tanh"])
def test_feedforward_gradcheck(rng, activation):
    ff = FeedForward(4, 8, activation=activation).to(dtype="float64")
    r = check_module(ff, (randn(rng, 2, 3, 4),))
    assert r.passed, r


def test_feedforward_gradcheck_with_replayed_dropout(rng):
    ff = FeedForward(4, 8, dropout=0.4).to(dtype="float64")
    r = check_module(ff, (randn(rng, 2, 3, 4),))
    assert r.passed, r


def test_feedforward_matches_formula(rng):
    ff = FeedForward(4, 6).to(dtype="float64")
    x = randn(rng, 2, 3, 4)
    W1, b1 = backend.to_numpy(ff.linear1.W.data), backend.to_numpy(ff.linear1.b.data)
    W2, b2 = backend.to_numpy(ff.linear2.W.data), backend.to_numpy(ff.linear2.b.data)
    xh = backend.to_numpy(x)
    ref = np.maximum(xh @ W1 + b1, 0.0) @ W2 + b2
    assert_close(ff(x), ref, rtol=1e-12)


def test_feedforward_float32_and_backward_before_forward(rng):
    ff = FeedForward(4, 8)
    assert ff(randn(rng, 2, 3, 4, dtype="float32")).dtype == np.float32
    with pytest.raises(RuntimeError, match="FeedForward.backward called before forward"):
        FeedForward(4, 8).backward(randn(rng, 2, 3, 4, dtype="float32"))


@pytest.mark.torch
def test_feedforward_torch_parity(rng):
    torch = require("torch")
    from minitransformer.interop.torch import load_from_torch

    ff = FeedForward(4, 8, activation="gelu").to(dtype="float64")
    l1, l2 = torch.nn.Linear(4, 8).double(), torch.nn.Linear(8, 4).double()
    load_from_torch(ff.linear1, l1)
    load_from_torch(ff.linear2, l2)
    x = randn(rng, 2, 3, 4)
    dy = randn(rng, 2, 3, 4)
    xt = torch.from_numpy(backend.to_numpy(x)).requires_grad_()
    yt = l2(torch.nn.functional.gelu(l1(xt)))
    yt.backward(torch.from_numpy(backend.to_numpy(dy)))
    assert_close(ff(x), yt.detach().numpy(), rtol=1e-10)
    assert_close(ff.backward(dy), xt.grad.numpy(), rtol=1e-10)
    assert_close(ff.linear1.W.grad, l1.weight.grad.numpy().T, rtol=1e-10)
    assert_close(ff.linear2.b.grad, l2.bias.grad.numpy(), rtol=1e-10)
