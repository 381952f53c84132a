"""The ``minitransformer`` command line.

    minitransformer demo                       # train a date translator (minutes on 2 cores), show it off
    minitransformer train --task dates --steps 2000 --out run/
    minitransformer translate --checkpoint run/ "11/28/26" "Saturday, 28th of November 2026"
    minitransformer train-gpt / generate / score   # a GPT language model
    minitransformer pretrain-bert / finetune       # BERT: masked LM + NSP, then task heads
    minitransformer exercises make / check         # the teaching kit
    minitransformer gradcheck                  # every op and module, float64
    minitransformer gradcheck --only softmax,LayerNorm
    minitransformer --version

Also ``python -m minitransformer ...``. One module per group of commands (``cli/seq2seq.py``,
``cli/gradcheck.py``, ...), each with ``add_parsers(sub)`` and ``_cmd_<name>(args, parser) -> exit code``;
``COMMAND_MODULES`` lists them in the order ``--help`` shows them. Shared helpers: ``cli/common.py``.

Errors: a usage error (bad option, unknown task) exits 2 and a runtime
problem (missing or foreign checkpoint, input the model cannot read) exits 1,
each with ONE line on stderr, ``minitransformer: error: ...``, never a
traceback. The library's exceptions are caught in the commands, around the
calls that read user input, and nowhere else: an exception from anywhere deeper
is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from .. import __version__
from .common import CommandError, Parser, error_line
from .gradcheck import LEGEND

__all__ = ["COMMAND_MODULES", "LEGEND", "build_parser", "main"]

# The command modules under minitransformer/cli/, in --help order.
COMMAND_MODULES = ("seq2seq", "gpt", "gradcheck", "bert", "finetune", "exercises")

_MAIN_EPILOG = """\
examples:
  minitransformer demo                      train a small Transformer to read dates, then show it off
  minitransformer train --task dates --steps 2000 --out run/
  minitransformer translate --checkpoint run/ "11/28/26"
  minitransformer train-gpt --steps 500 --out gpt_run/   a GPT on the built-in corpus (or --text FILE)
  minitransformer generate --checkpoint gpt_run/ --prompt "Anna found" --top-p 0.9
  minitransformer score --checkpoint gpt_run/ "the cat sat on the mat"
  minitransformer pretrain-bert --out bert_run/          masked LM + next sentence, from scratch
  minitransformer finetune --task sentiment --from minilm --out ft_run/
  minitransformer gradcheck                 check every backward pass against finite differences
  minitransformer gradcheck --only softmax  just one
  minitransformer exercises make course/    a student copy with backward passes to write
  minitransformer COMMAND --help            more about one command
  python -m minitransformer --version"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with the subparsers of every module in ``COMMAND_MODULES``."""
    parser = Parser(
        prog="minitransformer",
        description="A readable Transformer with every forward and backward pass written by hand.",
        epilog=_MAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").add_parsers(sub)
    return parser


def main(argv=None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 a failure, 2 a usage error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.func(args, args.subparser)
    except CommandError as e:
        return error_line(str(e))
    except BrokenPipeError:  # `minitransformer gradcheck | head`: the reader left, not an error of ours
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps the interpreter's final flush quiet
        return 0
    except KeyboardInterrupt:
        print("minitransformer: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
