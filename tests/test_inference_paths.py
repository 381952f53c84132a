"""The inference fast paths (issue 9, BERT inference): same numbers as the plain formulas.

GELU runs block by block (``backend.block_size``) and keeps no full t under ``no_grad()``;
the softmax row maximum is an fmax reduction.
"""

import math

import numpy as np
import pytest

from minitransformer import backend
from minitransformer.nn.activations import GELU, gelu_forward
from minitransformer.nn.module import is_grad_enabled, no_grad
from minitransformer.nn.softmax import log_softmax_forward, softmax_forward
from tests.conftest import assert_close, randn

APPROX = ["none", "tanh"]


def _gelu_reference(x, approximate):
    """The docstring's formulas, one scalar at a time (math.erf, math.tanh), in float64."""
    def one(v):
        if approximate == "none":
            return 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0)))
        u = math.sqrt(2.0 / math.pi) * (v + 0.044715 * v ** 3)
        return 0.5 * v * (1.0 + math.tanh(u))

    host = backend.to_numpy(x).astype(np.float64)
    return np.vectorize(one)(host)


def test_block_size_is_positive_and_a_whole_gpu_array():
    x = backend.xp().zeros((3, 5), dtype="float32")
    size = backend.block_size(x)
    assert size >= 1
    if backend.backend_name() == "cupy":
        assert size == x.size
    else:
        assert size == 65536


@pytest.mark.parametrize("approximate", APPROX)
def test_gelu_over_several_blocks_matches_the_formula(rng, approximate):
    n = 2 * backend.block_size(backend.xp().zeros(1, dtype="float32")) + 123  # two full blocks and a partial one
    n = min(n, 200_000)
    x = randn(rng, n, dtype="float64") * 3.0
    y, cache = gelu_forward(x, approximate)
    assert_close(y, _gelu_reference(x, approximate), rtol=1e-12, atol=1e-14)
    assert cache.t.shape == x.shape


@pytest.mark.parametrize("approximate", APPROX)
def test_gelu_keep_t_false_same_y_no_t(rng, approximate):
    x = randn(rng, 3, 70_001, dtype="float32")  # several blocks: the scratch block is reused
    y_kept, cache_kept = gelu_forward(x, approximate)
    y, cache = gelu_forward(x, approximate, keep_t=False)
    assert y.dtype == x.dtype and y.shape == x.shape
    assert np.array_equal(backend.to_numpy(y), backend.to_numpy(y_kept))
    assert cache.t is None and cache_kept.t.shape == x.shape


def test_gelu_non_contiguous_and_empty_inputs(rng):
    x = randn(rng, 4, 6, dtype="float32")[:, ::2]  # a strided view
    y, _ = gelu_forward(x)
    assert_close(y, _gelu_reference(x, "none"), rtol=2e-6, atol=1e-6)
    empty = backend.xp().zeros((0, 4), dtype="float32")
    assert gelu_forward(empty, keep_t=False)[0].shape == (0, 4)


def test_gelu_module_under_no_grad_same_output_and_no_cache(rng):
    x = randn(rng, 2, 5, 8, dtype="float32")
    gelu = GELU()
    y = gelu(x)
    assert is_grad_enabled()
    with no_grad():
        assert not is_grad_enabled()
        y_inference = gelu(x)
        with pytest.raises(RuntimeError, match="no_grad"):
            gelu.backward(y)
    assert is_grad_enabled()
    assert np.array_equal(backend.to_numpy(y), backend.to_numpy(y_inference))


def test_softmax_rows_with_nan_inf_and_masks():
    x = backend.asarray([[1.0, 2.0, float("nan")], [float("nan")] * 3, [-float("inf")] * 3, [1.0, 2.0, 3.0],
                         [-float("inf"), 0.0, 1e4]], dtype="float32")
    P, _ = softmax_forward(x)
    P = backend.to_numpy(P)
    assert np.isnan(P[0]).all() and np.isnan(P[1]).all()  # a NaN anywhere in a row: that row is NaN
    assert np.array_equal(P[2], np.zeros(3, dtype=np.float32))  # fully masked: zeros, not NaN
    e = np.exp(np.array([1.0, 2.0, 3.0]) - 3.0)
    np.testing.assert_allclose(P[3], e / e.sum(), rtol=1e-6)
    np.testing.assert_allclose(P[4], [0.0, 0.0, 1.0])
    y, _ = log_softmax_forward(x[3:4])
    np.testing.assert_allclose(backend.to_numpy(y)[0], np.log(e / e.sum()), rtol=1e-6)


def test_row_max_host_and_device_branches_agree(rng, monkeypatch):
    x = randn(rng, 2, 3, 7, 9, dtype="float32")
    x[0, 1, 2] = -float("inf")  # a fully masked row
    P_fast, _ = softmax_forward(x)
    monkeypatch.setattr(backend, "on_host", lambda a: False)  # the branch a CuPy array takes: max
    P_max, _ = softmax_forward(x)
    assert np.array_equal(backend.to_numpy(P_fast), backend.to_numpy(P_max))
    assert not backend.to_numpy(P_fast)[0, 1, 2].any()


def test_on_host():
    assert backend.on_host(backend.xp().zeros(2)) == (backend.backend_name() == "numpy")
