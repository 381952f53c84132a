import numpy as np
import pytest

from minitransformer import backend
from minitransformer.gradcheck import check_module, check_op
from minitransformer.nn.dropout import Dropout, dropout_backward, dropout_forward
from tests.conftest import assert_close, randn


def _mask(rng, *shape, p=0.5):
    return backend.asarray(rng.random(shape) >= p)


def test_dropout_op_gradcheck_replayed_mask(rng):
    x = randn(rng, 2, 3, 4)
    mask = _mask(rng, 2, 3, 4, p=0.3)
    r = check_op(dropout_forward, dropout_backward, (x, mask, 0.3))
    assert r.passed, r
    assert set(r.errors) == {"arg0"}


def test_dropout_op_gradcheck_broadcast_mask(rng):
    # one mask per (example, feature), shared across the T positions
    x = randn(rng, 2, 3, 4)
    r = check_op(dropout_forward, dropout_backward, (x, _mask(rng, 2, 1, 4), 0.5))
    assert r.passed, r


def test_dropout_module_gradcheck_p_positive(rng):
    layer = Dropout(0.4)
    x = randn(rng, 2, 3, 5)
    r = check_module(layer, (x,))
    assert r.passed, r
    # the check was not trivial: some entries were dropped and some kept
    kept = backend.to_numpy(layer.last_mask)
    assert kept.any() and not kept.all()


def test_dropout_matches_formula(rng):
    x = randn(rng, 3, 4, 5)
    dy = randn(rng, 3, 4, 5)
    mask = _mask(rng, 3, 4, 5, p=0.25)
    y, cache = dropout_forward(x, mask, 0.25)
    dx = dropout_backward(dy, cache)
    xh, mh, dyh = (backend.to_numpy(a) for a in (x, mask, dy))
    for i, t, j in np.ndindex(3, 4, 5):
        expect_y = xh[i, t, j] / 0.75 if mh[i, t, j] else 0.0
        expect_dx = dyh[i, t, j] / 0.75 if mh[i, t, j] else 0.0
        assert abs(backend.to_numpy(y)[i, t, j] - expect_y) < 1e-12
        assert abs(backend.to_numpy(dx)[i, t, j] - expect_dx) < 1e-12


def test_dropout_module_backward_uses_forward_mask(rng):
    layer = Dropout(0.5)
    x = randn(rng, 4, 6)
    y = layer(x)
    dy = randn(rng, 4, 6)
    dx = layer.backward(dy)
    m = backend.to_numpy(layer.last_mask)
    assert m.dtype == np.bool_ and m.shape == (4, 6)
    assert_close(y, np.where(m, backend.to_numpy(x) * 2.0, 0.0), rtol=1e-15)
    assert_close(dx, np.where(m, backend.to_numpy(dy) * 2.0, 0.0), rtol=1e-15)


def test_dropout_preserves_expected_value():
    p = 0.3
    layer = Dropout(p)
    x = backend.asarray(np.linspace(-2.0, 3.0, 8), dtype="float32")
    n = 20000
    ys = [backend.to_numpy(layer(x)) for _ in range(n)]
    layer._cache = None
    mean = np.mean(ys, axis=0)
    # std of one sample is |x| sqrt(p / (1 - p)); 5 standard errors
    tol = 5.0 * np.abs(backend.to_numpy(x)) * np.sqrt(p / (1 - p)) / np.sqrt(n) + 1e-6
    assert (np.abs(mean - backend.to_numpy(x)) < tol).all()
    # and the drop rate is p
    assert abs(np.mean([y == 0.0 for y in ys]) - p) < 0.01


def test_dropout_eval_and_p_zero_are_identity(rng):
    x = randn(rng, 2, 3, 4)
    dy = randn(rng, 2, 3, 4)
    for layer in (Dropout(0.5).eval(), Dropout(0.0)):
        y = layer(x)
        assert_close(y, x, rtol=0)
        assert layer.last_mask is None
        assert_close(layer.backward(dy), dy, rtol=0)
    # and training again draws masks
    layer = Dropout(0.5).eval().train()
    layer(x)
    assert layer.last_mask is not None


def test_dropout_same_seed_same_mask():
    x = backend.asarray(np.ones((4, 5, 6)), dtype="float32")
    backend.manual_seed(11)
    a = backend.to_numpy(Dropout(0.5)(x))
    backend.manual_seed(11)
    b = backend.to_numpy(Dropout(0.5)(x))
    np.testing.assert_array_equal(a, b)
    c = backend.to_numpy(Dropout(0.5)(x))  # next draw, same generator: a different mask
    assert not np.array_equal(a, c)


def test_dropout_backward_does_not_mutate_dy_or_cache(rng):
    layer = Dropout(0.5)
    layer(randn(rng, 3, 4))
    mask0 = layer.last_mask.copy()
    dy = randn(rng, 3, 4)
    dy0 = dy.copy()
    layer.backward(dy)
    assert_close(dy, dy0, rtol=0)
    np.testing.assert_array_equal(backend.to_numpy(layer.last_mask), backend.to_numpy(mask0))


def test_dropout_backward_before_forward_raises():
    with pytest.raises(RuntimeError, match="before forward"):
        Dropout(0.1).backward(np.zeros((2, 3), dtype=np.float32))


def test_dropout_float32_in_float32_out(rng):
    layer = Dropout(0.2)
    y = layer(randn(rng, 2, 3, 4, dtype="float32"))
    dx = layer.backward(randn(rng, 2, 3, 4, dtype="float32"))
    assert y.dtype == np.float32 and dx.dtype == np.float32


def test_dropout_bad_inputs(rng):
    for p in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match=f"0 <= p < 1, got p={p}"):
            Dropout(p)
    with pytest.raises(TypeError, match="expected float32 or float64, got int64"):
        Dropout(0.1)(backend.asarray(np.ones((2, 3), dtype=np.int64)))
    x = randn(rng, 2, 3)
    with pytest.raises(ValueError, match="shape \\(2, 4\\) does not broadcast to the input shape \\(2, 3\\)"):
        dropout_forward(x, _mask(rng, 2, 4), 0.5)
    with pytest.raises(TypeError, match="expected a boolean array"):
        dropout_forward(x, backend.asarray(np.ones((2, 3))), 0.5)
    with pytest.raises(ValueError, match="got p=1.0"):
        dropout_forward(x, _mask(rng, 2, 3), 1.0)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("shape", [(400, 501), (7, 3, 101)])  # even and odd sizes: raw draws are cut in two
def test_keep_mask_rate_and_independence(p, shape):
    backend.manual_seed(3)
    m = backend.to_numpy(backend.dropout_keep_mask(shape, p))
    assert m.dtype == np.bool_ and m.shape == shape
    n = m.size
    # the keep rate is 1 - p within 5 standard errors
    assert abs(m.mean() - (1.0 - p)) < 5.0 * np.sqrt(p * (1.0 - p) / n)
    # neighbours (which share one 64-bit raw draw on the host) are independent: P(both kept) = (1 - p)^2
    flat = m.reshape(-1)
    both = (flat[0:-1:2] & flat[1::2]).mean()
    assert abs(both - (1.0 - p) ** 2) < 5.0 * np.sqrt((1.0 - p) ** 2 * (1.0 - (1.0 - p) ** 2) / (n // 2))


def test_keep_mask_seeded_edges_and_errors():
    backend.manual_seed(5)
    a = backend.to_numpy(backend.dropout_keep_mask((6, 7), 0.5))
    backend.manual_seed(5)
    b = backend.to_numpy(backend.dropout_keep_mask((6, 7), 0.5))
    np.testing.assert_array_equal(a, b)  # one seed, one mask
    assert not np.array_equal(a, backend.to_numpy(backend.dropout_keep_mask((6, 7), 0.5)))  # the next draw differs
    assert backend.to_numpy(backend.dropout_keep_mask(1000, 0.0)).all()  # p = 0 keeps everything
    assert not backend.to_numpy(backend.dropout_keep_mask(10, np.nextafter(1.0, 0.0))).any()  # p just below 1
    assert backend.dropout_keep_mask(5, 0.3).shape == (5,)
    assert backend.dropout_keep_mask((2, 0, 3), 0.3).shape == (2, 0, 3)  # empty
    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match="0 <= p < 1"):
            backend.dropout_keep_mask((2, 2), bad)
