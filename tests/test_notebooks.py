"""The notebooks: each runs top to bottom, is committed executed and error-free, and teaches with a formula.

Every ``notebooks/*.ipynb`` is found by glob, so a notebook added later is covered without touching this
file. Executing them is slow (one kernel per notebook), so that test is marked ``notebooks``: deselect it
locally with ``pytest -m "not notebooks"``. It needs nbclient, nbformat and ipykernel (the ``dev`` extra);
``require`` fails in CI rather than skipping when they are missing.

The static checks read the committed files as plain JSON and need nothing beyond the standard library.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from tests.conftest import require

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
IDS = [p.name for p in NOTEBOOKS]
CELL_TIMEOUT_S = 600  # per cell; a notebook should finish in well under a minute on a quiet machine
MAX_BYTES = 300 * 1024  # committed notebooks stay small (plots as PNG at modest dpi)
NAME = re.compile(r"^(\d\d)_[a-z0-9_]+\.ipynb$")
LATEX = re.compile(r"\$\$.+?\$\$|\$[^$\n]+\$", re.S)
IMPORTS_LIBRARY = re.compile(r"^\s*(from\s+minitransformer(\.\w+)*\s+import\s|import\s+minitransformer\b)", re.M)


def _load(path: Path) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _text(output: dict) -> str:
    text = output.get("text", "")
    return "".join(text) if isinstance(text, list) else text


def _code_cells(nb: dict) -> list[dict]:
    """Code cells with something in them (an empty cell is never executed)."""
    return [c for c in nb.get("cells", []) if c.get("cell_type") == "code" and _source(c).strip()]


def committed_problems(nb: dict) -> list[str]:
    """What is wrong with a notebook as committed: not executed in order, no outputs, errors, wrong kernel."""
    problems = []
    code = _code_cells(nb)
    if not code:
        problems.append("no code cells")
    counts = [c.get("execution_count") for c in code]
    if None in counts:
        problems.append(f"code cells {[i for i, n in enumerate(counts) if n is None]} were never executed")
    elif counts != list(range(1, len(counts) + 1)):
        problems.append(f"execution counts {counts} are not 1..{len(counts)}: execute it top to bottom in a "
                        "fresh kernel (jupyter nbconvert --to notebook --execute --inplace)")
    if code and not any(c.get("outputs") for c in code):
        problems.append("no cell has an output")
    for i, c in enumerate(code):
        for o in c.get("outputs", []):
            if o.get("output_type") == "error":
                problems.append(f"code cell {i} has an error output: {o.get('ename')}: {o.get('evalue')}")
            elif o.get("output_type") == "stream" and "Traceback (most recent call last)" in _text(o):
                problems.append(f"code cell {i} printed a traceback on {o.get('name')}")
    kernel = nb.get("metadata", {}).get("kernelspec", {}).get("name")
    if kernel != "python3":
        problems.append(f"kernelspec name is {kernel!r}, expected 'python3'")
    return problems


def teaching_problems(nb: dict) -> list[str]:
    """A lesson carries a LaTeX formula in its markdown and uses the library, not a copy of it."""
    problems = []
    markdown = "\n".join(_source(c) for c in nb.get("cells", []) if c.get("cell_type") == "markdown")
    if not LATEX.search(markdown):
        problems.append("no LaTeX formula ($...$ or $$...$$) in the markdown")
    code = "\n".join(_source(c) for c in _code_cells(nb))
    if not IMPORTS_LIBRARY.search(code):
        problems.append("no `from minitransformer... import` / `import minitransformer` in the code")
    return problems


# -- the checks themselves can fail -------------------------------------------------------------------


def _fake(cells, kernel="python3") -> dict:
    return {"cells": cells, "metadata": {"kernelspec": {"name": kernel}}, "nbformat": 4, "nbformat_minor": 5}


def _code(src, n, outputs=()):
    return {"cell_type": "code", "source": src, "execution_count": n, "outputs": list(outputs), "metadata": {}}


def _md(src):
    return {"cell_type": "markdown", "source": src, "metadata": {}}


def test_checks_accept_a_good_notebook():
    nb = _fake([_md("The map $y = xW + b$."), _code("from minitransformer.nn.linear import Linear", 1),
                _code("print(1)", 2, [{"output_type": "stream", "name": "stdout", "text": "1\n"}]),
                _code("", None)])
    assert committed_problems(nb) == []
    assert teaching_problems(nb) == []


def test_checks_catch_errors_unexecuted_cells_and_missing_lessons():
    error = {"output_type": "error", "ename": "ValueError", "evalue": "boom", "traceback": []}
    nb = _fake([_md("no formula here, only a price: $5"), _code("import numpy", 1, [error]), _code("x = 1", None)],
               kernel="python3.11")
    problems = " | ".join(committed_problems(nb))
    assert "error output: ValueError: boom" in problems
    assert "never executed" in problems
    assert "kernelspec" in problems
    assert len(teaching_problems(nb)) == 2
    out_of_order = _fake([_code("a = 1", 2, [{"output_type": "stream", "name": "stdout", "text": "a"}]),
                          _code("b = 2", 1)])
    assert "not 1..2" in " ".join(committed_problems(out_of_order))
    traceback = {"output_type": "stream", "name": "stderr", "text": "Traceback (most recent call last):\n"}
    assert "traceback" in " ".join(committed_problems(_fake([_code("f()", 1, [traceback])])))


# -- the committed notebooks ------------------------------------------------------------------------------


def test_notebooks_exist_and_are_named_in_course_order():
    assert NOTEBOOKS, f"no notebooks found in {NOTEBOOK_DIR}"
    bad = [p.name for p in NOTEBOOKS if not NAME.match(p.name)]
    assert not bad, f"notebooks must be named NN_topic.ipynb (lower case), got {bad}"
    numbers = [NAME.match(p.name).group(1) for p in NOTEBOOKS]
    assert len(set(numbers)) == len(numbers), f"two notebooks share a number: {sorted(numbers)}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_committed_with_outputs_and_no_errors(path):
    assert committed_problems(_load(path)) == []
    size = path.stat().st_size
    assert size <= MAX_BYTES, f"{path.name} is {size / 1024:.0f} kB; keep notebooks under {MAX_BYTES // 1024} kB"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_has_a_formula_and_uses_the_library(path):
    assert teaching_problems(_load(path)) == []


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_executes_top_to_bottom(path, tmp_path):
    nbformat = require("nbformat")
    nbclient = require("nbclient")
    require("ipykernel")
    work = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOK_DIR, work)  # a temp copy: whatever a notebook writes lands there, not in the repo
    nb = nbformat.read(work / path.name, as_version=4)
    # the lessons pick their backend themselves (notebook 01 shows the switch); a GPU test run's
    # MINITRANSFORMER_BACKEND must not leak into them
    env = {k: v for k, v in os.environ.items() if k != "MINITRANSFORMER_BACKEND"}
    # One BLAS thread for the small matrices of the lessons: faster alone, and up to ~10x faster when the
    # machine is busy (notebook 10's training cell ran out of time under load with the default threads).
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(work)}})
    start = time.perf_counter()
    client.execute(env=env)  # raises CellExecutionError, naming the cell, on the first error
    print(f"{path.name}: executed in {time.perf_counter() - start:.1f} s")
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors, f"{path.name}: error outputs {[(o.ename, o.evalue) for o in errors]}"
