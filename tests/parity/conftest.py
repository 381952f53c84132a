"""Fixtures of the PyTorch parity tests: ``torch`` and ``interop`` (skip locally, fail in CI without torch).

``MINITRANSFORMER_PARITY_REPORT=1 pytest tests/parity`` prints the worst error measured per check
(the numbers in docs/parity.md).
"""

from __future__ import annotations

import os

import pytest

from tests.conftest import require
from tests.parity.helpers import WORST, format_worst


@pytest.fixture
def torch():
    """The torch module (tests/conftest.py ``require``: skip on a user's machine, fail in CI).

    One intra-op thread: these tensors are tiny, and spare threads only spin against each other.
    """
    torch = require("torch")
    torch.set_num_threads(1)
    return torch


@pytest.fixture
def interop(torch):
    """``minitransformer.interop.torch``, imported only once torch is known to be there."""
    import minitransformer.interop.torch as interop_torch

    return interop_torch


def pytest_terminal_summary(terminalreporter):
    if WORST and os.environ.get("MINITRANSFORMER_PARITY_REPORT"):
        terminalreporter.write_sep("-", "worst parity errors (ours vs torch)")
        terminalreporter.write_line(format_worst())
