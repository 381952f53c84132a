"""The student side of ``exercises check``: runs in a subprocess on the student's copy.

``check`` starts a Python with ``PYTHONPATH=OUT_DIR`` and the working
directory ``OUT_DIR``, so ``import minitransformer`` finds the student's
package, never the installed reference; ``main`` verifies that (it compares
``minitransformer.__file__`` with the expected folder) before running
anything. This file and ``probes.py`` are loaded from the GRADER's package,
by path (so a stale or edited copy of them in the student's folder changes
nothing); the code they call is the student's. ``main`` runs the probes and
the gradient checks of the requested exercises, catching every exception (a
``NotImplementedError("Exercise <id>: ...")`` means "not written yet"), and
writes ``student.npz`` (the arrays) and ``result.json`` (what ran, what
raised, where) into the request's work folder.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import traceback
from pathlib import Path

__all__ = ["load_by_path", "main"]

_EXERCISE = re.compile(r"^Exercise (?P<id>[a-z][a-z0-9_]*):")


def _describe(e: BaseException, package_dir: Path) -> dict:
    """Type, first line of the message, the exercise id of a NotImplementedError, and where it was raised."""
    text = str(e).strip().splitlines()[0][:400] if str(e).strip() else ""
    m = _EXERCISE.match(text) if isinstance(e, NotImplementedError) else None
    where, tb, frames = "", e.__traceback__, []
    while tb is not None:
        frames.append(tb)
        tb = tb.tb_next
    for tb in reversed(frames):
        path = Path(tb.tb_frame.f_code.co_filename).resolve()
        if package_dir in path.parents and "exercises" not in path.relative_to(package_dir).parts:
            code = tb.tb_frame.f_code
            name = getattr(code, "co_qualname", code.co_name)  # Class.method from Python 3.11
            where = f"{name} ({path.relative_to(package_dir.parent).as_posix()}:{tb.tb_lineno})"
            break
    return {"type": type(e).__name__, "message": text, "exercise": m["id"] if m else None, "where": where}


def load_by_path(name: str, path):
    """Import the file ``path`` as module ``name`` (registered in sys.modules, as dataclasses need)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> int:
    """Run the request in ``argv[0]`` (a JSON file); the exit status is 0 unless the package could not be used."""
    argv = sys.argv[1:] if argv is None else argv
    request = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    work = Path(request["work"])
    package_dir = Path(request["package_dir"]).resolve()
    result = {"probes": {}, "gradchecks": {}}

    def finish(status: int) -> int:
        (work / "result.json").write_text(json.dumps(result), encoding="utf-8")
        return status

    try:
        import minitransformer
        from minitransformer import backend
        from minitransformer.report import find_cases
    except Exception as e:  # the student broke the package (a syntax error, a bad import)
        tb = traceback.extract_tb(e.__traceback__)
        where = f" ({Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else ""
        if isinstance(e, SyntaxError):
            where = f" ({Path(e.filename or '?').name}:{e.lineno})"
        result["fatal"] = f"the student copy does not import: {type(e).__name__}: {e}{where}"
        return finish(3)
    file = getattr(minitransformer, "__file__", None)  # None for a namespace package (no __init__.py)
    imported = Path(file).resolve() if file else Path(str(list(minitransformer.__path__)[0])) / "(no __init__.py)"
    result["package_file"] = str(imported)
    if imported.parent != package_dir or not file:
        result["fatal"] = f"imported minitransformer from {imported}, not from the student copy {package_dir}"
        return finish(3)

    probes = load_by_path("_minitransformer_exercise_probes", request["probes_file"])
    arrays = {}
    for probe in probes.probes_for(request["exercises"]):
        out, entry = {}, {}
        try:
            probe.run(probe.inputs(), out)
        except Exception as e:  # what ran before it is still graded
            entry["error"] = _describe(e, package_dir)
        names = {}
        for name, a in out.items():
            host = backend.to_numpy(a) if a is not None else None
            if host is None or host.dtype.kind not in "fiub":
                entry.setdefault("error", {"type": "TypeError", "exercise": None, "where": "",
                                           "message": f"{name} is a {type(a).__name__}, not an array of numbers"})
                continue
            key = f"a{len(arrays)}"
            arrays[key] = host
            names[name] = key
        entry["outputs"] = names
        result["probes"][probe.key] = entry
    for name in request["gradchecks"]:
        try:
            (case,) = find_cases([name])
            r = case.build()
            failing = {k: v for k, v in r.errors.items() if not r.tensor_passed(k)}
            result["gradchecks"][name] = {"passed": bool(r.passed), "worst": float(r.worst),
                                         "worst_name": r.worst_name, "failing": failing}
        except Exception as e:
            result["gradchecks"][name] = {"error": _describe(e, package_dir)}
    arrays["marker"] = backend.encode_text("student")  # never an empty zip (load_npz refuses those)
    backend.save_npz(str(work / "student.npz"), arrays)
    return finish(0)
