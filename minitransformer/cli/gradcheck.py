"""The ``gradcheck`` command: every hand-written backward pass against centred finite differences."""

from __future__ import annotations

import argparse
import difflib
import sys
import textwrap

from .. import __version__, backend
from .common import split_names

__all__ = ["LEGEND", "add_parsers"]

LEGEND = """\
How to read it: for a random upstream gradient dy, backward(dy) must equal the
slope of L = sum(forward(x) * dy), measured by centred differences in float64
(eps = 1e-6), for every input and every parameter of the check.
  worst tensor  the input (arg0, arg1, ... of forward) or parameter with the largest error
  rel. error    normwise: max|analytic - numeric| / max(1e-8, max|analytic| + max|numeric|),
                normwise because many true gradients are exactly 0 (masked keys)
  tol           PASS when rel. error < tol; a correct backward gives ~1e-9,
                a missing term or wrong transpose ~1e-2 or worse
  PASS*         a tensor whose true gradient is exactly 0 (the key bias b_k: softmax
                ignores a constant added to a whole row of scores) passes on the absolute
                error max|analytic - numeric| < 1e-8 instead, since both are rounding noise"""


_GRADCHECK_EPILOG = """\
names: an op is named after its function without _forward (linear, softmax),
a module or model after its class (Linear, LayerNorm, Transformer); names are
case-sensitive.

examples:
  minitransformer gradcheck                       all checks, a row as each finishes
  minitransformer gradcheck --list                the names, with what each case covers
  minitransformer gradcheck --only softmax        one check
  minitransformer gradcheck --only linear,Linear  several (comma-separated or repeated)
  minitransformer gradcheck -q > table.txt        just the table, no progress lines

exit status: 0 when every check passes, 1 when any fails, 2 for a usage error."""


def _unknown_names_message(unknown: list[str], valid: list[str]) -> str:
    lines = [f"unknown check name(s): {', '.join(unknown)}"]
    lower = {v.lower(): v for v in valid}
    for n in unknown:
        close = difflib.get_close_matches(n, valid, n=3, cutoff=0.6)
        if n.lower() in lower and lower[n.lower()] not in close:
            close.insert(0, lower[n.lower()])
        if close:
            lines.append(f"  {n}: did you mean {' or '.join(close)}?")
    lines.append(f"valid names: {', '.join(valid)}")
    return "\n".join(lines)


def _cmd_gradcheck(args, parser) -> int:
    from ..gradcheck import format_table
    from ..report import case_names, find_cases, missing_requirements, run_report

    valid = case_names()
    only = split_names(args.only)
    if only is not None:
        if not only:
            parser.error("--only needs at least one name; valid names: " + ", ".join(valid))
        unknown = [n for n in only if n not in valid]
        if unknown:
            parser.error(_unknown_names_message(unknown, valid))

    if args.list:
        cases = find_cases(only)
        width = max(len(c.name) for c in cases)
        group = None
        for c in cases:
            if c.group != group:
                group = c.group
                print(f"{group}:")
            missing = missing_requirements(c)
            note = f"  [not importable yet: {', '.join(missing)}]" if missing else ""
            print(f"  {c.name:<{width}}  {c.module.rsplit('.', 1)[-1] + '.py':<15} {c.what}{note}")
        return 0

    print(f"minitransformer {__version__} gradient checks (float64, backend: {backend.backend_name()})",
          file=sys.stderr, flush=True)
    report = run_report(only=only, progress=not args.quiet)
    print()
    print(format_table(report))
    print()
    print(LEGEND)
    for name, note in report.skipped:
        print(f"skipped {name}: {note}")
    for name, note in report.crashed:
        print(f"FAILED {name}: raised {note}")
    print(f"({report.seconds:.1f} s)")
    return 0 if report.passed else 1


def add_parsers(sub) -> None:
    """Add ``gradcheck`` to the subparsers ``sub``."""
    gc = sub.add_parser(
        "gradcheck",
        help="check every hand-written backward pass against finite differences",
        description=textwrap.fill(
            "Check every hand-written backward pass against centred finite differences, in float64, "
            "on small hard cases: batch > 1, several heads, query length != key length, padding and "
            "causal masks together, random LayerNorm gamma, dropout replayed from a fixed seed. "
            "Ops (pure forward/backward pairs) first, then modules (inputs and every parameter), "
            "then models (the training loss against every parameter)."
        ),
        epilog=_GRADCHECK_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    gc.add_argument(
        "--only", metavar="NAME[,NAME...]", action="append", default=None,
        help="run only these checks (comma-separated, or repeat --only); see --list",
    )
    gc.add_argument("--list", action="store_true", help="list the check names and what each covers, then exit")
    gc.add_argument("-q", "--quiet", action="store_true", help="no progress lines, only the final table")
    gc.set_defaults(func=_cmd_gradcheck, subparser=gc)
