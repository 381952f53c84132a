import math

import numpy as np
import pytest

from minitransformer import backend
from minitransformer.gradcheck import check_module, check_op
from minitransformer.nn.positional import (
    LearnedPositionalEmbedding,
    PositionalEncoding,
    add_positions_backward,
    add_positions_forward,
    sinusoidal_table,
)
from tests.conftest import assert_close, randn


@pytest.mark.parametrize("d_model", [6, 7])
def test_sinusoidal_table_matches_loop(d_model):
    max_len = 50
    PE = backend.to_numpy(sinusoidal_table(max_len, d_model, "float64"))
    assert PE.shape == (max_len, d_model)
    for pos in range(max_len):
        for j in range(d_model):
            i = j // 2
            angle = pos / 10000 ** (2 * i / d_model)
            ref = math.sin(angle) if j % 2 == 0 else math.cos(angle)
            assert abs(PE[pos, j] - ref) < 1e-12, (pos, j)


def test_sinusoidal_table_dtype_and_long_positions():
    PE32 = sinusoidal_table(5000, 16, "float32")
    assert PE32.dtype == np.float32
    PE64 = backend.to_numpy(sinusoidal_table(5000, 16, "float64"))
    assert abs(PE64[4999, 0] - math.sin(4999.0)) < 1e-10
    assert abs(PE64[4999, 15] - math.cos(4999.0 / 10000 ** (14 / 16))) < 1e-10
    assert_close(PE32, PE64.astype(np.float32), rtol=0)  # computed in float64, rounded once


def test_sinusoidal_relative_position_is_a_rotation():
    d_model, max_len = 8, 60
    PE = backend.to_numpy(sinusoidal_table(max_len, d_model, "float64"))
    for k in (1, 5, 17):
        for i in range(d_model // 2):
            w = 1.0 / 10000 ** (2 * i / d_model)
            # sin(a + kw) = sin a cos kw + cos a sin kw;  cos(a + kw) = cos a cos kw - sin a sin kw
            R = np.array([[math.cos(k * w), math.sin(k * w)], [-math.sin(k * w), math.cos(k * w)]])
            before = PE[: max_len - k, 2 * i : 2 * i + 2]  # (positions, 2): (sin, cos) at pos
            after = PE[k:, 2 * i : 2 * i + 2]  # the same pair at pos + k
            np.testing.assert_allclose(before @ R.T, after, atol=1e-12)
            # the map is the same for every pos: fit it by least squares and compare
            fit, *_ = np.linalg.lstsq(before, after, rcond=None)
            np.testing.assert_allclose(fit.T, R, atol=1e-10)
            np.testing.assert_allclose(R @ R.T, np.eye(2), atol=1e-15)


def test_add_positions_op_gradcheck(rng):
    x = randn(rng, 3, 4, 5)
    P = randn(rng, 4, 5)
    r = check_op(add_positions_forward, add_positions_backward, (x, P))
    assert r.passed, r
    assert set(r.errors) == {"arg0", "arg1"}


def test_positional_encoding_module_gradcheck_with_offset(rng):
    layer = PositionalEncoding(5, max_len=12).to(dtype="float64")
    r = check_module(layer, (randn(rng, 2, 4, 5),), kwargs={"offset": 3})
    assert r.passed, r
    assert set(r.errors) == {"arg0"}


def test_learned_positional_module_gradcheck_with_offset(rng):
    layer = LearnedPositionalEmbedding(9, 5).to(dtype="float64")
    r = check_module(layer, (randn(rng, 3, 4, 5),), kwargs={"offset": 2})
    assert r.passed, r
    assert set(r.errors) == {"arg0", "W"}


def test_positional_encoding_adds_table_rows(rng):
    layer = PositionalEncoding(6, max_len=20).to(dtype="float64")
    x = randn(rng, 2, 3, 6)
    y = layer(x, offset=4)
    PE = backend.to_numpy(sinusoidal_table(20, 6, "float64"))
    for b, t in np.ndindex(2, 3):
        assert_close(y[b, t], backend.to_numpy(x)[b, t] + PE[4 + t], rtol=1e-15)
    dy = randn(rng, 2, 3, 6)
    assert_close(layer.backward(dy), dy, rtol=0)
    assert layer.parameters() == []


def test_learned_positional_grad_rows(rng):
    layer = LearnedPositionalEmbedding(10, 4).to(dtype="float64")
    x = randn(rng, 3, 2, 4)
    y = layer(x, offset=5)
    assert_close(y, backend.to_numpy(x) + backend.to_numpy(layer.W.data)[5:7], rtol=1e-15)
    dy = randn(rng, 3, 2, 4)
    dx = layer.backward(dy)
    assert_close(dx, dy, rtol=0)
    ref = np.zeros((10, 4))
    dyh = backend.to_numpy(dy)
    for b, t in np.ndindex(3, 2):
        ref[5 + t] += dyh[b, t]
    assert_close(layer.W.grad, ref, rtol=1e-14)
    # accumulates: a second call at offset 0 adds into rows 0..1 and keeps rows 5..6
    layer(x)
    layer.backward(dy)
    ref[0:2] += dyh.sum(0)
    assert_close(layer.W.grad, ref, rtol=1e-14)


def test_learned_positional_init_and_seed():
    backend.manual_seed(5)
    a = backend.to_numpy(LearnedPositionalEmbedding(512, 64).W.data)
    backend.manual_seed(5)
    b = backend.to_numpy(LearnedPositionalEmbedding(512, 64).W.data)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32
    assert abs(a.std() - 0.02) < 0.001 and abs(a.mean()) < 0.001


def test_positional_float32_in_float32_out(rng):
    for layer in (PositionalEncoding(4, max_len=8), LearnedPositionalEmbedding(8, 4)):
        y = layer(randn(rng, 2, 3, 4, dtype="float32"))
        dx = layer.backward(randn(rng, 2, 3, 4, dtype="float32"))
        assert y.dtype == np.float32 and dx.dtype == np.float32


def test_positional_encoding_buffer_moves_with_to():
    layer = PositionalEncoding(4, max_len=8)
    assert layer.pe.dtype == np.float32
    layer.to(dtype="float64")
    assert layer.pe.dtype == np.float64
    assert_close(layer.pe, sinusoidal_table(8, 4, "float64"), rtol=0)


def test_positional_backward_does_not_mutate_dy(rng):
    layer = LearnedPositionalEmbedding(8, 4).to(dtype="float64")
    layer(randn(rng, 2, 3, 4))
    dy = randn(rng, 2, 3, 4)
    dy0 = dy.copy()
    layer.backward(dy)
    assert_close(dy, dy0, rtol=0)


def test_positional_backward_before_forward_raises():
    for layer in (PositionalEncoding(4, max_len=8), LearnedPositionalEmbedding(8, 4)):
        with pytest.raises(RuntimeError, match="before forward"):
            layer.backward(np.zeros((1, 2, 4), dtype=np.float32))


def test_positional_too_long_and_bad_inputs(rng):
    for layer in (PositionalEncoding(4, max_len=8), LearnedPositionalEmbedding(8, 4)):
        name = type(layer).__name__
        with pytest.raises(ValueError, match=f"{name} input .*sequence length 9 exceeds max_len=8"):
            layer(randn(rng, 1, 9, 4, dtype="float32"))
        with pytest.raises(ValueError, match="T=3, offset=6.*sequence length 9 exceeds max_len=8"):
            layer(randn(rng, 1, 3, 4, dtype="float32"), offset=6)
        layer(randn(rng, 1, 3, 4, dtype="float32"), offset=5)  # exactly fits
        with pytest.raises(ValueError, match="offset must be a non-negative integer, got -1"):
            layer(randn(rng, 1, 3, 4, dtype="float32"), offset=-1)
        with pytest.raises(ValueError, match="expected 3 axes \\(B, T, d_model\\), got shape \\(3, 4\\)"):
            layer(randn(rng, 3, 4, dtype="float32"))
        with pytest.raises(ValueError, match="expected last dimension 4, got shape \\(1, 3, 5\\)"):
            layer(randn(rng, 1, 3, 5, dtype="float32"))
        with pytest.raises(TypeError, match="float64 does not match"):
            layer(randn(rng, 1, 3, 4, dtype="float64"))
