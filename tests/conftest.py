"""Shared test helpers.

``require(name)`` imports an optional dependency (torch, transformers, ...).
On a user's machine a missing one skips the test; in CI (``CI=true``) it fails,
so a missing install step can never hide behind a green run.
"""

from __future__ import annotations

import importlib
import os

import pytest

from minitransformer import backend


def load_script(relative_path: str):
    """Import a script of the repository (``"benchmarks/soak.py"``) as a module, to call its ``main``."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / relative_path
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def require(module_name: str):
    """Import ``module_name`` or skip (locally) / fail (in CI)."""
    try:
        return importlib.import_module(module_name)
    except ImportError as e:
        msg = f"optional dependency {module_name!r} is not installed ({e}); pip install -e '.[parity]'"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("CI must run every test: " + msg)
        pytest.skip(msg)


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same generators."""
    backend.manual_seed(0)
    yield


@pytest.fixture
def rng():
    """A fresh host generator for test inputs."""
    return backend.host_rng(1234)


def randn(rng, *shape, dtype="float64"):
    """Standard-normal test input on the active backend."""
    return backend.asarray(rng.standard_normal(shape), dtype=dtype)


def assert_close(actual, expected, rtol=1e-7, atol=0.0, err_msg=""):
    """``numpy.testing.assert_allclose`` on host copies (works for CuPy arrays too)."""
    import numpy as np

    np.testing.assert_allclose(backend.to_numpy(actual), backend.to_numpy(expected),
                               rtol=rtol, atol=atol, err_msg=err_msg)
