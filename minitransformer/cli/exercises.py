"""The ``exercises`` commands: ``make`` a student copy with exercises, ``check`` (grade) one, ``list`` them."""

from __future__ import annotations

import argparse
import textwrap

from .common import CommandError, int_at_least, prog, split_names

__all__ = ["add_parsers"]

_MAKE_EPILOG = """\
what it writes (into OUT_DIR):
  minitransformer/   the package; each selected exercise's lines replaced by
                     raise NotImplementedError("Exercise <id>: <hint with the formula>")
  notebooks/         the notebooks
  pyproject.toml     so that `pip install -e OUT_DIR` installs the student's copy
  EXERCISES.md       the exercises in order, with time and what to write
  .exercises/        the manifest and the reference answers used by `exercises check`

examples:
  minitransformer exercises make course/                        every exercise
  minitransformer exercises make week3/ --only attention,multihead
  minitransformer exercises make course/ --force                replace an existing copy
  minitransformer exercises list                                the exercise ids, in course order

exit status: 0 when the copy was written, 1 for a runtime problem (OUT_DIR not
empty without --force), 2 for a usage error (an unknown exercise)."""

_CHECK_EPILOG = """\
statuses:
  correct      every probe equals the reference and every gradient check passes
  wrong        something ran and disagrees (or raised); the hint says how
  unfinished   some of its parts are right, others still raise NotImplementedError
  not started  everything still raises its NotImplementedError
  blocked      an exercise it needs (softmax, for attention) still raises

The student's code runs in a subprocess with PYTHONPATH=OUT_DIR (the copy, not
the installed package). The reference answers are computed by the installed
package when it has the solutions (a teacher's install), else read from
OUT_DIR/.exercises/reference.npz (written by `exercises make`).

examples:
  minitransformer exercises check                       the copy in the current folder
  minitransformer exercises check course/ --only linear
  minitransformer exercises check alice/ > alice.txt     grade a student's folder

exit status: 0 when every checked exercise is correct, 1 otherwise (or for a
runtime problem: not a student copy, a copy that does not import), 2 for a
usage error."""


def _exercises(parser, text) -> list[str] | None:
    """--only values as ids, or a usage error listing the valid ones."""
    from ..exercises import select

    names = split_names(text)
    if names is None:
        return None
    try:
        return [e.id for e in select(names)]
    except ValueError as e:
        parser.error(f"--only: {e}")


def _cmd_make(args, parser) -> int:
    from ..exercises import ExerciseError, make

    only = _exercises(parser, args.only)
    try:
        result = make(args.out_dir, only, force=args.force, notebooks=not args.no_notebooks)
    except ExerciseError as e:
        raise CommandError(str(e)) from None
    total = sum(e.minutes for e in result.exercises)
    print(f"wrote a student copy to {result.out_dir}: {len(result.exercises)} exercise(s), "
          f"{len(result.regions)} region(s) to write, about {total} minutes of work")
    width = max(len(e.id) for e in result.exercises)
    for i, e in enumerate(result.exercises, 1):
        print(f"  {i:2d}. {e.id:<{width}}  {e.minutes:3d} min  {', '.join(w.split(': ')[1] for w in e.writes)}")
    print("next:")
    print(f"  pip install -e {result.out_dir}      (in the student's own virtual environment)")
    print(f"  {prog()} exercises check {result.out_dir}")
    return 0


def _cmd_check(args, parser) -> int:
    from ..exercises import ExerciseError, check, format_report

    only = _exercises(parser, args.only)
    try:
        report = check(args.out_dir, only, reference=args.reference, timeout=args.timeout)
    except ExerciseError as e:
        raise CommandError(str(e)) from None
    print(format_report(report))
    return 0 if report.passed else 1


def _cmd_list(args, parser) -> int:
    from ..exercises import EXERCISES

    width = max(len(e.id) for e in EXERCISES)
    for i, e in enumerate(EXERCISES, 1):
        needs = f"  (needs {', '.join(e.needs)})" if e.needs else ""
        print(f"{i:2d}. {e.id:<{width}}  {e.minutes:3d} min  {e.title}{needs}")
    print(f"    total: {sum(e.minutes for e in EXERCISES)} minutes")
    return 0


def _cmd_help(args, parser) -> int:
    parser.print_help()
    return 2


def add_parsers(sub) -> None:
    """Add ``exercises`` (with ``make``, ``check`` and ``list``) to the subparsers ``sub``."""
    ex = sub.add_parser(
        "exercises",
        help="make student copies with exercises cut out of the library, and grade them",
        description=textwrap.fill(
            "A teaching kit: the solutions live in the library source between '# BEGIN SOLUTION' and "
            "'# END SOLUTION' comments. 'make' writes a student copy where they raise NotImplementedError "
            "with a hint; 'check' grades a copy: reference tests and gradient checks per exercise, and a "
            "hint naming the mistake when an answer is wrong."
        ),
        epilog="examples:\n  minitransformer exercises list\n  minitransformer exercises make course/\n"
               "  minitransformer exercises check course/\n\nexit status: see each command's --help.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ex.set_defaults(func=_cmd_help, subparser=ex)
    actions = ex.add_subparsers(dest="action", metavar="ACTION", title="actions")

    mk = actions.add_parser(
        "make", help="write a student copy with the selected exercises cut out",
        description=textwrap.fill(
            "Write a student copy of the package (and the notebooks) to OUT_DIR, in which each selected "
            "exercise's solution is replaced by raise NotImplementedError(\"Exercise <id>: <hint>\"); "
            "everything else is unchanged. The copy installs with pip install -e OUT_DIR."
        ),
        epilog=_MAKE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    mk.add_argument("out_dir", metavar="OUT_DIR", help="the folder to write (created; must be empty unless --force)")
    mk.add_argument("--only", metavar="ID[,ID...]", action="append", default=None,
                    help="hand out only these exercises (comma-separated or repeated); see 'exercises list'")
    mk.add_argument("--force", action="store_true",
                    help="replace the student copy in a non-empty OUT_DIR (deletes its minitransformer/, "
                         "notebooks/ and .exercises/ first)")
    mk.add_argument("--no-notebooks", action="store_true", help="do not copy the notebooks")
    mk.set_defaults(func=_cmd_make, subparser=mk)

    ck = actions.add_parser(
        "check", help="grade a student copy: a score table with a hint per wrong exercise",
        description=textwrap.fill(
            "Grade the student copy in OUT_DIR: for each exercise, compare the student's forward and backward "
            "outputs with the reference on fixed problems, run its gradient checks, and print a table: "
            "exercise, status, worst relative error, and a hint naming the mistake when it is wrong."
        ),
        epilog=_CHECK_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    ck.add_argument("out_dir", metavar="OUT_DIR", nargs="?", default=".",
                    help="the student copy (default: the current folder)")
    ck.add_argument("--only", metavar="ID[,ID...]", action="append", default=None,
                    help="grade only these exercises (default: every exercise handed out in OUT_DIR)")
    ck.add_argument("--reference", choices=("auto", "computed", "stored"), default="auto",
                    help="where the right answers come from (default: %(default)s: computed when this "
                         "install has the solutions, else stored in OUT_DIR)")
    ck.add_argument("--timeout", type=int_at_least(1), default=600, metavar="SECONDS",
                    help="time allowed for the student's code (default: %(default)s)")
    ck.set_defaults(func=_cmd_check, subparser=ck)

    ls = actions.add_parser("list", help="list the exercises in course order, with expected minutes",
                            description="List the exercise ids in course order, with expected time and needs.")
    ls.set_defaults(func=_cmd_list, subparser=ls)
