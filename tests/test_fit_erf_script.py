"""scripts/fit_erf.py: the float32 erf's coefficients come from the fit it describes, and meet its bound."""

import numpy as np
import pytest

from minitransformer import backend
from tests.conftest import load_script


@pytest.fixture(scope="module")
def script():
    return load_script("scripts/fit_erf.py")


def test_the_stored_coefficients_are_the_fit(script):
    np.testing.assert_allclose(script.fit(), backend._ERF_TANH, rtol=1e-9, atol=0)
    assert backend._ERF_TANH[-1] == 2 / np.sqrt(np.pi)  # erf's slope at 0, kept exact by the fit


def test_the_fit_is_more_accurate_than_the_rational_form_it_replaced(script):
    ours = script.max_error(backend._erf_float32, n=400_001)
    before = script.max_error(script._rational_erf32, n=400_001)
    assert ours < 2.0e-7 and before > 2 * ours


def test_a_fit_with_too_few_terms_is_caught(script):
    """The bound is not met by any fit: two terms (the shape of GPT-2's tanh GELU) are ~1e-4 off."""
    c = script.fit(degree=1, rounds=5)

    def erf2(z):
        x = np.clip(z, -backend._ERF_CLIP, backend._ERF_CLIP)
        return np.tanh(x * np.polyval(np.float32(c), x * x))

    assert script.max_error(erf2, n=100_001) > 1e-5


def test_main_prints_and_plots(script, tmp_path, capsys):
    assert script.main(["--plot", str(tmp_path / "erf.png")]) == 0
    out = capsys.readouterr().out
    assert "max |error|" in out and (tmp_path / "erf.png").stat().st_size > 10_000
