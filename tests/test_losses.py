import math

import numpy as np
import pytest

from minitransformer import backend
from minitransformer.gradcheck import check_module, check_op
from minitransformer.nn.losses import CrossEntropyLoss, cross_entropy_backward, cross_entropy_forward
from tests.conftest import assert_close, randn, require

B, T, C = 2, 3, 5


def _targets(rng, ignore_index=-100):
    """(B, T) targets with two ignored positions, in different batch rows."""
    t = rng.integers(0, C, size=(B, T))
    t[0, 1] = ignore_index
    t[1, 2] = ignore_index
    return backend.asarray(t, dtype="int64")


def _naive_ce(logits, targets, ignore_index=-100, eps=0.0):
    """torch's definition, one position and one class at a time."""
    logits, targets = backend.to_numpy(logits), backend.to_numpy(targets)
    n_cls = logits.shape[-1]
    total, n = 0.0, 0
    for row, t in zip(logits.reshape(-1, n_cls).tolist(), targets.reshape(-1).tolist(), strict=True):
        if t == ignore_index:
            continue
        lse = math.log(sum(math.exp(v) for v in row))
        q = [(1.0 - eps) * (c == t) + eps / n_cls for c in range(n_cls)]
        total += -sum(q[c] * (row[c] - lse) for c in range(n_cls))
        n += 1
    return total / n


@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("ignore_index", [-100, 0])
def test_cross_entropy_op_gradcheck(rng, eps, ignore_index):
    logits = randn(rng, B, T, C) * 2.0
    kwargs = {"targets": _targets(rng, ignore_index), "ignore_index": ignore_index, "label_smoothing": eps}
    r = check_op(cross_entropy_forward, cross_entropy_backward, (logits,), wrt=(0,), kwargs=kwargs)
    assert r.passed, r


def test_cross_entropy_module_gradcheck(rng):
    loss_fn = CrossEntropyLoss(label_smoothing=0.1)
    r = check_module(loss_fn, (randn(rng, B, T, C), _targets(rng)), wrt=(0,))
    assert r.passed, r


def test_cross_entropy_matches_loop(rng):
    logits = randn(rng, B, T, C) * 3.0
    targets = _targets(rng)
    for eps in (0.0, 0.1, 1.0):
        loss, _ = cross_entropy_forward(logits, targets, label_smoothing=eps)
        assert abs(float(loss) - _naive_ce(logits, targets, eps=eps)) < 1e-12


def test_cross_entropy_backward_scales_with_dloss_and_ignores(rng):
    logits = randn(rng, B, T, C)
    targets = _targets(rng)
    _, cache = cross_entropy_forward(logits, targets, label_smoothing=0.1)
    P0 = cache.P.copy()
    g1 = cross_entropy_backward(1.0, cache)
    g2 = cross_entropy_backward(backend.asarray(2.5), cache)
    assert_close(g2, 2.5 * g1, rtol=1e-14)
    assert_close(cache.P, P0, rtol=0)  # backward never writes its cache
    g1 = backend.to_numpy(g1)
    assert np.all(g1[0, 1] == 0.0) and np.all(g1[1, 2] == 0.0)  # ignored rows get no gradient
    assert_close(g1.sum(axis=-1), np.zeros((B, T)), atol=1e-15)  # P and q both sum to 1


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_cross_entropy_all_equal_logits_give_log_C(eps):
    logits = backend.asarray(np.full((B, T, C), 3.7))
    targets = backend.asarray(np.arange(B * T).reshape(B, T) % C)
    loss, _ = cross_entropy_forward(logits, targets, label_smoothing=eps)
    assert abs(float(loss) - math.log(C)) < 1e-14


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cross_entropy_huge_logits_are_finite(dtype):
    logits = np.zeros((B, T, C))
    logits[..., 0], logits[..., 1] = 1e4, -1e4
    targets = backend.asarray(np.array([[0, 1, 2], [1, 0, -100]]))
    loss_fn = CrossEntropyLoss(label_smoothing=0.1)
    loss = loss_fn(backend.asarray(logits, dtype=dtype), targets)
    dlogits = loss_fn.backward()
    assert np.isfinite(float(loss)) and np.all(np.isfinite(backend.to_numpy(dlogits)))
    ref = _naive_ce(logits - 1e4, targets, eps=0.1)  # softmax is shift-invariant: exp never overflows
    assert abs(float(loss) - ref) < 1e-6 * ref


def test_cross_entropy_all_ignored_gives_zero(rng):
    loss_fn = CrossEntropyLoss()
    loss = loss_fn(randn(rng, B, T, C), backend.asarray(np.full((B, T), -100)))
    dlogits = loss_fn.backward()
    assert float(loss) == 0.0  # torch gives NaN here; we choose 0 and no gradient
    assert float(abs(dlogits).max()) == 0.0


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_cross_entropy_float32_in_float32_out(rng, eps):
    loss_fn = CrossEntropyLoss(label_smoothing=eps)
    loss = loss_fn(randn(rng, B, T, C, dtype="float32"), _targets(rng))
    assert loss.dtype == np.float32 and loss.shape == ()
    assert loss_fn.backward().dtype == np.float32
    loss_fn(randn(rng, B, T, C, dtype="float32"), _targets(rng))
    assert loss_fn.backward(backend.asarray(1.0, dtype="float64")).dtype == np.float32


def test_cross_entropy_2d_and_1d_logits(rng):
    logits = randn(rng, 4, C)
    targets = backend.asarray([1, 0, -100, 4])
    loss, _ = cross_entropy_forward(logits, targets)
    assert abs(float(loss) - _naive_ce(logits, targets)) < 1e-12
    loss1, _ = cross_entropy_forward(logits[0], backend.asarray(np.array(1)))
    assert abs(float(loss1) - _naive_ce(logits[:1], targets[:1])) < 1e-12


def test_cross_entropy_bad_inputs(rng):
    logits = randn(rng, B, T, C)
    with pytest.raises(ValueError, match=r"targets shape \(2, 4\) must equal the logits shape \(2, 3, 5\)"):
        cross_entropy_forward(logits, backend.asarray(np.zeros((2, 4), dtype=np.int64)))
    with pytest.raises(TypeError, match="integer dtype, got float64"):
        cross_entropy_forward(logits, backend.asarray(np.zeros((B, T))))
    with pytest.raises(IndexError, match=r"target 5 is out of range \[0, 5\)"):
        cross_entropy_forward(logits, backend.asarray(np.full((B, T), 5)))
    with pytest.raises(IndexError, match=r"target -1 is out of range"):
        cross_entropy_forward(logits, backend.asarray(np.full((B, T), -1)))
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0.0, 1.0\], got 1.5"):
        cross_entropy_forward(logits, _targets(rng), label_smoothing=1.5)
    with pytest.raises(ValueError, match="label_smoothing must be in"):
        CrossEntropyLoss(label_smoothing=-0.1)
    with pytest.raises(TypeError, match="expected float32 or float64, got int64"):
        cross_entropy_forward(backend.asarray(np.zeros((B, T, C), dtype=np.int64)), _targets(rng))
    with pytest.raises(RuntimeError, match="before forward"):
        CrossEntropyLoss().backward()


@pytest.mark.torch
@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-10), ("float32", 1e-5)])
def test_cross_entropy_torch_parity(rng, dtype, rtol):
    torch = require("torch")
    logits = randn(rng, B, T, C, dtype=dtype) * 3.0
    targets = _targets(rng)
    loss_fn = CrossEntropyLoss(ignore_index=-100, label_smoothing=0.1)
    loss = loss_fn(logits, targets)
    dlogits = loss_fn.backward(backend.asarray(0.7, dtype=dtype))
    lt = torch.from_numpy(backend.to_numpy(logits).copy()).requires_grad_()
    ref = torch.nn.functional.cross_entropy(lt.reshape(-1, C), torch.from_numpy(backend.to_numpy(targets).reshape(-1)),
                                            ignore_index=-100, label_smoothing=0.1)
    (ref * 0.7).backward()
    assert_close(loss, ref.detach().numpy(), rtol=rtol)
    assert_close(dlogits, lt.grad.numpy(), rtol=rtol, atol=1e-12 if dtype == "float64" else 1e-7)
