"""The command line and the gradient-check report registry."""

import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import minitransformer
import minitransformer.models
import minitransformer.nn
from minitransformer import report
from minitransformer.cli import main
from minitransformer.gradcheck import CheckResult
from minitransformer.nn.module import Module

ROOT = Path(__file__).resolve().parents[1]


# -- the registry covers the whole library ------------------------------------


def _submodules(package):
    return [importlib.import_module(f"{package.__name__}.{info.name}")
            for info in pkgutil.iter_modules(package.__path__) if not info.name.startswith("_")]


def _nn_modules():
    """Every submodule of minitransformer.nn and minitransformer.models, imported."""
    return _submodules(minitransformer.nn) + _submodules(minitransformer.models)


def _public_forward_functions():
    """``(module, name)`` of every public ``*_forward`` function defined in minitransformer/nn/*.py."""
    found = set()
    for mod in _nn_modules():
        for name, obj in vars(mod).items():
            if (name.endswith("_forward") and not name.startswith("_") and inspect.isfunction(obj)
                    and obj.__module__ == mod.__name__):
                found.add((mod.__name__, name))
    return found


def _layer_classes():
    """``(module, name)`` of every Module subclass in minitransformer/nn and /models that implements backward.

    Containers that do not (Module itself, ModuleList) have nothing to check.
    """
    found = set()
    for mod in _nn_modules():
        for name, obj in vars(mod).items():
            if (inspect.isclass(obj) and issubclass(obj, Module) and obj.__module__ == mod.__name__
                    and obj.backward is not Module.backward):
                found.add((mod.__name__, name))
    return found


def _covered():
    return {(c.module, name) for c in report.CASES for name in c.covers}


def test_discovery_finds_the_known_layers():
    # guards the discovery itself: if it found nothing, the coverage tests below would pass vacuously
    assert ("minitransformer.nn.linear", "linear_forward") in _public_forward_functions()
    assert ("minitransformer.nn.softmax", "log_softmax_forward") in _public_forward_functions()
    assert ("minitransformer.nn.linear", "Linear") in _layer_classes()
    assert ("minitransformer.models.transformer", "Transformer") in _layer_classes()
    assert not any(name in ("Module", "ModuleList") for _, name in _layer_classes())


def test_every_forward_function_has_a_gradcheck_case():
    missing = sorted(f"{m}.{n}" for m, n in _public_forward_functions() - _covered())
    assert not missing, f"add a case to minitransformer/report.py for: {', '.join(missing)}"


def test_every_module_class_has_a_gradcheck_case():
    missing = sorted(f"{m}.{n}" for m, n in _layer_classes() - _covered())
    assert not missing, f"add a case to minitransformer/report.py for: {', '.join(missing)}"


def test_every_case_is_runnable_now():
    # a case whose layer moved or was renamed would be skipped by the report: here it fails
    broken = {c.name: report.missing_requirements(c) for c in report.CASES}
    broken = {k: v for k, v in broken.items() if v}
    assert not broken, f"cases that cannot import what they check: {broken}"


def test_case_names_unique_and_grouped_ops_modules_models():
    names = report.case_names()
    assert len(names) == len(set(names))
    groups = [c.group for c in report.find_cases()]
    assert set(groups) == {"ops", "modules", "models"}
    assert groups == sorted(groups, key=["ops", "modules", "models"].index)


# -- run_report ----------------------------------------------------------------


def test_run_report_selected(capsys):
    results = report.run_report(only=["softmax", "Linear"], progress=True)
    assert [r.name for r in results] == ["softmax", "Linear"]
    assert results.passed and not results.skipped and not results.crashed
    err = capsys.readouterr().err
    assert "[1/2]" in err and "[2/2]" in err and "softmax" in err and "PASS" in err


def test_run_report_unknown_name_lists_valid():
    with pytest.raises(KeyError, match="nosuch.*valid names: linear"):
        report.run_report(only=["nosuch"], progress=False)


def _extra_case(monkeypatch, name, build, requires=()):
    case = report.Case(name, "modules", "minitransformer.nn.linear", (), requires, build, "test case")
    monkeypatch.setattr(report, "CASES", [*report.CASES, case])


def test_missing_layer_is_skipped_with_a_note(monkeypatch, capsys):
    _extra_case(monkeypatch, "Future", lambda: 1 / 0, requires=("minitransformer.nn.not_written:Future",))
    results = report.run_report(only=["linear", "Future"], progress=False)
    assert [r.name for r in results] == ["linear"]
    assert results.skipped == [("Future", "not importable yet: minitransformer.nn.not_written:Future")]
    assert main(["gradcheck", "--only", "linear,Future"]) == 0
    assert "skipped Future: not importable yet" in capsys.readouterr().out


def test_failing_check_exits_1(monkeypatch, capsys):
    _extra_case(monkeypatch, "Broken", lambda: CheckResult("Broken", "2x3", {"arg0": 0.5}))
    assert main(["gradcheck", "--only", "Broken", "-q"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "5.0e-01" in out and "0/1 checks passed" in out


def test_crashing_case_is_a_failure_with_its_message(monkeypatch, capsys):
    def boom():
        raise ValueError("shapes (2, 3) and (4,) do not match")

    _extra_case(monkeypatch, "Crashes", boom)
    assert main(["gradcheck", "--only", "linear,Crashes", "-q"]) == 1
    out = capsys.readouterr().out
    assert "FAILED Crashes: raised ValueError: shapes (2, 3) and (4,) do not match" in out
    assert "1/2 checks passed" in out


# -- the command line ------------------------------------------------------------


def test_gradcheck_only_in_process(capsys):
    assert main(["gradcheck", "--only", "linear", "--only", "log_softmax"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("check"))
    assert header.split() == ["check", "input", "shapes", "worst", "tensor", "rel.", "error", "tol"]
    rows = {line.split()[0]: line.split() for line in lines if line.split()[:1] in (["linear"], ["log_softmax"])}
    assert rows["linear"][1:4] == ["2x3x4", "4x5", "5"]
    assert rows["linear"][-1] == "PASS" and rows["log_softmax"][-1] == "PASS"
    assert rows["linear"][4].startswith("arg")  # the worst tensor is named ...
    assert 0.0 < float(rows["linear"][-3]) < 1e-6  # ... and its measured error shown (finite differences: not 0)
    assert "2/2 checks passed" in out
    assert "normwise" in out  # the legend


def test_gradcheck_subprocess():
    proc = subprocess.run([sys.executable, "-m", "minitransformer", "gradcheck", "--only", "linear"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "1/1 checks passed" in proc.stdout
    row = next(line for line in proc.stdout.splitlines() if line.startswith("linear "))
    assert row.split()[-1] == "PASS"
    assert "[1/1]" in proc.stderr  # progress goes to stderr, the table to stdout


def test_list(capsys):
    assert main(["gradcheck", "--list"]) == 0
    out = capsys.readouterr().out
    assert out.index("ops:") < out.index("modules:") < out.index("models:")
    for name in report.case_names():
        assert f"  {name} " in out
    assert "not importable" not in out


def test_bad_only_name_exits_nonzero_listing_valid_names(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["gradcheck", "--only", "linear,lienar"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unknown check name(s): lienar" in err
    assert "did you mean linear" in err
    assert "valid names: " + ", ".join(report.case_names()) in err


def test_bad_only_name_subprocess():
    proc = subprocess.run([sys.executable, "-m", "minitransformer", "gradcheck", "--only", "Softmaks"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "valid names: linear" in proc.stderr


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"minitransformer {minitransformer.__version__}"


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        main(["gradcheck", "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and "--only softmax" in out and "exit status" in out


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "gradcheck" in capsys.readouterr().out
