"""The teaching kit: solution markers, student copies (`exercises make`) and the autograder (`exercises check`).

The full make -> fill in -> check cycle runs on four exercises (linear, softmax, attention, layernorm:
a plain backward, a forward + backward pair, one that needs another exercise, and one with several
terms); one slower test runs it on the whole set. Each check starts a subprocess on the student's copy.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from minitransformer import backend
from minitransformer.cli import main
from minitransformer.exercises import (
    EXERCISES,
    STATUSES,
    ExerciseError,
    RegionError,
    check,
    exercise_ids,
    find_regions,
    format_report,
    make,
    select,
    student_source,
)
from minitransformer.exercises.check import _run_student
from minitransformer.exercises.hints import explain
from minitransformer.exercises.make import package_dir
from minitransformer.exercises.probes import PROBES
from minitransformer.exercises.regions import scan_source
from tests.conftest import randn

PKG = package_dir()
FEW = ["linear", "softmax", "attention", "layernorm"]


# -- helpers -----------------------------------------------------------------------------------------


def _region_files() -> list[str]:
    """Paths (relative to the package's parent) of the files that hold solution regions."""
    return sorted({r.path for r in find_regions(PKG)})


def _fill(copy: Path, keep_open=lambda region: False) -> None:
    """Put the reference solutions back into a student copy, except the regions ``keep_open`` selects."""
    for rel in _region_files():
        text = (PKG.parent / rel).read_text(encoding="utf-8")
        new, _ = student_source(text, rel, keep_open)
        (copy / rel).write_text(new, encoding="utf-8")


def _edit(copy: Path, rel: str, old: str, new: str) -> None:
    """Replace one unique line fragment of a student's file (a deliberate bug)."""
    path = copy / "minitransformer" / rel
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {rel}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def _statuses(report) -> dict[str, str]:
    return {r.id: r.status for r in report.results}


@pytest.fixture(scope="module")
def few(tmp_path_factory) -> Path:
    """A student copy of the four exercises, made once for the module (copy it before editing)."""
    out = tmp_path_factory.mktemp("exercises") / "few"
    make(out, FEW, notebooks=False)
    return out


@pytest.fixture
def copy(few, tmp_path) -> Path:
    """A private copy of ``few`` for one test."""
    return Path(shutil.copytree(few, tmp_path / "copy"))


# -- the markers in the library ---------------------------------------------------------------------


def test_every_exercise_has_regions_probes_and_gradchecks_and_nothing_else_is_marked():
    from minitransformer.report import case_names

    regions = find_regions(PKG)
    marked = {r.exercise for r in regions}
    assert marked == set(exercise_ids()), "every exercise is marked somewhere, and only exercises are"
    assert 8 <= len(EXERCISES) <= 12
    probed = {p.exercise for p in PROBES}
    assert probed == set(exercise_ids())
    cases = set(case_names())
    for e in EXERCISES:
        assert set(e.gradchecks) <= cases, e.id
        written = {w.split(": ")[1] for w in e.writes}
        assert written == {r.function for r in regions if r.exercise == e.id}, e.id
        assert set(e.needs) < set(exercise_ids()) and e.id not in e.needs


def test_markers_are_comments_only_the_reference_code_is_unchanged():
    for rel in _region_files():
        text = (PKG.parent / rel).read_text(encoding="utf-8")
        stripped, replaced = student_source(text, rel, set())  # markers removed, every solution kept
        assert replaced == []
        assert "SOLUTION" not in stripped
        assert ast.dump(ast.parse(stripped)) == ast.dump(ast.parse(text)), rel


def test_reference_package_still_passes_every_exercise_gradient_check_and_probe():
    from minitransformer.exercises.grading import reference_data
    from minitransformer.report import find_cases

    for case in find_cases([g for e in EXERCISES for g in e.gradchecks]):
        result = case.build()
        assert result.passed, str(result)
    data = reference_data(PROBES)  # every probe runs on the reference, and no known mistake equals the truth
    for probe in PROBES:
        for name, items in data[probe.key]["mistakes"].items():
            true = backend.to_numpy(data[probe.key]["outputs"][name])
            for message, wrong in items:
                assert explain(name, backend.to_numpy(wrong), true).startswith(name), message
                assert not (wrong.shape == true.shape and abs(backend.to_numpy(wrong) - true).max() < 1e-9), message


def test_student_source_raises_with_the_hint_at_the_right_indentation():
    rel = "minitransformer/nn/attention.py"
    text = (PKG.parent / rel).read_text(encoding="utf-8")
    new, replaced = student_source(text, rel, {"attention"})
    assert [r.function for r in replaced] == ["scaled_dot_product_attention_forward",
                                              "scaled_dot_product_attention_backward"]
    assert replaced[0].used_after == ("scale", "S")  # the rest of the forward needs them: the message says so
    assert "(the lines below need: scale, S)" in replaced[0].message()
    assert "dK = (dS.swapaxes(-1, -2) @ Q) * scale" not in new and "S = (Q * scale) @" not in new
    namespace = {"__name__": "student_attention"}
    code = compile(new.replace("from .. import backend", "from minitransformer import backend")
                   .replace("from .softmax import", "from minitransformer.nn.softmax import")
                   .replace("from .batch_split import", "from minitransformer.nn.batch_split import"), rel, "exec")
    exec(code, namespace)
    Q = K = V = randn(backend.host_rng(0), 1, 1, 2, 3)
    with pytest.raises(NotImplementedError, match=r"^Exercise attention: scale = 1 / sqrt\(d_k\)"):
        namespace["scaled_dot_product_attention_forward"](Q, K, V)


def test_malformed_markers_are_refused_with_file_and_line():
    def fn(body):
        return "def f(x):\n" + body + "\n    return x\n"

    cases = {
        "never closed": fn("    # BEGIN SOLUTION a: hint\n    y = x"),
        "without a BEGIN": fn("    y = x\n    # END SOLUTION"),
        "inside the region": fn("    # BEGIN SOLUTION a: h\n    # BEGIN SOLUTION b: h\n    y = 1\n    # END SOLUTION"),
        "closes the region": fn("    # BEGIN SOLUTION a: h\n    y = 1\n    # END SOLUTION b"),
        "has no hint": fn("    # BEGIN SOLUTION a\n    y = 1\n    # END SOLUTION"),
        "holds no code": fn("    # BEGIN SOLUTION a: h\n    # END SOLUTION"),
        "not inside a function": "# BEGIN SOLUTION a: h\nX = 1\n# END SOLUTION\n",
        "more than one function": "def f():\n    # BEGIN SOLUTION a: h\n    def g():\n        return 1\n"
                                  "    return g\n    # END SOLUTION\n",
        "indented less": "def f():\n    # BEGIN SOLUTION a: h\n    return 1\n\n\ndef g():\n    return 2\n"
                         "    # END SOLUTION\n",
        "lower case": fn("    # BEGIN SOLUTION Attention: h\n    y = 1\n    # END SOLUTION"),
    }
    for expected, source in cases.items():
        with pytest.raises(RegionError, match=expected):
            scan_source(source, "bad.py")
    with pytest.raises(RegionError, match=r"bad\.py:3"):
        scan_source(cases["without a BEGIN"], "bad.py")
    # a marker-like line inside a string is not a marker
    assert scan_source('def f():\n    """\n    # BEGIN SOLUTION a: h\n    """\n    return 1\n', "ok.py") == []


# -- make --------------------------------------------------------------------------------------------


def test_make_writes_a_copy_that_parses_imports_and_fails_only_in_the_exercises(few):
    files = sorted((few / "minitransformer").rglob("*.py"))
    assert len(files) > 30
    for p in files:
        ast.parse(p.read_text(encoding="utf-8"), str(p))  # every student file parses
    assert not (few / "minitransformer" / "exercises" / "grading.py").exists()  # it knows the solutions
    for name in ("pyproject.toml", "README.md", "EXERCISES.md", ".exercises/manifest.json",
                 ".exercises/reference.npz"):
        assert (few / name).is_file(), name
    linear = (few / "minitransformer/nn/linear.py").read_text(encoding="utf-8")
    assert 'raise NotImplementedError(\n        "Exercise linear: dx = dy @ W^T;' in linear
    assert "x2.T @ dy2" not in linear and "SOLUTION" not in linear
    dropout = (few / "minitransformer/nn/dropout.py").read_text(encoding="utf-8")  # not handed out
    assert "return dy * mask * scale" in dropout and "SOLUTION" not in dropout
    unchanged = (PKG / "nn/positional.py").read_text(encoding="utf-8")
    assert (few / "minitransformer/nn/positional.py").read_text(encoding="utf-8") == unchanged
    script = (
        "import minitransformer, minitransformer.nn, minitransformer.nn.linear as L\n"
        "from minitransformer import backend\n"
        "from minitransformer.nn.dropout import dropout_forward\n"
        "print(minitransformer.__file__)\n"
        "x = backend.asarray([[1.0, 2.0]]); W = backend.asarray([[1.0], [1.0]])\n"
        "y, cache = L.linear_forward(x, W)\n"
        "try:\n"
        "    L.linear_backward(y, cache)\n"
        "except NotImplementedError as e:\n"
        "    print('NIE', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=few, env={"PYTHONPATH": str(few), "PATH": ""},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.splitlines()[:2]
    assert Path(first).resolve() == (few / "minitransformer/__init__.py").resolve()
    assert second.startswith("NIE Exercise linear: dx = dy @ W^T")


def test_make_refuses_a_non_empty_folder_without_force_and_the_reference_itself(tmp_path, copy):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ExerciseError, match="is not empty; pass --force"):
        make(tmp_path / "other", ["linear"])
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"  # nothing written
    with pytest.raises(ExerciseError, match="would overwrite the reference package"):
        make(PKG.parent, ["linear"], force=True)
    (copy / "minitransformer" / "stray.py").write_text("x = 1\n")
    result = make(copy, ["relu"], force=True, notebooks=False)
    assert [e.id for e in result.exercises] == ["relu"]
    assert not (copy / "minitransformer" / "stray.py").exists()  # the old copy was replaced
    assert "Exercise relu:" in (copy / "minitransformer/nn/activations.py").read_text(encoding="utf-8")
    assert "Exercise linear:" not in (copy / "minitransformer/nn/linear.py").read_text(encoding="utf-8")


def test_unknown_exercise_names_give_an_error_listing_the_valid_ones(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"unknown exercise 'attenton' \(did you mean attention\?\); "
                                         r"valid exercises: linear, relu, gelu"):
        select(["linear", "attenton"])
    assert [e.id for e in select(["layernorm", "linear"])] == ["linear", "layernorm"]  # course order
    with pytest.raises(SystemExit) as exc:
        main(["exercises", "make", str(tmp_path / "x"), "--only", "softmax,nope"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unknown exercise 'nope'" in err and "valid exercises: linear, relu" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


# -- check -------------------------------------------------------------------------------------------


def test_not_started_copy_reports_not_started_for_each(few):
    for reference in ("computed", "stored"):
        report = check(few, reference=reference)
        assert _statuses(report) == dict.fromkeys(FEW, "not started"), format_report(report)
        assert all(r.worst is None and "still raise" in r.hint for r in report.results)
        assert Path(report.package_file) == (few / "minitransformer/__init__.py").resolve()
    assert "stored at make time" in report.reference


def test_filled_in_copy_gets_full_marks_from_the_cli(copy, capsys):
    _fill(copy)
    assert main(["exercises", "check", str(copy)]) == 0
    out = capsys.readouterr().out
    assert "score: 4/4 correct" in out
    # the student's own flow: their copy is the package that runs (no solutions: stored answers)
    student = subprocess.run([sys.executable, "-m", "minitransformer", "exercises", "check", ".", "--only", "linear"],
                             cwd=copy, env={**os.environ, "PYTHONPATH": str(copy)}, capture_output=True, text=True,
                             timeout=300)
    assert student.returncode == 0, student.stdout + student.stderr
    assert "score: 1/1 correct" in student.stdout and "stored at make time" in student.stdout
    assert f"imported:     {(copy / 'minitransformer' / '__init__.py').resolve()}" in student.stdout
    again = subprocess.run([sys.executable, "-m", "minitransformer", "exercises", "make", str(copy / "x")],
                           cwd=copy, env={**os.environ, "PYTHONPATH": str(copy)}, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 1 and "it is a student copy" in again.stderr


def test_wrong_backward_scaled_missing_term_and_sqrt_dk_are_named(copy):
    _fill(copy)
    _edit(copy, "nn/linear.py", "    dW = backend.matmul(x2.T, dy2)", "    dW = 2.0 * (x2.T @ dy2)")
    _edit(copy, "nn/layernorm.py", "dx_b[...] = rstd_b * (g - mean_g - xh_b * mean_gx)",
          "dx_b[...] = rstd_b * (g - xh_b * mean_gx)")
    _edit(copy, "nn/attention.py", "dK = (dS.swapaxes(-1, -2) @ Q) * scale", "dK = dS.swapaxes(-1, -2) @ Q")
    report = check(copy)
    text = format_report(report)
    assert _statuses(report) == {"linear": "wrong", "softmax": "correct", "attention": "wrong",
                                 "layernorm": "wrong"}, text
    assert "dW is off by a factor of 2" in report.result("linear").hint
    assert "dK is off by a factor of sqrt(d_k)" in report.result("attention").hint
    assert "missing the - mean(g) term" in report.result("layernorm").hint
    assert report.result("linear").worst > 0.1
    assert main(["exercises", "check", str(copy), "--only", "linear"]) == 1


def test_transposed_biased_and_batch_one_mistakes_are_named(copy):
    _fill(copy)
    # right for one example only:
    _edit(copy, "nn/linear.py", "    dW = backend.matmul(x2.T, dy2)", "    dW = x[0].T @ dy[0]")
    _edit(copy, "nn/layernorm.py", "var = (xc * xc).mean(axis=-1, keepdims=True)",
          "var = (xc * xc).sum(axis=-1, keepdims=True) / (x.shape[-1] - 1)")
    _edit(copy, "nn/attention.py", "dV = P_drop.swapaxes(-1, -2) @ dY", "dV = P.swapaxes(-1, -2) @ dY")
    _edit(copy, "nn/softmax.py", "    dx = dP - inner", "    dP -= inner\n    dx = dP")  # writes into dP
    report = check(copy)
    hints = {r.id: r.hint for r in report.results}
    assert hints["linear"].startswith("correct for B=1, T=1, wrong for B=2, T=3: dW"), hints
    assert "dy (B * T, d_out)" in hints["linear"] or "every position of every example" in hints["linear"]
    assert "biased" in hints["layernorm"]
    assert "wrote into its upstream gradient" in hints["softmax"]
    assert hints["attention"].startswith("fix softmax (wrong) first")
    assert "AFTER dropout" in hints["attention"]
    assert "wrong for padding + causal mask, dropout 0.25" in hints["attention"]

    _fill(copy)
    _edit(copy, "nn/linear.py", "    dW = backend.matmul(x2.T, dy2)", "    dW = dy2.T @ x2")
    assert "dW has shape (5, 4), expected (4, 5): transposed?" in check(copy, ["linear"]).result("linear").hint


def test_transposed_gradients_are_named_end_to_end(copy):
    _fill(copy)
    _edit(copy, "nn/linear.py", "    dW = backend.matmul(x2.T, dy2)", "    dW = dy2.T @ x2")  # (d_out, d_in)
    _edit(copy, "nn/attention.py", "dK = (dS.swapaxes(-1, -2) @ Q) * scale", "dK = (dS @ Q) * scale")
    report = check(copy, ["linear", "attention"])
    hints = {r.id: r.hint for r in report.results}
    assert _statuses(report) == {"linear": "wrong", "attention": "wrong"}, format_report(report)
    assert "dW" in hints["linear"] and "transposed" in hints["linear"], hints
    assert "dK" in hints["attention"], hints


def test_blocked_and_unfinished_exercises(copy):
    # softmax still open: attention (done) cannot run; layernorm's forward done, its backward not
    _fill(copy, lambda r: r.exercise == "softmax" or r.function == "layernorm_backward")
    report = check(copy, reference="stored")
    assert _statuses(report) == {"linear": "correct", "softmax": "not started", "attention": "blocked",
                                 "layernorm": "unfinished"}, format_report(report)
    assert "finish softmax first" in report.result("attention").hint
    assert "layernorm_backward still raises NotImplementedError" in report.result("layernorm").hint
    assert set(_statuses(report).values()) <= set(STATUSES)


def test_check_errors_not_a_copy_syntax_error_and_the_wrong_package(copy, tmp_path):
    with pytest.raises(ExerciseError, match="holds no student copy"):
        check(tmp_path / "nothing")
    with pytest.raises(ExerciseError, match="was not handed out"):
        check(copy, ["relu"])
    _edit(copy, "nn/linear.py", "    y = backend.matmul(x.reshape", "    y = backend.matmul(x @@ W, x.reshape")
    with pytest.raises(ExerciseError, match=r"does not import: SyntaxError.*linear\.py"):
        check(copy)
    # without the copy's own package on the path, the installed reference would be imported: refused
    (copy / "minitransformer").rename(copy / "elsewhere")
    exercises = select(["linear"])
    with pytest.raises(ExerciseError, match="not from the student copy"):
        _run_student(copy, exercises, timeout=120)


def test_explain_names_scale_sign_transpose_and_swapped_outputs():
    import numpy as np

    true = np.arange(1.0, 10.0).reshape(3, 3)
    assert "off by a factor of 2" in explain("dW", 2.0 * true, true)
    assert "off by a factor of 1/sqrt(d_k)" in explain("dK", true / 3.0 ** 0.5, true, factors={"sqrt(d_k)": 3 ** 0.5})
    assert "wrong sign" in explain("dx", -true, true)
    assert "transposed" in explain("dW", true.T, true)
    assert "holds the value of db" in explain("dW", true + 1.0, true, others={"dW": true, "db": true + 1.0})
    assert "missing the mean" in explain("dx", true - 1.0, true, mistakes=[("missing the mean term", true - 1.0)])
    assert "NaN" in explain("P", true * np.nan, true, nonfinite="subtract the max")
    assert "differs from the reference" in explain("dx", np.sin(true), true)


def test_whole_set_full_cycle_and_the_copy_builds(tmp_path):
    out = tmp_path / "course"
    result = make(out)
    assert [e.id for e in result.exercises] == exercise_ids()
    assert {r.exercise for r in result.regions} == set(exercise_ids())
    assert (out / "notebooks").is_dir() and any((out / "notebooks").glob("*.ipynb"))
    report = check(out)
    assert _statuses(report) == dict.fromkeys(exercise_ids(), "not started"), format_report(report)
    _fill(out)
    report = check(out)
    assert report.passed and report.score == (len(EXERCISES), len(EXERCISES)), format_report(report)
    # the student copy is an installable project (pip builds it without touching this environment)
    wheel = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "wheel"), str(out)], capture_output=True, text=True, timeout=300)
    assert wheel.returncode == 0, wheel.stderr[-2000:]
    assert list((tmp_path / "wheel").glob("minitransformer-*.whl"))
