"""``exercises make``: write a student copy of the package, with the selected solutions cut out.

The copy holds the whole package (so it installs with ``pip install -e
OUT_DIR`` and imports), ``pyproject.toml``, ``README.md``, the notebooks, an
``EXERCISES.md`` for the student, and ``.exercises/`` (the manifest and the
reference answers, for ``exercises check``). In every ``.py`` file each
selected region becomes a ``raise NotImplementedError("Exercise <id>: ...")``
and the markers of the other exercises are removed, their solution kept
(``regions.py``). ``exercises/grading.py``, which computes the reference
answers and knows the solutions, is left out.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__
from .regions import Region, find_regions, student_source
from .registry import Exercise, select

__all__ = ["ExerciseError", "MakeResult", "exercises_markdown", "make", "package_dir"]

# Files of the package that never go into a student copy (relative to the package folder).
_LEFT_OUT = {"exercises/grading.py"}
_ROOT_FILES = ("pyproject.toml", "README.md", "LICENSE", "LICENSE.txt", "LICENSE.md")
_MINIMAL_PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "minitransformer"
version = "{version}"
requires-python = ">=3.10"
dependencies = ["numpy>=2", "scipy>=1.11", "tqdm>=4.60", "matplotlib>=3.7", "threadpoolctl>=3.1", "safetensors>=0.4"]

[project.scripts]
minitransformer = "minitransformer.cli:main"

[tool.setuptools.packages.find]
include = ["minitransformer*"]
"""


class ExerciseError(ValueError):
    """A problem with the user's request (a bad folder, an unknown exercise): one clear line."""


@dataclass
class MakeResult:
    """What ``make`` wrote.

    Attributes:
        out_dir: the student copy.
        exercises: the exercises handed out, in course order.
        regions: the regions replaced by a raise.
        files: number of files written.
    """

    out_dir: Path
    exercises: list[Exercise]
    regions: list[Region] = field(default_factory=list)
    files: int = 0


def package_dir() -> Path:
    """The folder of the running ``minitransformer`` package."""
    return Path(__file__).resolve().parents[1]


def _check_out_dir(out: Path, force: bool, pkg: Path) -> None:
    ours = pkg.resolve()
    if out == ours or out in ours.parents or ours in out.parents:
        raise ExerciseError(f"OUT_DIR {out} would overwrite the reference package at {ours}; choose another folder")
    if out.exists() and not out.is_dir():
        raise ExerciseError(f"OUT_DIR {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ExerciseError(f"OUT_DIR {out} is not empty; pass --force to replace the student copy in it "
                            "(its minitransformer/, notebooks/ and .exercises/ are deleted first)")


def exercises_markdown(exercises) -> str:
    """The student's EXERCISES.md: the exercises in order, with time, functions and how to check."""
    total = sum(e.minutes for e in exercises)
    lines = [
        "# Exercises",
        "",
        "Each exercise below replaced some lines of the library by",
        '`raise NotImplementedError("Exercise <id>: <hint>")`. Find them with',
        "`grep -rn \"Exercise \" minitransformer/`, write the code (the docstring's `Math:` block has the",
        "formulas, the notebook explains them), then grade yourself:",
        "",
        "    minitransformer exercises check .            # all exercises",
        "    minitransformer exercises check . --only linear",
        "",
        "Install this folder first (`pip install -e .`), or run `python -m minitransformer exercises check .`",
        "from this folder.",
        "",
        f"Suggested order (about {total // 60} h {total % 60:02d} min in all):",
        "",
        "| # | exercise | what you write | minutes | needs | notebook |",
        "|---|----------|----------------|---------|-------|----------|",
    ]
    for i, e in enumerate(exercises, 1):
        writes = "<br>".join(f"`{w}`" for w in e.writes)
        needs = ", ".join(e.needs) or "-"
        lines.append(f"| {i} | `{e.id}`: {e.title} | {writes} | {e.minutes} | {needs} | {e.notebook} |")
    lines += ["", "Statuses: `correct`, `wrong` (with a hint), `unfinished` (some parts still raise), "
              "`not started`, `blocked` (an exercise it needs still raises).", ""]
    return "\n".join(lines)


def make(out_dir, only=None, *, force: bool = False, notebooks: bool = True) -> MakeResult:
    """Write a student copy of the package to ``out_dir``.

    Args:
        out_dir: the folder to create (or, with ``force``, to replace the copy in).
        only: exercise ids to hand out (default: all of them).
        force: replace an existing student copy in a non-empty ``out_dir``.
        notebooks: also copy the notebooks.
    Returns:
        MakeResult.
    Raises:
        ExerciseError: unknown exercise ids, a non-empty ``out_dir`` without
            ``force``, an ``out_dir`` that holds the reference itself, or a
            package without solution regions (a student copy).
    """
    from .probes import probes_for
    from .store import save_reference

    try:
        exercises = select(only)
    except ValueError as e:
        raise ExerciseError(str(e)) from None
    wanted = {e.id for e in exercises}
    pkg = package_dir()
    root = pkg.parent
    regions = find_regions(pkg)
    try:
        from .grading import reference_data  # left out of student copies
    except ImportError:
        regions = []
    if not regions:
        raise ExerciseError(f"{pkg} has no solution regions: it is a student copy; "
                            "make the exercises from the reference package")
    missing = sorted(wanted - {r.exercise for r in regions})
    if missing:
        raise ExerciseError(f"no region is marked for exercise(s) {', '.join(missing)} in {pkg}")
    out = Path(out_dir).expanduser().resolve()
    _check_out_dir(out, force, pkg)

    # Everything is computed before anything is written: a failure leaves OUT_DIR as it was.
    files: dict[Path, bytes] = {}
    replaced: list[Region] = []
    for p in sorted(pkg.rglob("*")):
        rel = p.relative_to(pkg)
        if not p.is_file() or "__pycache__" in rel.parts or p.suffix == ".pyc" or rel.as_posix() in _LEFT_OUT:
            continue
        if p.suffix == ".py":
            text, done = student_source(p.read_text(encoding="utf-8"), f"minitransformer/{rel.as_posix()}", wanted)
            replaced += done
            files[out / "minitransformer" / rel] = text.encode("utf-8")
        else:
            files[out / "minitransformer" / rel] = p.read_bytes()
    for name in _ROOT_FILES:
        if (root / name).is_file():
            files[out / name] = (root / name).read_bytes()
    if out / "pyproject.toml" not in files:  # installed from a wheel: no project files next to the package
        files[out / "pyproject.toml"] = _MINIMAL_PYPROJECT.format(version=__version__).encode("utf-8")
    if out / "README.md" not in files:
        files[out / "README.md"] = b"# minitransformer (student copy)\n\nSee EXERCISES.md.\n"
    if notebooks and (root / "notebooks").is_dir():
        for p in sorted((root / "notebooks").rglob("*")):
            rel = p.relative_to(root / "notebooks")
            if p.is_file() and ".ipynb_checkpoints" not in rel.parts:
                files[out / "notebooks" / rel] = p.read_bytes()
    files[out / "EXERCISES.md"] = exercises_markdown(exercises).encode("utf-8")
    manifest = {
        "made_by": f"minitransformer {__version__} exercises make",
        "exercises": [e.id for e in exercises],
        "regions": [{"exercise": r.exercise, "function": r.function, "where": r.where} for r in replaced],
    }
    files[out / ".exercises" / "manifest.json"] = (json.dumps(manifest, indent=2) + "\n").encode("utf-8")
    data = reference_data(probes_for(wanted))

    for sub in ("minitransformer", "notebooks", ".exercises"):
        if (out / sub).is_dir():
            shutil.rmtree(out / sub)
    for path, content in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    save_reference(out / ".exercises" / "reference.npz", data, [e.id for e in exercises])
    return MakeResult(out, exercises, replaced, len(files) + 1)
