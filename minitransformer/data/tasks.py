"""The task registry: ``get_task("dates")`` and friends.

Tasks (each makes seeded ``(source, target)`` string pairs, see ``base.Task``):

    copy      "a3k9"                              -> "a3k9"
    reverse   "a3k9"                              -> "9k3a"
    sort      "a3k9"                              -> "39ak"
    dates     "Saturday, 28th of November 2026"   -> "2026-11-28"
    numbers   "three hundred and forty-two"       -> "342"
"""

from __future__ import annotations

from .base import SPLITS, Task
from .dates import DatesTask
from .numbers import NumbersTask
from .sequences import CopyTask, ReverseTask, SortTask

__all__ = ["SPLITS", "TASKS", "Task", "get_task", "task_names"]

TASKS: dict[str, type[Task]] = {
    cls.name: cls for cls in (CopyTask, ReverseTask, SortTask, DatesTask, NumbersTask)
}


def task_names() -> list[str]:
    """Names accepted by ``get_task``."""
    return list(TASKS)


def get_task(name: str, **options) -> Task:
    """A new task by name; ``options`` go to its constructor (e.g. ``max_len=12``).

    An unknown name raises ``ValueError`` listing the known tasks.
    """
    cls = TASKS.get(name)
    if cls is None:
        raise ValueError(f"unknown task {name!r}; available tasks: {', '.join(TASKS)}")
    try:
        return cls(**options)
    except TypeError as e:
        raise TypeError(f"task {name!r}: bad options {sorted(options)} ({e})") from e
