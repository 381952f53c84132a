"""The docs site stays whole: the nav names only real files and forgets no notebook, page or module.

.ci/run builds the site with ``mkdocs build --strict`` (broken links, bad docstrings); these tests
catch what a build does not: a notebook, a page or a module that was added but never listed.
"""

import importlib.util
import re
from pathlib import Path

import pytest

from tests.conftest import require

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
# Modules documented elsewhere: the command line by `minitransformer --help`.
NOT_IN_API = {"minitransformer.__main__", "minitransformer.cli"}  # and every minitransformer.cli.* module


def _config():
    yaml = require("yaml")
    return yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))


def _nav_paths(node):
    """Every file path in the nav, in order (entries are 'path' or {'Title': path or [children]})."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [p for item in node for p in _nav_paths(item)]
    if isinstance(node, dict):
        return [p for value in node.values() for p in _nav_paths(value)]
    raise TypeError(f"unexpected nav entry {node!r}")


def _source(nav_path):
    """The repository file a nav entry stands for (see docs/hooks/repo_files.py)."""
    if nav_path.startswith("notebooks/"):
        return ROOT / nav_path
    if nav_path == "readme.md":
        return ROOT / "README.md"
    return DOCS / nav_path


def test_nav_names_only_existing_files_once():
    paths = _nav_paths(_config()["nav"])
    assert len(paths) == len(set(paths)), f"a page is listed twice: {paths}"
    missing = [p for p in paths if not _source(p).is_file()]
    assert not missing, f"mkdocs.yml nav names files that do not exist: {missing}"


def test_every_notebook_is_in_the_nav_in_course_order():
    assert NOTEBOOKS, "no notebooks found"
    listed = [p.removeprefix("notebooks/") for p in _nav_paths(_config()["nav"]) if p.startswith("notebooks/")]
    forgotten = sorted(set(NOTEBOOKS) - set(listed))
    assert not forgotten, f"add these notebooks to the Notebooks section of mkdocs.yml's nav: {forgotten}"
    assert listed == NOTEBOOKS, "list the notebooks in mkdocs.yml in their numbered order"


def test_every_docs_page_is_in_the_nav():
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md") if "hooks" not in p.parts}
    forgotten = sorted(pages - set(_nav_paths(_config()["nav"])))
    assert not forgotten, f"add these pages to mkdocs.yml's nav: {forgotten}"


def test_course_map_links_every_notebook():
    course_map = (DOCS / "course_map.md").read_text(encoding="utf-8")
    linked = set(re.findall(r"\]\(\.\./notebooks/([^)#]+\.ipynb)", course_map))
    assert linked <= set(NOTEBOOKS), f"course_map.md links to missing notebooks: {sorted(linked - set(NOTEBOOKS))}"
    forgotten = sorted(set(NOTEBOOKS) - linked)
    assert not forgotten, f"give these notebooks a row in docs/course_map.md: {forgotten}"


def _api_directives():
    """Module name -> API page, from the '::: module' lines of docs/api/*.md."""
    found = {}
    for page in sorted((DOCS / "api").glob("*.md")):
        for module in re.findall(r"^:::\s+(\S+)\s*$", page.read_text(encoding="utf-8"), flags=re.M):
            assert module not in found, f"{module} is documented twice ({found[module]}, {page.name})"
            found[module] = page.name
    return found


def test_api_reference_covers_every_module_and_only_real_ones():
    modules = {
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for p in (ROOT / "minitransformer").rglob("*.py")
        if p.name != "__init__.py"
    }
    documented = _api_directives()
    unknown = sorted(set(documented) - modules)
    assert not unknown, f"docs/api/ documents modules that do not exist: {unknown}"
    forgotten = sorted(m for m in modules - set(documented) - NOT_IN_API if not m.startswith("minitransformer.cli."))
    assert not forgotten, f"add a '::: module' section to a page of docs/api/ for: {forgotten}"


def test_every_api_page_is_in_the_nav():
    listed = set(_nav_paths(_config()["nav"]))
    pages = {f"api/{name}" for name in _api_directives().values()}
    assert pages <= listed, sorted(pages - listed)


def _griffe_extension():
    require("griffe")
    spec = importlib.util.spec_from_file_location("griffe_docstrings", DOCS / "hooks" / "griffe_docstrings.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docstring_extension_opens_returns_fences_math_and_keeps_the_rest():
    normalize = _griffe_extension().normalize
    text = "\n".join([
        "Summary.",
        "",
        "Args:",
        "    x: (B, T) input.",
        "Returns:",
        "    y: (B, T) output, and",
        "     a visually aligned continuation.",
        "Raises:",
        "    ValueError when x is empty.",
        "",
        "Math (t = step):",
        "    y = x * 2",
        "    z = y ** 2",
        "Closing text.",
    ])
    assert normalize(text).split("\n") == [
        "Summary.",
        "",
        "Args:",
        "    x: (B, T) input.",
        "",
        "Returns:",
        "    y: (B, T) output, and",
        "        a visually aligned continuation.",
        "",
        "Note: Raises",
        "    ValueError when x is empty.",
        "",
        "Math: Math (t = step)",
        "    ```text",
        "    y = x * 2",
        "    z = y ** 2",
        "    ```",
        "Closing text.",
    ]


@pytest.mark.parametrize("text", [
    "Just a summary.",
    "Summary.\n\nArgs:\n    x: input.\n\nReturns:\n    y: output.\n\nRaises:\n    ValueError: when empty.",
    "Summary.\n\n```text\nArgs:\n    not a section inside a fence\n```",
])
def test_docstring_extension_leaves_standard_google_style_alone(text):
    assert _griffe_extension().normalize(text) == text
