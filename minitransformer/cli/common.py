"""Shared pieces of the command line: the parser class, argument types, one-line errors, output helpers.

Every command module (``cli/seq2seq.py``, ``cli/gradcheck.py``, ...) builds on these, so all commands
read and fail the same way: a usage error exits 2 and a runtime problem exits 1, each with ONE line on
stderr, ``minitransformer: error: ...``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

__all__ = [
    "CommandError", "Parser", "add_progress_option", "add_threads_option", "check_out_dir", "error_line",
    "int_at_least", "marks", "message", "positive_float", "print_written", "probability", "prog", "short",
    "split_names", "write_json",
]


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``minitransformer: error: ... (see 'PROG --help')`` and exit status 2."""

    def error(self, message):
        self.exit(2, f"minitransformer: error: {message} (see '{self.prog} --help')\n")


class CommandError(Exception):
    """A runtime problem to report in one line with exit status 1."""


def int_at_least(lowest: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < lowest:
            raise argparse.ArgumentTypeError(f"expected an integer >= {lowest}, got {text!r}")
        return value

    parse.__name__ = f"integer >= {lowest}"
    return parse


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0.0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def fraction(text: str) -> float:
    """A number in (0, 1] (top-p, the decaying share of a schedule)."""
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return value


def probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


def add_progress_option(p) -> None:
    p.add_argument("--no-progress", action="store_true", help="no progress bar (it goes to stderr)")


def add_threads_option(p) -> None:
    p.add_argument("--threads", type=int_at_least(1), default=1, metavar="N",
                   help="BLAS threads for training (default: %(default)s, fastest for the small models here; "
                        "more can help from d_model 256 up)")


def split_names(values) -> list[str] | None:
    if values is None:
        return None
    return [n.strip() for v in values for n in v.split(",") if n.strip()]


def error_line(message: str, status: int = 1) -> int:
    """Print ONE line ``minitransformer: error: message`` on stderr; return the exit status."""
    print(f"minitransformer: error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
    return status


def message(e: BaseException) -> str:
    """An exception's own text (a KeyError's str() would add quotes)."""
    return str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)


def short(text: str, width: int = 40) -> str:
    return repr(text if len(text) <= width else text[:width - 3] + "...")


def marks() -> tuple[str, str]:
    """(right, wrong) marks the terminal can print: ✓/✗, or plain letters where stdout cannot encode them."""
    encoding = getattr(sys.stdout, "encoding", None)
    try:
        if encoding is not None:  # None: a text buffer such as io.StringIO, which holds any character
            "\u2713\u2717".encode(encoding)
        return "\u2713", "\u2717"
    except (LookupError, UnicodeEncodeError):
        return "ok", "x"


def prog() -> str:
    """How the user ran us (``.venv/bin/minitransformer``), for commands to try next; else plain ``minitransformer``."""
    argv0 = sys.argv[0] if sys.argv else ""
    return argv0 if os.path.basename(argv0) == "minitransformer" else "minitransformer"


def check_out_dir(out: str, parser) -> None:
    """--out must be (or become) a directory; make it now, before minutes of training."""
    if out.endswith(".npz"):
        parser.error(f"--out is a directory (for checkpoint.npz, loss.png, metrics.json), got {out!r}")
    if os.path.exists(out) and not os.path.isdir(out):
        parser.error(f"--out {out!r} exists and is not a directory")
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise CommandError(f"cannot create --out {out!r}: {e.strerror or e}") from None


def write_json(path: str, data: dict) -> str:
    """Write ``data`` as indented JSON, atomically (temp file + rename)."""
    from ..fileio import atomic_write

    with atomic_write(path, "w") as f:
        json.dump(data, f, indent=2, ensure_ascii=False)
        f.write("\n")
    return path


def print_written(written) -> None:
    width = max(len(what) for what, _ in written)
    print("wrote:")
    for what, path in written:
        print(f"  {what:<{width}}  {path}")
