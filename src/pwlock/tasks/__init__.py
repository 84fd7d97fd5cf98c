"""Tasks: problems, prompts (with or without password) and exact scorers.

A task is a small class with `splits()`, `prompt(problem, password)` and
`score(problem, completion)`. Look one up by name with `get_task`.
"""

from __future__ import annotations

from pwlock.tasks.arith import ArithTask
from pwlock.tasks.base import Problem, Score, Task

TASKS: dict[str, type[Task]] = {"arith": ArithTask}


def get_task(cfg) -> Task:
    """Build the task named by `cfg.name` (a `TaskConfig`)."""
    if cfg.name not in TASKS:
        raise ValueError(f"unknown task {cfg.name!r}; known tasks: {sorted(TASKS)}")
    return TASKS[cfg.name](cfg)


__all__ = ["Problem", "Score", "Task", "get_task", "TASKS"]
