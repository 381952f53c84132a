"""Solution regions: find the marked lines in the library source and write the student's version of a file.

A region is a run of lines inside one function, between two comment lines::

    # BEGIN SOLUTION linear: dx = dy @ W^T; dW = x^T dy and db = dy, each summed over every leading axis
    # HINT: reshape x to (N, d_in) and dy to (N, d_out) first (N = B * T): then dW is one matmul
    x, W = cache
    ...
    return dx, dW, db
    # END SOLUTION

``linear`` is the exercise id (``registry.py``); the text after the colon,
plus any ``# HINT:`` lines right below, is the hint. The markers are
comments, so the library runs exactly as without them.

In a student copy a selected region becomes::

    # Exercise linear: replace this raise with your code (the docstring's Math: block has the formulas).
    raise NotImplementedError(
        "Exercise linear: dx = dy @ W^T; ..."
        " reshape x to (N, d_in) ..."
    )

at the region's indentation; the markers of the other exercises are removed
and their solution kept. When the function goes on after the region and uses
names the region defined (``scale``, ``S``), the message lists them, so the
student knows what the code below expects. Every rewritten file is parsed
with ``ast``: a copy that does not import is a bug of ours, never the student's.
"""

from __future__ import annotations

import ast
import io
import json
import re
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Region", "RegionError", "find_regions", "scan_source", "student_source"]

_BEGIN = re.compile(r"^# BEGIN SOLUTION (?P<id>\S+?)(?::\s*(?P<hint>.*))?$")
_HINT = re.compile(r"^# HINT:\s*(?P<hint>.*)$")
_END = re.compile(r"^# END SOLUTION(?:\s+(?P<id>\S+))?$")
_ID = re.compile(r"^[a-z][a-z0-9_]*$")


class RegionError(ValueError):
    """A malformed marker (unclosed, nested, outside a function, ...), named by file and line."""


@dataclass(frozen=True)
class Region:
    """One marked region of one file.

    Line numbers are 1-based, as editors and tracebacks show them.

    Attributes:
        path: the file, relative to the package's parent (``minitransformer/nn/linear.py``).
        exercise: the exercise id.
        hint: the hint lines (the BEGIN line's text first, then each ``# HINT:`` line).
        begin, end: the lines of ``# BEGIN SOLUTION`` and ``# END SOLUTION``.
        indent: the markers' indentation, which the raise gets.
        function: the qualified name of the function holding the region (``FeedForward.backward``).
        used_after: names the region defines that the rest of the function reads.
        body: the first line after the BEGIN and HINT lines.
    """

    path: str
    exercise: str
    hint: tuple[str, ...]
    begin: int
    end: int
    indent: str
    function: str
    used_after: tuple[str, ...] = field(default=())
    body: int = 0

    @property
    def where(self) -> str:
        return f"{self.path}:{self.begin}"

    def message(self) -> str:
        """The text of the student's NotImplementedError."""
        text = f"Exercise {self.exercise}: " + "; ".join(self.hint)
        if self.used_after:
            text += f" (the lines below need: {', '.join(self.used_after)})"
        return text


def _comment_lines(text: str) -> dict[int, str]:
    """Line number -> comment text, for the lines that hold nothing but a comment (never a string's content)."""
    lines = text.splitlines()
    found = {}
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.COMMENT:
            row = tok.start[0]
            if lines[row - 1].strip() == tok.string.strip():
                found[row] = tok.string.strip()
    return found


def _functions(tree: ast.AST) -> list[tuple[str, ast.AST]]:
    """Every function in the module with its qualified name (``Class.method``)."""
    out = []

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out.append((prefix + child.name, child))
                visit(child, prefix + child.name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
            else:
                visit(child, prefix)

    visit(tree, "")
    return out


def _innermost(functions, line: int):
    """The innermost function whose lines contain ``line`` (None at module level)."""
    best = None
    for name, node in functions:
        if node.lineno <= line <= node.end_lineno and (best is None or node.lineno >= best[1].lineno):
            best = (name, node)
    return best


def _used_after(fn: ast.AST, first: int, last: int, end: int) -> tuple[str, ...]:
    """Names stored on lines first..last of ``fn`` that a line after ``end`` loads, in order of definition."""
    stored, loaded = [], set()
    for node in ast.walk(fn):
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Store) and first <= node.lineno <= last and node.id not in stored:
                stored.append(node.id)
            elif isinstance(node.ctx, ast.Load) and node.lineno > end:
                loaded.add(node.id)
    return tuple(n for n in stored if n in loaded)


def scan_source(text: str, path: str) -> list[Region]:
    """The regions of one file's source text, validated.

    Raises:
        RegionError: nested or unclosed regions, an END without BEGIN or with
            another id, a bad id, an empty region, a line indented less than
            its markers, or a region outside a function or across two.
    """
    comments = _comment_lines(text)
    if not any(_BEGIN.match(c) or _END.match(c) for c in comments.values()):
        return []
    lines = text.splitlines()
    tree = ast.parse(text, path)
    functions = _functions(tree)
    regions, open_ = [], None
    for row in sorted(comments):
        c = comments[row]
        line = lines[row - 1]
        indent = line[: len(line) - len(line.lstrip())]
        if (m := _BEGIN.match(c)) is not None:
            if open_ is not None:
                raise RegionError(f"{path}:{row}: BEGIN SOLUTION inside the region opened at line {open_['begin']}")
            ex = m["id"]
            if not _ID.match(ex):
                raise RegionError(f"{path}:{row}: exercise id {ex!r} must be lower case letters, digits and _")
            hint = [(m["hint"] or "").strip()]
            nxt = row + 1
            while nxt in comments and (h := _HINT.match(comments[nxt])) is not None:
                hint.append(h["hint"].strip())
                nxt += 1
            hint = tuple(h for h in hint if h)
            if not hint:
                raise RegionError(f"{path}:{row}: BEGIN SOLUTION {ex} has no hint (write it after a colon)")
            open_ = {"begin": row, "id": ex, "hint": hint, "indent": indent, "body": nxt}
        elif (m := _END.match(c)) is not None:
            if open_ is None:
                raise RegionError(f"{path}:{row}: END SOLUTION without a BEGIN SOLUTION")
            if m["id"] and m["id"] != open_["id"]:
                raise RegionError(f"{path}:{row}: END SOLUTION {m['id']} closes the region "
                                  f"{open_['id']} opened at line {open_['begin']}")
            if indent != open_["indent"]:
                raise RegionError(f"{path}:{row}: END SOLUTION is indented differently from its BEGIN "
                                  f"(line {open_['begin']})")
            code = [r for r in range(open_["body"], row) if lines[r - 1].strip() and r not in comments]
            if not code:
                raise RegionError(f"{path}:{open_['begin']}: region {open_['id']} holds no code")
            for r in range(open_["begin"], row):
                if lines[r - 1].strip() and not lines[r - 1].startswith(open_["indent"]):
                    raise RegionError(f"{path}:{r}: line indented less than the markers of region {open_['id']}")
            first = _innermost(functions, code[0])
            last = _innermost(functions, code[-1])
            if first is None:
                raise RegionError(f"{path}:{open_['begin']}: region {open_['id']} is not inside a function "
                                  "(module-level code would fail at import)")
            if last is None or first[1] is not last[1]:
                raise RegionError(f"{path}:{open_['begin']}: region {open_['id']} spans more than one function")
            used = _used_after(first[1], code[0], code[-1], row)
            regions.append(Region(path, open_["id"], open_["hint"], open_["begin"], row, open_["indent"],
                                  first[0], used, open_["body"]))
            open_ = None
        elif _HINT.match(c) and (row - 1) not in comments:
            raise RegionError(f"{path}:{row}: # HINT: must follow a BEGIN SOLUTION line")
    if open_ is not None:
        raise RegionError(f"{path}:{open_['begin']}: BEGIN SOLUTION {open_['id']} is never closed")
    return regions


def find_regions(package_dir) -> list[Region]:
    """Every region in the ``.py`` files under ``package_dir`` (a ``minitransformer`` folder), in file order.

    Paths in the regions are relative to the package's parent folder.
    """
    package_dir = Path(package_dir)
    regions = []
    for p in sorted(package_dir.rglob("*.py")):
        if "__pycache__" in p.parts:
            continue
        rel = p.relative_to(package_dir.parent).as_posix()
        regions.extend(scan_source(p.read_text(encoding="utf-8"), rel))
    return regions


def _raise_lines(region: Region) -> list[str]:
    pad = region.indent
    out = [f"{pad}# Exercise {region.exercise}: replace this raise with your code "
           "(the docstring's Math: block has the formulas)."]
    if region.used_after:
        out.append(f"{pad}# The lines below need: {', '.join(region.used_after)}.")
    pieces = [f"Exercise {region.exercise}: {region.hint[0]}"] + [f"; {h}" for h in region.hint[1:]]
    if region.used_after:
        pieces.append(f" (the lines below need: {', '.join(region.used_after)})")
    out.append(f"{pad}raise NotImplementedError(")
    out += [f"{pad}    {json.dumps(p)}" for p in pieces]  # JSON string escapes are valid Python
    out.append(f"{pad})")
    return out


def student_source(text: str, path: str, selected) -> tuple[str, list[Region]]:
    """The student's version of one file: selected regions -> raise, other markers removed.

    Args:
        text: the reference source.
        path: its name in messages (relative path).
        selected: exercise ids to turn into exercises, or a predicate ``selected(region) -> bool``
            (to hand out single regions).
    Returns:
        (new source text, the regions replaced).
    Raises:
        RegionError: bad markers, or (our bug) a result that does not parse.
    """
    regions = scan_source(text, path)
    if not regions:
        return text, []
    if callable(selected):
        pick = selected
    else:
        ids = set(selected)

        def pick(region):
            return region.exercise in ids

    lines = text.splitlines()
    out, replaced, row = [], [], 1
    for region in regions:
        out += lines[row - 1: region.begin - 1]
        if pick(region):
            out += _raise_lines(region)
            replaced.append(region)
        else:
            out += lines[region.body - 1: region.end - 1]
        row = region.end + 1
    out += lines[row - 1:]
    new = "\n".join(out) + ("\n" if text.endswith("\n") else "")
    try:
        ast.parse(new, path)
    except SyntaxError as e:  # pragma: no cover - a bug in the markers or here
        raise RegionError(f"{path}: the student version does not parse ({e.msg}, line {e.lineno})") from e
    return new, replaced
