"""The array backend: selection, conversion, generators, and the helpers every layer uses.

CuPy is simulated where the machine has none: ``sys.modules["cupy"] = None``
makes ``import cupy`` fail like a missing install, and a fake ``cupy`` package
on ``PYTHONPATH`` shows that merely having CuPy importable switches nothing.
Tests marked ``gpu`` run only when the active backend is CuPy
(``MINITRANSFORMER_BACKEND=cupy pytest -m gpu``).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pytest

from minitransformer import backend
from tests.conftest import assert_close

ROOT = Path(__file__).resolve().parents[1]

gpu = pytest.mark.gpu
needs_cupy = pytest.mark.skipif(backend.backend_name() != "cupy", reason="needs MINITRANSFORMER_BACKEND=cupy and a GPU")


@pytest.fixture
def restore_backend():
    """Put the backend back as it was, whatever a test switched."""
    name = backend.backend_name()
    yield
    backend.use(name)


def _run_python(code: str, env_backend: str | None, extra_path: Path | None = None):
    """Run ``python -c code`` from the repo root with a chosen MINITRANSFORMER_BACKEND."""
    env = {k: v for k, v in os.environ.items() if k != "MINITRANSFORMER_BACKEND"}
    if env_backend is not None:
        env["MINITRANSFORMER_BACKEND"] = env_backend
    paths = [str(ROOT)] + ([str(extra_path)] if extra_path else [])
    env["PYTHONPATH"] = os.pathsep.join(paths + [env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


_BLOCK_CUPY = "import sys; sys.modules['cupy'] = None\n"  # `import cupy` now raises ImportError


def _fake_cupy(tmp_path: Path, n_devices: int) -> Path:
    """A fake importable ``cupy`` package that records that it was imported."""
    pkg = tmp_path / "cupy"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "import numpy\n"
        "import types\n"
        "IMPORTED = True\n"
        f"cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: {n_devices}))\n"
        "random = numpy.random\n"
        "asarray = numpy.asarray\n"
    )
    return tmp_path


# -- choosing the backend ------------------------------------------------------------


def test_default_backend_is_numpy():
    if os.environ.get("MINITRANSFORMER_BACKEND", "").strip().lower() not in ("", "numpy"):
        pytest.skip("the environment selects another backend")
    assert backend.backend_name() == "numpy"
    assert backend.xp() is np
    assert isinstance(backend.asarray([1.0, 2.0]), np.ndarray)


def test_use_cupy_without_cupy_says_how_to_install(restore_backend, monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    before = backend.backend_name()
    with pytest.raises(RuntimeError, match=r"pip install 'minitransformer\[cuda12\]'"):
        backend.use("cupy")
    assert backend.backend_name() == before  # a failed switch changes nothing
    assert backend.xp().__name__ == before


def test_use_cupy_without_a_device_is_a_clear_error(monkeypatch):
    fake = types.ModuleType("cupy")
    fake.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: 0))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    with pytest.raises(RuntimeError, match="no CUDA device is visible.*minitransformer\\[cuda12\\]"):
        backend.use("cupy")

    def broken():
        raise OSError("libcuda.so not found")

    fake.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=broken))
    with pytest.raises(RuntimeError, match="no usable CUDA device.*libcuda.so not found"):
        backend.use("cupy")


def test_use_unknown_backend_is_value_error():
    with pytest.raises(ValueError, match=r"unknown backend 'tensorflow': expected one of \('numpy', 'cupy'\)"):
        backend.use("tensorflow")


def test_env_cupy_without_cupy_fails_clearly_at_import():
    r = _run_python(_BLOCK_CUPY + "import minitransformer", "cupy")
    assert r.returncode != 0
    assert "RuntimeError" in r.stderr
    assert "minitransformer[cuda12]" in r.stderr, r.stderr


def test_env_numpy_works():
    r = _run_python("import minitransformer as m; print(m.backend_name())", "numpy")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "numpy"


def test_env_unknown_backend_fails_at_import():
    r = _run_python("import minitransformer", "jax")
    assert r.returncode != 0
    assert "unknown backend 'jax'" in r.stderr, r.stderr


def test_importable_cupy_does_not_switch_the_backend(tmp_path):
    # CuPy importable (a fake one with a "GPU"), no env var: still NumPy, and cupy never even imported
    path = _fake_cupy(tmp_path, n_devices=1)
    code = (
        "import sys, minitransformer as m\n"
        "from minitransformer.nn import Linear\n"
        "Linear(3, 2)\n"
        "print(m.backend_name(), 'cupy' in sys.modules)\n"
    )
    r = _run_python(code, None, path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["numpy", "False"]
    # control: the same harness does see a switch when one is asked for
    r = _run_python(code, "cupy", path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["cupy", "True"]


# -- arrays -----------------------------------------------------------------------------


class _FakeCupyArray:
    """Looks like a CuPy array to the backend's module check."""


_FakeCupyArray.__module__ = "cupy._core.core"


def test_get_array_module_ignores_none_and_numbers(monkeypatch):
    x = np.ones(3)
    assert backend.get_array_module(None, 1, 2.5, x) is np
    assert backend.get_array_module(None, 3) is np
    assert backend.get_array_module() is np
    fake = types.ModuleType("cupy")
    fake.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: 1))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    # one "CuPy" array among None, numbers and NumPy arrays picks CuPy
    assert backend.get_array_module(None, 2.0, x, _FakeCupyArray()) is fake


def test_is_array():
    assert backend.is_array(np.zeros(2))
    assert backend.is_array(_FakeCupyArray())
    assert not backend.is_array([1.0])
    assert not backend.is_array(1.0)
    assert not backend.is_array(None)


def test_asarray_to_numpy_round_trip_and_dtype():
    host = np.arange(6, dtype=np.float64).reshape(2, 3) / 7.0
    a = backend.asarray(host)
    assert a.dtype == np.float64
    back = backend.to_numpy(a)
    assert isinstance(back, np.ndarray)
    np.testing.assert_array_equal(back, host)
    a32 = backend.asarray(host, dtype="float32")
    assert a32.dtype == np.float32
    np.testing.assert_array_equal(backend.to_numpy(a32), host.astype(np.float32))
    assert backend.asarray([[1, 2], [3, 4]], dtype="float64").dtype == np.float64
    assert backend.asarray([1, 2]).dtype.kind == "i"
    assert backend.to_numpy([1.5, 2.5]).tolist() == [1.5, 2.5]


def test_dtype_and_finfo():
    assert backend.dtype("float32") == np.float32
    assert backend.finfo("float32").eps == np.finfo(np.float32).eps


def test_scatter_add_accumulates_repeated_indices(rng):
    idx = np.array([0, 2, 0, 0, 4, 2])
    values = backend.asarray(rng.standard_normal((6, 3)))
    target = backend.asarray(np.zeros((5, 3)))
    backend.scatter_add(target, backend.asarray(idx), values)
    expected = np.zeros((5, 3))
    for n, i in enumerate(idx):
        expected[i] += backend.to_numpy(values)[n]
    assert_close(target, expected, rtol=1e-14)
    # plain fancy-index += keeps one write per index: exactly the bug scatter_add avoids
    naive = np.zeros((5, 3))
    naive[idx] += backend.to_numpy(values)
    assert not np.allclose(naive, expected)


def test_scatter_add_into_existing_values_keeps_dtype():
    target = backend.asarray(np.ones((3, 2)), dtype="float32")
    backend.scatter_add(target, backend.asarray(np.array([1, 1])), backend.asarray(np.ones((2, 2)), dtype="float32"))
    assert target.dtype == np.float32
    np.testing.assert_array_equal(backend.to_numpy(target), [[1, 1], [3, 3], [1, 1]])


# -- random numbers ----------------------------------------------------------------


def test_manual_seed_reproduces_host_and_device_draws():
    backend.manual_seed(123)
    h1 = backend.host_rng().standard_normal(5)
    d1 = backend.to_numpy(backend.device_rng().random((2, 3), dtype="float32"))
    backend.manual_seed(123)
    h2 = backend.host_rng().standard_normal(5)
    d2 = backend.to_numpy(backend.device_rng().random((2, 3), dtype="float32"))
    np.testing.assert_array_equal(h1, h2)
    np.testing.assert_array_equal(d1, d2)
    assert d1.dtype == np.float32
    backend.manual_seed(124)
    assert not np.array_equal(backend.host_rng().standard_normal(5), h1)
    assert not np.array_equal(backend.to_numpy(backend.device_rng().random((2, 3), dtype="float32")), d1)


def test_shared_generators_advance():
    backend.manual_seed(5)
    a = backend.host_rng().standard_normal(3)
    b = backend.host_rng().standard_normal(3)  # same generator, next draws
    assert not np.array_equal(a, b)


def test_host_rng_with_seed_is_independent_of_the_shared_generator():
    backend.manual_seed(9)
    expected = backend.host_rng().standard_normal(4)
    backend.manual_seed(9)
    own1 = backend.host_rng(42).standard_normal(1000)  # must not advance the shared one
    assert backend.host_rng(42) is not backend.host_rng()
    np.testing.assert_array_equal(backend.host_rng().standard_normal(4), expected)
    np.testing.assert_array_equal(backend.host_rng(42).standard_normal(1000), own1)


def test_use_reseeds_device_generator(restore_backend):
    backend.manual_seed(3)
    first = backend.to_numpy(backend.device_rng().random(4, dtype="float64"))
    backend.use(backend.backend_name())
    again = backend.to_numpy(backend.device_rng().random(4, dtype="float64"))
    np.testing.assert_array_equal(first, again)


# -- erf, errstate --------------------------------------------------------------------


def test_erf_matches_math_erf_float64():
    xs = np.concatenate([np.linspace(-6.0, 6.0, 241), [0.0, 1e-12, -1e-300, 0.4769362762044699]])
    got = backend.to_numpy(backend.erf(backend.asarray(xs)))
    assert got.dtype == np.float64
    worst = max(abs(g - math.erf(x)) for g, x in zip(got.tolist(), xs.tolist(), strict=True))
    assert worst <= 1e-15, worst


def test_erf_keeps_float32():
    x = backend.asarray(np.linspace(-3, 3, 13), dtype="float32")
    y = backend.erf(x)
    assert y.dtype == np.float32
    ref = np.array([math.erf(v) for v in backend.to_numpy(x).tolist()])
    np.testing.assert_allclose(backend.to_numpy(y), ref, atol=1e-6)


def test_erf_float32_fast_path_accuracy_blocks_and_layouts():
    """The float32 host erf (tanh of a polynomial, in blocks) vs float64 erf: dense grid, odd sizes, views."""
    import scipy.special

    z = np.linspace(-8.0, 8.0, 100_003).astype(np.float32)  # several blocks and a partial one
    got = backend.erf(z)
    assert got.dtype == np.float32 and got.shape == z.shape
    assert np.abs(got.astype(np.float64) - scipy.special.erf(z.astype(np.float64))).max() < 2.5e-7
    assert got[0] == -1.0 and got[-1] == 1.0 and backend.erf(np.float32([0.0]))[0] == 0.0
    assert (np.diff(got) >= 0).all()  # never decreasing, as erf
    tails = backend.erf(np.float32([-np.inf, -1e30, -4.1, 4.1, 1e30, np.inf]))  # float32(erf(4.1)) is 1
    np.testing.assert_array_equal(tails, [-1, -1, -1, 1, 1, 1])
    tiny = np.float32([1e-30, 1e-8, 1e-4])  # erf(z) ~ 2 z / sqrt(pi): relative accuracy near 0
    np.testing.assert_allclose(backend.erf(tiny), 2 / np.sqrt(np.pi) * tiny.astype(np.float64), rtol=3e-7)
    grid = z[:60_000].reshape(300, 200)[:, ::3].T  # a non-contiguous view
    np.testing.assert_allclose(backend.erf(grid), scipy.special.erf(grid.astype(np.float64)), rtol=0, atol=2.5e-7)
    assert np.isnan(backend.erf(np.float32([np.nan]))[0]) and backend.erf(np.zeros((0, 3), np.float32)).shape == (0, 3)
    inplace, strided = z.copy(), np.empty(2 * z.size, np.float32)[::2]
    assert backend.erf(inplace, out=inplace) is inplace and backend.erf(z, out=strided) is strided
    np.testing.assert_array_equal(inplace, got)
    np.testing.assert_array_equal(strided, got)


def test_errstate_is_a_context_manager():
    if backend.backend_name() != "numpy":
        pytest.skip("errstate is a no-op on CuPy")
    zero = np.zeros(2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with backend.errstate(divide="ignore", invalid="ignore"):
            y = np.ones(2) / zero
        assert np.isinf(y).all()
    with backend.errstate(divide="raise"), pytest.raises(FloatingPointError):
        np.ones(2) / zero


# -- GPU ------------------------------------------------------------------------------


@gpu
@needs_cupy
def test_gpu_arrays_live_on_cupy_and_come_back():
    cp = backend.xp()
    a = backend.asarray(np.arange(4.0), dtype="float32")
    assert type(a).__module__.startswith("cupy")
    assert backend.get_array_module(None, 1.0, a) is cp
    assert backend.is_array(a)
    np.testing.assert_array_equal(backend.to_numpy(a), np.arange(4.0, dtype=np.float32))


@gpu
@needs_cupy
def test_gpu_scatter_add_and_erf_match_cpu(rng):
    idx = np.array([0, 2, 0, 0, 4, 2])
    values = rng.standard_normal((6, 3))
    target = backend.asarray(np.zeros((5, 3)))
    backend.scatter_add(target, backend.asarray(idx), backend.asarray(values))
    expected = np.zeros((5, 3))
    np.add.at(expected, idx, values)
    assert_close(target, expected, rtol=1e-12)
    xs = np.linspace(-4, 4, 81)
    assert_close(backend.erf(backend.asarray(xs)), [math.erf(v) for v in xs], rtol=0, atol=1e-15)  # cupyx.scipy
    assert backend.erf(backend.asarray(xs, dtype="float32")).dtype == np.float32


@gpu
@needs_cupy
def test_gpu_seed_reproduces_device_draws_and_host_weights(restore_backend):
    from minitransformer.nn.linear import Linear

    backend.manual_seed(11)
    d1 = backend.to_numpy(backend.device_rng().random((3, 3), dtype="float32"))
    W_gpu = backend.to_numpy(Linear(4, 3).W.data)
    backend.manual_seed(11)
    d2 = backend.to_numpy(backend.device_rng().random((3, 3), dtype="float32"))
    np.testing.assert_array_equal(d1, d2)
    backend.use("numpy")
    backend.manual_seed(11)
    W_cpu = Linear(4, 3).W.data
    assert isinstance(W_cpu, np.ndarray)
    np.testing.assert_array_equal(W_gpu, W_cpu)  # one seed, same weights on CPU and GPU


def test_blas_threads_limits_blas_inside_and_restores_after():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    pytest.importorskip("scipy.special")  # a second BLAS (SciPy's) may be loaded too: only NumPy's must follow

    def blas_threads():
        return {i["filepath"]: i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"}

    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        before = blas_threads()
        with backend.blas_threads(1):
            inside = blas_threads()
            with backend.blas_threads(4):  # never raises a count
                assert blas_threads() == inside
        assert blas_threads() == before  # restored on the way out
        with pytest.raises(KeyError), backend.blas_threads(1):
            raise KeyError("restored after an error too")
        assert blas_threads() == before
    numpy_blas = [path for path in before if "numpy" in path]  # NumPy's own OpenBLAS (numpy.libs/ in the wheels)
    if numpy_blas:
        assert all(inside[path] == 1 for path in numpy_blas), inside
    from minitransformer.nn.attention import scaled_dot_product_attention_backward, scaled_dot_product_attention_forward
    assert scaled_dot_product_attention_forward.__wrapped__.__name__ == "scaled_dot_product_attention_forward"
    assert scaled_dot_product_attention_backward.__doc__.startswith("Gradients of")


def test_flat_blocks_are_views_that_cover_the_arrays(monkeypatch):
    monkeypatch.setattr(backend, "_HOST_BLOCK", 4)
    a, b = np.arange(10.0).reshape(2, 5), np.zeros((2, 5))
    blocks = list(backend.flat_blocks(a, b))
    assert [x.shape for x, _ in blocks] == [(4,), (4,), (2,)]  # a ragged last block
    for x, y in blocks:
        y += x * 2  # written through to b
    np.testing.assert_array_equal(b, 2 * a)
    strided = np.zeros((5, 2)).T  # not C-contiguous: flattening would copy, so the whole arrays come once
    (whole,) = backend.flat_blocks(a, strided)
    assert whole[1] is strided
    with pytest.raises(ValueError, match="one shape"):
        list(backend.flat_blocks(a, np.zeros(10)))
