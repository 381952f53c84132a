"""``exercises check``: grade a student copy, exercise by exercise.

1. The student's code runs in a subprocess with ``PYTHONPATH=OUT_DIR``
   (``runner.py``), which checks that it imported the copy, not the installed
   reference. It runs each exercise's probes (``probes.py``) and its gradient
   checks (the ``minitransformer gradcheck`` cases, on the student's own
   forward and backward).
2. The reference answers come from the reference package in this process
   (when it has its solutions: a teacher's install), or from
   ``.exercises/reference.npz``, written at make time (a student's install).
3. Each output is compared with the reference (normwise relative error), a
   wrong one is explained (``hints.py``), and each exercise gets a status:

   - ``correct``: every probe matches the reference and every gradient check passes;
   - ``wrong``: something ran and disagrees (or raised another error), with a hint;
   - ``unfinished``: some of its parts are right, others still raise NotImplementedError;
   - ``not started``: everything still raises its NotImplementedError;
   - ``blocked``: an exercise it needs (``softmax`` for ``attention``) still raises.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import backend
from ..gradcheck import rel_error
from .hints import explain, matches
from .make import ExerciseError
from .probes import probes_for
from .registry import Exercise, needs_closure, select
from .store import load_reference

__all__ = ["STATUSES", "CheckReport", "ExerciseResult", "check", "format_report"]

STATUSES = ("correct", "wrong", "unfinished", "not started", "blocked")


@dataclass
class ExerciseResult:
    """The grade of one exercise.

    Attributes:
        exercise: the exercise.
        status: one of ``STATUSES``.
        worst: the worst relative error over everything that ran (None when nothing ran).
        hint: what is wrong, or what to do next ("" when correct).
    """

    exercise: Exercise
    status: str
    worst: float | None = None
    hint: str = ""

    @property
    def id(self) -> str:
        return self.exercise.id


@dataclass
class CheckReport:
    """All grades of one student copy.

    Attributes:
        out_dir: the student copy.
        results: one ``ExerciseResult`` per checked exercise, in course order.
        package_file: the ``minitransformer/__init__.py`` the student's subprocess imported.
        reference: where the reference answers came from.
        seconds: wall time of the check.
    """

    out_dir: Path
    results: list[ExerciseResult] = field(default_factory=list)
    package_file: str = ""
    reference: str = ""
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return all(r.status == "correct" for r in self.results)

    @property
    def score(self) -> tuple[int, int]:
        """(correct, checked)."""
        return sum(r.status == "correct" for r in self.results), len(self.results)

    def result(self, exercise_id: str) -> ExerciseResult:
        return next(r for r in self.results if r.id == exercise_id)


def _read_manifest(out: Path) -> dict:
    if not (out / "minitransformer" / "__init__.py").is_file():
        raise ExerciseError(f"{out} holds no student copy (no minitransformer/__init__.py); "
                            f"make one with `minitransformer exercises make {out}`")
    path = out / ".exercises" / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        manifest["exercises"] = [str(e) for e in manifest["exercises"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ExerciseError(f"{path} is missing or damaged ({e}); was {out} made by "
                            "`minitransformer exercises make`?") from None
    return manifest


def _reference(out: Path, probes, mode: str) -> tuple[dict, str]:
    """The reference answers and a line saying where they came from."""
    if mode not in ("auto", "computed", "stored"):
        raise ValueError(f"reference must be 'auto', 'computed' or 'stored', got {mode!r}")
    if mode in ("auto", "computed"):
        try:
            from . import grading  # absent from student copies
        except ImportError:
            grading = None
        here = Path(__file__).resolve().parents[1]
        usable = grading is not None and grading.is_reference_package() and out not in here.parents
        if usable:
            return grading.reference_data(probes), f"computed by the reference package at {here}"
        if mode == "computed":
            raise ExerciseError(f"the running minitransformer ({here}) has no solutions, so it cannot compute the "
                                "reference answers; use the ones stored in the copy (--reference stored)")
    path = out / ".exercises" / "reference.npz"
    try:
        data, _ = load_reference(path)
    except ValueError as e:
        raise ExerciseError(str(e)) from None
    missing = [p.key for p in probes if p.key not in data]
    if missing:
        raise ExerciseError(f"{path} lacks the answers of {missing[0]} (made by another version?); "
                            "check with the reference package installed, or make the copy again")
    return data, f"stored at make time ({path})"


def _run_student(out: Path, exercises: list[Exercise], timeout: float) -> tuple[dict, dict]:
    """Run ``runner.main`` in a subprocess on the copy; returns (result.json, arrays)."""
    with tempfile.TemporaryDirectory(prefix="minitransformer-check-") as work:
        here = Path(__file__).resolve().parent
        request = {"work": work, "package_dir": str(out / "minitransformer"), "probes_file": str(here / "probes.py"),
                   "exercises": [e.id for e in exercises],
                   "gradchecks": [g for e in exercises for g in e.gradchecks]}
        req_path = Path(work) / "request.json"
        req_path.write_text(json.dumps(request), encoding="utf-8")
        env = dict(os.environ)
        env.update({"PYTHONPATH": str(out), "PYTHONNOUSERSITE": "1", "MINITRANSFORMER_BACKEND": "numpy",
                    "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
        # The grader's runner, loaded by path; `import minitransformer` inside it finds the student's copy.
        code = ("import importlib.util as u, sys; s = u.spec_from_file_location('_minitransformer_exercise_runner', "
                f"{str(here / 'runner.py')!r}); m = u.module_from_spec(s); s.loader.exec_module(m); sys.exit(m.main())")
        try:
            proc = subprocess.run([sys.executable, "-c", code, str(req_path)], cwd=str(out), env=env,
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ExerciseError(f"the student's code ran for more than {timeout:.0f} s (an endless loop?)") from None
        result_path = Path(work) / "result.json"
        if not result_path.is_file():
            tail = (proc.stderr or proc.stdout or "").strip().splitlines()
            raise ExerciseError(f"the check of {out} crashed (exit status {proc.returncode}): "
                                f"{tail[-1] if tail else 'no output'}")
        result = json.loads(result_path.read_text(encoding="utf-8"))
        if "fatal" in result:
            raise ExerciseError(result["fatal"])
        arrays = backend.load_npz(Path(work) / "student.npz")
    return result, arrays


def _function_of(ex: Exercise, output: str) -> str:
    """The function the student wrote that makes ``output`` (a gradient comes from a backward)."""
    names = [w.split(": ")[1] for w in ex.writes]
    if output in names:
        return output
    backward = [n for n in names if n.endswith("backward")]
    forward = [n for n in names if not n.endswith("backward")]
    pick = (backward if output.startswith("d") else forward) or names
    return " or ".join(pick)


def _where(err: dict) -> str:
    return err["where"].split(" (")[0] if err.get("where") else "?"


def _grade(ex: Exercise, probes, raw: dict, arrays: dict, ref: dict) -> ExerciseResult:
    own, deps, errors, wrong, ran_ok, worst = [], [], [], [], set(), None
    progress = False  # some output of the student's own code is right

    def note(e):
        nonlocal worst
        worst = e if worst is None or not e <= worst else worst

    def classify(err: dict, what: str) -> None:
        if err.get("exercise") == ex.id:
            own.append(_where(err))
        elif err.get("exercise"):
            deps.append(err["exercise"])
        else:
            where = f" in {err['where']}" if err.get("where") else ""
            raised = "" if err["type"] == "ProbeError" else f"raises {err['type']}: "
            errors.append(f"{what}: {raised}{err['message']}{where}")

    for probe in probes:
        r = raw["probes"].get(probe.key, {"error": {"type": "KeyError", "message": "not run"}, "outputs": {}})
        true_outputs = ref[probe.key]["outputs"]
        mistakes = ref[probe.key]["mistakes"]
        bad = []
        for name, true in true_outputs.items():
            if name not in r["outputs"]:
                if "error" not in r:
                    bad.append(f"{name} is missing")
                    note(math.inf)
                continue
            mine = arrays[r["outputs"][name]]
            note(rel_error(mine, true) if mine.shape == true.shape else math.inf)
            if not matches(mine, true):
                bad.append(explain(name, mine, true, factors=probe.factors, mistakes=mistakes.get(name, ()),
                                   others=true_outputs, function=_function_of(ex, name), nonfinite=probe.nonfinite))
            elif name not in probe.given:
                progress = True
        if bad:
            wrong.append((probe, bad))
        if "error" in r:
            classify(r["error"], probe.label)
        elif not bad:
            ran_ok.add(probe.label)
    failed_checks = []
    for case in ex.gradchecks:
        g = raw["gradchecks"].get(case, {"error": {"type": "KeyError", "message": "not run"}})
        if "error" in g:
            classify(g["error"], f"gradient check {case}")
            continue
        note(g["worst"])
        if g["passed"]:
            ran_ok.add(case)
        else:
            failed_checks.append(f"gradient check {case}: {g['worst_name']} has rel. error {g['worst']:.1e} "
                                 "(the backward disagrees with the slope of the forward)")
    own = list(dict.fromkeys(own))
    unfinished = ", ".join(own) + (" still raises" if len(own) == 1 else " still raise")
    deps = list(dict.fromkeys(deps))
    if errors or wrong or failed_checks:
        if wrong:
            probe, bad = wrong[0]
            simpler = [p for p in probes if p.simpler_than == probe.label and p.label in ran_ok]
            prefix = f"correct for {simpler[0].label}, wrong for {probe.label}: " if simpler else f"{probe.label}: "
            specific = not bad[0].startswith(f"{bad[0].split(' ')[0]} differs from the reference")
            hint = prefix + (bad[0] if specific or len(bad) == 1 else "; ".join(bad[:2]))
        else:
            hint = errors[0] if errors else failed_checks[0]
        if own:
            hint += f"; {unfinished} NotImplementedError"
        return ExerciseResult(ex, "wrong", worst, hint)
    if own and not (ran_ok or progress):
        names = [w.split(": ")[1] for w in ex.writes]
        hint = ", ".join(names) + (" still raises" if len(names) == 1 else " still raise") + " NotImplementedError"
        if deps:
            hint += f"; it also needs {', '.join(deps)}"
        return ExerciseResult(ex, "not started", None, hint)
    if own:
        return ExerciseResult(ex, "unfinished", worst, f"the parts that ran are right; {unfinished} "
                                                       "NotImplementedError")
    if deps:
        done = "the parts that ran are right; " if ran_ok or progress else ""
        return ExerciseResult(ex, "blocked", worst, f"{done}finish {', '.join(deps)} first "
                                                    "(it still raises NotImplementedError)")
    return ExerciseResult(ex, "correct", worst, "")


def check(out_dir=".", only=None, *, reference: str = "auto", timeout: float = 600.0) -> CheckReport:
    """Grade the student copy in ``out_dir``.

    Args:
        out_dir: a folder written by ``make``.
        only: exercise ids to grade (default: every exercise handed out in it).
        reference: ``"auto"`` (compute the answers when this process runs the
            reference package, else read the stored ones), ``"computed"`` or ``"stored"``.
        timeout: seconds allowed for the student's code.
    Returns:
        CheckReport.
    Raises:
        ExerciseError: not a student copy, unknown exercises or ones not handed
            out in it, a copy that does not import, a crash or a timeout.
    """
    start = time.perf_counter()
    out = Path(out_dir).expanduser().resolve()
    manifest = _read_manifest(out)
    try:
        exercises = select(only if only is not None else manifest["exercises"])
    except ValueError as e:
        raise ExerciseError(str(e)) from None
    not_handed = [e.id for e in exercises if e.id not in manifest["exercises"]]
    if not_handed:
        raise ExerciseError(f"{', '.join(not_handed)} {'was' if len(not_handed) == 1 else 'were'} not handed out "
                            f"in {out} (it has: {', '.join(manifest['exercises'])})")
    probes = probes_for([e.id for e in exercises])
    ref, source = _reference(out, probes, reference)
    raw, arrays = _run_student(out, exercises, timeout)
    report = CheckReport(out, package_file=raw.get("package_file", ""), reference=source)
    for ex in exercises:
        mine = [p for p in probes if p.exercise == ex.id]
        report.results.append(_grade(ex, mine, raw, arrays, ref))
    status = {r.id: r.status for r in report.results}
    for r in report.results:  # a wrong answer built on another unfinished or wrong exercise: say so first
        if r.status == "wrong":
            weak = [f"{d} ({status[d]})" for d in needs_closure(r.id) if status.get(d, "correct") != "correct"]
            if weak:
                r.hint = f"fix {', '.join(weak)} first, this exercise calls it; then: {r.hint}"
    report.seconds = time.perf_counter() - start
    return report


def format_report(report: CheckReport) -> str:
    """The score table: exercise, status, worst relative error, hint; then the score."""
    rows = [("exercise", "status", "worst rel. error", "hint")]
    for r in report.results:
        worst = "-" if r.worst is None else f"{r.worst:.1e}"
        rows.append((r.id, r.status, worst, r.hint))
    widths = [max(len(row[c]) for row in rows) for c in range(3)]
    lines = [f"student copy: {report.out_dir}", f"imported:     {report.package_file}",
             f"reference:    {report.reference}", ""]
    for j, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)) + "  " + row[3])
        if j == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 4)
    n, total = report.score
    minutes = sum(r.exercise.minutes for r in report.results if r.status == "correct")
    lines.append("")
    lines.append(f"score: {n}/{total} correct ({minutes} of {sum(r.exercise.minutes for r in report.results)} "
                 f"minutes of work), in {report.seconds:.1f} s")
    return "\n".join(line.rstrip() for line in lines)
