"""Package-wide house rules, checked on the source code itself.

1. Only ``minitransformer/backend.py`` imports numpy, cupy or cupyx (DESIGN invariant 1).
2. No ``try: import cupy as np``-style aliasing anywhere in the repository.
3. No pickle: nothing in the package can run code while loading a file (DESIGN invariant 9).
4. Layer files stay short enough to read in one sitting.

Each walker is a plain function over source text, and each has a test that
feeds it a small synthetic bad source and asserts it is flagged: a rule that
cannot fail proves nothing.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "minitransformer"
NN = PACKAGE / "nn"
ALLOWED_ARRAY_IMPORTER = PACKAGE / "backend.py"

ARRAY_LIBS = ("numpy", "cupy", "cupyx")
PICKLE_LIBS = ("pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal")
# DESIGN says "about 200 lines" per layer file; this is the hard ceiling.
MAX_LAYER_LINES = 250
NOT_LAYER_FILES = {"__init__.py"}
# Names that must never be bound to a different array library.
_ALIAS_SWAPS = {"cupy": {"np", "numpy"}, "cupyx": {"np", "numpy"}, "numpy": {"cp", "cupy"}}
# Directories that are not project source.
_SKIP_DIRS = {".venv", "venv", ".git", "build", "dist", "node_modules", ".ipynb_checkpoints"}


def _root_module(dotted: str | None) -> str:
    return (dotted or "").split(".")[0]


def _literal_str(node) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _dynamic_import_name(call: ast.Call) -> str | None:
    """The literal module name of ``__import__("x")`` or ``importlib.import_module("x")``, else None."""
    f = call.func
    is_dunder = isinstance(f, ast.Name) and f.id == "__import__"
    is_importlib = (
        (isinstance(f, ast.Attribute) and f.attr == "import_module")
        or (isinstance(f, ast.Name) and f.id == "import_module")
    )
    if (is_dunder or is_importlib) and call.args:
        return _literal_str(call.args[0])
    return None


def imported_modules(source: str, filename: str = "<src>") -> list[tuple[int, str]]:
    """Every absolute module a source imports, as ``(line, dotted name)``.

    Covers ``import x``, ``import x.y``, ``from x import y``, ``from x.y import z``
    and ``__import__("x")`` / ``importlib.import_module("x")`` with a literal name.
    Relative imports (``from . import backend``) are the package's own and are skipped.
    """
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call):
            name = _dynamic_import_name(node)
            if name is not None:
                found.append((node.lineno, name))
    return found


def array_imports(source: str, filename: str = "<src>") -> list[str]:
    """``"file:line: imports x"`` for every import of numpy, cupy or cupyx in ``source``."""
    return [
        f"{filename}:{line}: imports {name}"
        for line, name in imported_modules(source, filename)
        if _root_module(name) in ARRAY_LIBS
    ]


def alias_swaps(source: str, filename: str = "<src>") -> list[str]:
    """``"file:line: ..."`` wherever one array library is bound to another's name.

    Catches ``import cupy as np`` (also inside ``try``), ``import numpy as cp``,
    ``from cupy import random as np``, and ``np = cupy`` / ``np = cupyx.scipy``
    assignments.
    """
    bad = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                bound = alias.asname or _root_module(alias.name)
                if bound in _ALIAS_SWAPS.get(_root_module(alias.name), ()):
                    bad.append(f"{filename}:{node.lineno}: import {alias.name} as {bound}")
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            for alias in node.names:  # from cupy import random as np ... also a swap
                if alias.asname in _ALIAS_SWAPS.get(_root_module(node.module), ()):
                    bad.append(f"{filename}:{node.lineno}: from {node.module} import {alias.name} as {alias.asname}")
        elif isinstance(node, ast.Assign):
            value = node.value
            while isinstance(value, ast.Attribute):
                value = value.value
            if not isinstance(value, ast.Name):
                continue
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id in _ALIAS_SWAPS.get(value.id, ()):
                    bad.append(f"{filename}:{node.lineno}: {target.id} = {value.id}...")
    return bad


_PICKLE_TEXT = [
    re.compile(r"allow_pickle\s*=\s*True"),
    re.compile(r"\bimport\s+(c?pickle|_pickle|dill|cloudpickle|joblib|shelve|marshal)\b"),
    re.compile(r"\bfrom\s+(c?pickle|_pickle|dill|cloudpickle|joblib|shelve|marshal)\s+import\b"),
    re.compile(r"weights_only\s*=\s*False"),
]


def pickle_uses(source: str, filename: str = "<src>") -> list[str]:
    """``"file:line: ..."`` for every way ``source`` could unpickle (run code while loading).

    AST: imports of pickle-like modules (also via ``__import__``), any call
    passing ``allow_pickle`` other than the literal ``False``, and
    ``torch.load(..., weights_only=False)``. Grep: the same spelled as text,
    which also catches code inside strings passed to ``exec``/``eval``.
    """
    bad = [
        f"{filename}:{line}: imports {name}"
        for line, name in imported_modules(source, filename)
        if _root_module(name) in PICKLE_LIBS
    ]
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Call):
            continue
        for kw in node.keywords:
            literal_false = isinstance(kw.value, ast.Constant) and kw.value.value is False
            if kw.arg == "allow_pickle" and not literal_false:
                bad.append(f"{filename}:{node.lineno}: allow_pickle is not the literal False")
            literal_true = isinstance(kw.value, ast.Constant) and kw.value.value is True
            if kw.arg == "weights_only" and not literal_true:
                bad.append(f"{filename}:{node.lineno}: weights_only is not the literal True")
    for pattern in _PICKLE_TEXT:
        for m in pattern.finditer(source):
            line = source.count("\n", 0, m.start()) + 1
            bad.append(f"{filename}:{line}: text matches {pattern.pattern!r}")
    return sorted(set(bad))


def _py_files(top: Path) -> list[Path]:
    return sorted(p for p in top.rglob("*.py") if not _SKIP_DIRS & set(p.relative_to(top).parts))


def _rel(p: Path) -> str:
    return str(p.relative_to(ROOT))


# -- the rules, on the real code ----------------------------------------------


def test_package_has_files_to_check():
    files = _py_files(PACKAGE)
    assert ALLOWED_ARRAY_IMPORTER in files
    assert len(files) >= 5, files  # the walk really sees the package


def test_only_backend_imports_array_libraries():
    bad = []
    for path in _py_files(PACKAGE):
        if path != ALLOWED_ARRAY_IMPORTER:
            bad += array_imports(path.read_text(), _rel(path))
    assert not bad, "only minitransformer/backend.py may import numpy/cupy/cupyx:\n" + "\n".join(bad)


def test_backend_really_is_the_importer():
    # the whitelist is not vacuous: backend.py does import numpy, so the walker sees it
    found = array_imports(ALLOWED_ARRAY_IMPORTER.read_text(), _rel(ALLOWED_ARRAY_IMPORTER))
    assert any("imports numpy" in f for f in found), found
    assert any("imports cupy" in f for f in found), found


def test_no_array_library_alias_swaps_anywhere():
    bad = []
    for path in _py_files(ROOT):
        bad += alias_swaps(path.read_text(), _rel(path))
    assert not bad, "array libraries bound to each other's names:\n" + "\n".join(bad)


def test_package_never_unpickles():
    bad = []
    for path in _py_files(PACKAGE):
        bad += pickle_uses(path.read_text(), _rel(path))
    assert not bad, "pickle (code execution on load) in the package:\n" + "\n".join(bad)


def too_long_files(paths) -> list[str]:
    """``"name: n lines > MAX_LAYER_LINES"`` for each layer file over the limit."""
    too_long = []
    for path in sorted(paths):
        n = len(path.read_text().splitlines())
        if path.name not in NOT_LAYER_FILES and n > MAX_LAYER_LINES:
            too_long.append(f"{path.name}: {n} lines > {MAX_LAYER_LINES}")
    return too_long


def test_layer_files_are_short():
    too_long = too_long_files(NN.glob("*.py"))
    assert not too_long, "split these layer files in minitransformer/nn/:\n" + "\n".join(too_long)


# -- each walker flags a synthetic bad source -------------------------------------


@pytest.mark.parametrize(
    ("src", "line", "name"),
    [
        ("import numpy", 2, "numpy"),
        ("import numpy as np", 2, "numpy"),
        ("import numpy.linalg", 2, "numpy.linalg"),
        ("import cupy", 2, "cupy"),
        ("import os, cupy", 2, "cupy"),
        ("import cupyx.scipy.special", 2, "cupyx.scipy.special"),
        ("from numpy import float32", 2, "numpy"),
        ("from numpy.random import default_rng", 2, "numpy.random"),
        ("from cupyx.scipy import special", 2, "cupyx.scipy"),
        ("xp = __import__('cupy')", 2, "cupy"),
        ("import importlib\nxp = importlib.import_module('numpy.linalg')", 3, "numpy.linalg"),
        ("from importlib import import_module\nxp = import_module('cupy')", 3, "cupy"),
        ("def f():\n    import numpy as np\n    return np", 3, "numpy"),
        ("try:\n    import cupy as xp\nexcept ImportError:\n    xp = None", 3, "cupy"),
    ],
)
def test_array_import_walker_flags_bad_source(src, line, name):
    assert array_imports("import math\n" + src + "\n", "fake.py") == [f"fake.py:{line}: imports {name}"]


@pytest.mark.parametrize(
    "line",
    [
        "from . import backend",
        "from .. import backend",
        "from .backend import get_array_module",
        "import numbers",  # a prefix of numpy is not numpy
        "import numpyro",
        "import cupy_tools",
        "x = __import__(name)",  # not a literal: nothing to say
        "s = 'import numpy'",
    ],
)
def test_array_import_walker_allows_good_source(line):
    assert array_imports(line + "\n", "fake.py") == []


@pytest.mark.parametrize(
    "src",
    [
        "try:\n    import cupy as np\nexcept ImportError:\n    import numpy as np",
        "import cupy as numpy",
        "import cupyx.scipy as np",
        "import numpy as cp",
        "from cupy import random as np",
        "import cupy\nnp = cupy",
        "import cupyx\nnp = cupyx.scipy",
    ],
)
def test_alias_walker_flags_swaps(src):
    assert alias_swaps(src, "fake.py"), src


@pytest.mark.parametrize("src", ["import numpy as np", "import cupy as cp", "import cupy", "xp = cupy", "np = numpy"])
def test_alias_walker_allows_plain_names(src):
    assert alias_swaps(src, "fake.py") == []


@pytest.mark.parametrize(
    "src",
    [
        "import pickle",
        "import pickle as pkl",
        "from pickle import loads",
        "import _pickle",
        "import cloudpickle",
        "import dill",
        "import joblib",
        "m = __import__('pickle')",
        "arr = np.load(path, allow_pickle=True)",
        "arr = xp.load(path, allow_pickle=flag)",
        "state = torch.load(path, weights_only=False)",
        "exec('import pickle')",
    ],
)
def test_pickle_walker_flags_bad_source(src):
    bad = pickle_uses("x = 1\n" + src + "\n", "fake.py")
    assert bad, src
    assert any(b.startswith("fake.py:2:") for b in bad), bad


@pytest.mark.parametrize(
    "src",
    [
        "arr = np.load(path, allow_pickle=False)",
        "state = torch.load(path, weights_only=True)",
        '"""Checkpoints never use pickle: .npz with allow_pickle=False."""',
        "# no pickle here",
    ],
)
def test_pickle_walker_allows_safe_source(src):
    assert pickle_uses(src, "fake.py") == []


def test_layer_length_rule_can_fail(tmp_path):
    (tmp_path / "big.py").write_text("x = 1\n" * (MAX_LAYER_LINES + 1))
    (tmp_path / "ok.py").write_text("x = 1\n" * MAX_LAYER_LINES)
    (tmp_path / "__init__.py").write_text("x = 1\n" * (MAX_LAYER_LINES + 1))  # not a layer
    assert too_long_files(tmp_path.glob("*.py")) == [f"big.py: {MAX_LAYER_LINES + 1} lines > {MAX_LAYER_LINES}"]
