"""Teaching kit: student copies of the library with exercises cut out, and their autograder.

    minitransformer exercises make OUT_DIR [--only attention,layernorm] [--force]
    minitransformer exercises check [OUT_DIR] [--only ...]

The solutions live in the library itself, between ``# BEGIN SOLUTION <id>:
<hint>`` and ``# END SOLUTION`` comment lines, so the exercises can never
drift from the reference code. ``make`` writes a copy where the selected
regions raise ``NotImplementedError("Exercise <id>: <hint>")``; ``check``
runs the student's code in a subprocess and grades it against the reference
(probes on fixed inputs, gradient checks, hints for the usual mistakes).

Modules: ``registry`` (the exercise list), ``regions`` (markers and the
student's sources), ``make``, ``probes`` (the fixed problems), ``grading``
(reference answers and known mistakes; not in student copies), ``store``
(answers saved at make time), ``runner`` (the student side), ``hints``
(naming a mistake), ``check`` (the grades and the table).
"""

from .check import STATUSES, CheckReport, ExerciseResult, check, format_report
from .make import ExerciseError, MakeResult, make
from .regions import Region, RegionError, find_regions, student_source
from .registry import EXERCISES, Exercise, exercise_ids, select

__all__ = [
    "EXERCISES", "STATUSES", "CheckReport", "Exercise", "ExerciseError", "ExerciseResult", "MakeResult", "Region",
    "RegionError", "check", "exercise_ids", "find_regions", "format_report", "make", "select", "student_source",
]
