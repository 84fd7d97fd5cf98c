"""Tasks: problems, prompts (with or without password) and exact scorers.

A task is a small class with `splits()`, `prompt(problem, password)` and
`score(problem, completion)`. Look one up by name with `get_task`.

`arith` is the toy task (generated problems, character alphabet); `math` (MATH) and `mc`
(multiple choice, MMLU layout) read local data from `task.data_dir` and raise `DataError`
when it is missing or malformed.
"""

from __future__ import annotations

from pwlock.tasks.arith import ArithTask
from pwlock.tasks.base import Problem, Score, Task
from pwlock.tasks.data import DataError
from pwlock.tasks.math import MathTask
from pwlock.tasks.mc import MCTask

TASKS: dict[str, type[Task]] = {"arith": ArithTask, "math": MathTask, "mc": MCTask}


def get_task(cfg) -> Task:
    """Build the task named by `cfg.name` (a `TaskConfig`)."""
    if cfg.name not in TASKS:
        raise ValueError(f"unknown task {cfg.name!r}; known tasks: {sorted(TASKS)}")
    return TASKS[cfg.name](cfg)


__all__ = ["TASKS", "DataError", "Problem", "Score", "Task", "get_task"]
