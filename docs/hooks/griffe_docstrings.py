"""Griffe extension (API reference only): read the house docstring style the way it is written.

The docstrings are Google style (summary line, ``Args:``/``Returns:`` with shapes, a plain-text
``Math:`` block, ``Ref:``) with habits that griffe's parser reads differently from a person:

1. ``Returns:`` or ``Raises:`` follows the ``Args:`` items with no blank line between. griffe only
   opens a section after a blank line, so it would print "Returns: ..." as running text.
   -> a blank line is put above each section title that lacks one.
2. ``Math:`` blocks hold plain-text formulas, one per line, in the code's own names. griffe turns
   them into an admonition whose lines Markdown joins into one paragraph (and whose ``*`` become
   emphasis). -> the block's lines are fenced as ```` ```text ```` so they show verbatim. A title with
   a note, ``Math (t = step_count):``, keeps its note as the admonition's title.
3. A continuation line aligned by eye (5 spaces under a 4-space item) is read right by griffe, with a
   warning. -> it is indented to the continuation level griffe expects.
4. ``Raises:`` written as prose ("FileNotFoundError when there is no file; ValueError when ...")
   instead of ``Name: description`` items, which griffe cannot split. -> shown as a note titled
   "Raises", text unchanged.

Only the text griffe parses for the site changes; the source files are left as they are.
"""

from __future__ import annotations

import re

import griffe

_SECTIONS = "Args|Arguments|Parameters|Returns|Yields|Raises|Attributes|Examples?|Notes?|Math"
_TITLE = re.compile(rf"^(?P<indent> *)(?P<title>{_SECTIONS})(?P<note> \([^\n]*\))?:\s*$")  # "Math (t = step):"
_RAISES_ITEM = re.compile(r"^ *[A-Z]\w*:")  # "ValueError: when ..."
_ITEM_SECTIONS = {"Args", "Arguments", "Parameters", "Returns", "Yields", "Raises", "Attributes"}


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _block_end(lines: list[str], start: int, title_indent: int) -> int:
    """Index just past the block of lines under a title (more indented than it, blank lines inside)."""
    end = start
    i = start
    while i < len(lines):
        if lines[i].strip():
            if _indent(lines[i]) <= title_indent:
                break
            end = i + 1
        i += 1
    return end


def normalize(text: str) -> str:
    """The docstring ``text`` with the habits above rewritten for griffe."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    in_fence = False
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        match = None if in_fence else _TITLE.match(line)
        end = _block_end(lines, i + 1, len(match["indent"])) if match else i + 1
        if not match or end == i + 1:  # not a title, or a title with nothing under it
            out.append(line)
            i += 1
            continue
        if out and out[-1].strip():
            out.append("")  # habit 1
        out.append(line)
        body = lines[i + 1:end]
        body_indent = min(_indent(b) for b in body if b.strip())
        if match["title"] == "Math":  # habit 2
            pad = " " * body_indent
            body = [pad + "```text", *body, pad + "```"]
            if match["note"]:  # "Math (t = step):" -> an admonition of type Math titled so
                out[-1] = f"{match['indent']}Math: Math{match['note']}"
        elif match["title"] == "Raises" and not _RAISES_ITEM.match(body[0]):  # habit 4
            out[-1] = match["indent"] + "Note: Raises"
        elif match["title"] in _ITEM_SECTIONS:  # habit 3
            body = [" " * (2 * body_indent) + b.lstrip(" ") if body_indent < _indent(b) < 2 * body_indent else b
                    for b in body]
        out.extend(body)
        i = end
    return "\n".join(out)


class HouseDocstrings(griffe.Extension):
    """Rewrite each docstring with ``normalize`` before griffe parses it."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = normalize(obj.docstring.value)
