"""Input checks: each bad input gets an error that names what was expected and what was given."""

from __future__ import annotations

import numpy as np
import pytest

from minitransformer import backend
from minitransformer.nn.checks import (
    check_array,
    check_dtype_match,
    check_float,
    check_ids,
    check_last_dim,
    check_ndim,
    check_seq_len,
)


def _a(x, dtype=None):
    return backend.asarray(np.asarray(x), dtype=dtype)


def test_check_array():
    check_array(_a([1.0]), "x")
    with pytest.raises(TypeError, match="x: expected a NumPy or CuPy array, got list"):
        check_array([1.0], "x")
    with pytest.raises(TypeError, match="got float"):
        check_array(1.0, "x")


def test_check_float():
    check_float(_a([1.0], "float32"), "x")
    check_float(_a([1.0], "float64"), "x")
    with pytest.raises(TypeError, match="x: expected float32 or float64, got float16"):
        check_float(_a([1.0], "float16"), "x")
    with pytest.raises(TypeError, match="got int64"):
        check_float(_a([1], "int64"), "x")
    with pytest.raises(TypeError, match="got bool"):
        check_float(_a([True]), "x")


def test_check_dtype_match():
    W = _a(np.zeros((2, 2)), "float32")
    check_dtype_match(_a([1.0], "float32"), W, "x")
    with pytest.raises(TypeError, match=r"x: dtype float64 does not match the layer's parameters \(float32\)"):
        check_dtype_match(_a([1.0], "float64"), W, "x")
    with pytest.raises(TypeError, match="expected float32 or float64"):
        check_dtype_match(_a([1], "int32"), W, "x")


def test_check_ndim():
    check_ndim(_a(np.zeros((2, 3, 4))), 3, "x")
    with pytest.raises(ValueError, match=r"x: expected 3 axes \(B, T, d_model\), got shape \(2, 4\)"):
        check_ndim(_a(np.zeros((2, 4))), 3, "x", "(B, T, d_model)")


def test_check_last_dim():
    check_last_dim(_a(np.zeros((2, 5))), 5, "x")
    with pytest.raises(ValueError, match=r"x: expected last dimension 4, got shape \(2, 5\)"):
        check_last_dim(_a(np.zeros((2, 5))), 4, "x")
    with pytest.raises(ValueError, match=r"expected last dimension 4, got shape \(\)"):
        check_last_dim(_a(1.0), 4, "x")


def test_check_ids():
    check_ids(_a([[0, 9], [3, 4]]), 10, "ids")
    check_ids(_a(np.zeros((0, 3), dtype=np.int64)), 10, "ids")  # empty is fine
    check_ids(_a([1, 2], "uint8"), 10, "ids")
    with pytest.raises(IndexError, match=r"ids: token id 10 is out of range \[0, 10\)"):
        check_ids(_a([[0, 10]]), 10, "ids")
    with pytest.raises(IndexError, match=r"token id -1 is out of range"):
        check_ids(_a([-1, 12]), 10, "ids")
    with pytest.raises(TypeError, match="token ids must be integers, got dtype float32"):
        check_ids(_a([1.0], "float32"), 10, "ids")
    with pytest.raises(TypeError, match="expected a NumPy or CuPy array"):
        check_ids([1, 2], 10, "ids")


def test_check_seq_len():
    check_seq_len(8, 8, "x")
    with pytest.raises(ValueError, match="x: sequence length 9 exceeds max_len=8"):
        check_seq_len(9, 8, "x")
