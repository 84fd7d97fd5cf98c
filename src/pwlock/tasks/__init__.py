"""Tasks: problems, prompts (with or without password) and exact scorers.

A task is a small class with `splits()`, `prompt(problem, password)` and
`score(problem, completion)`. Look one up by name with `get_task`.

`arith` and `compose` are the toy tasks (generated problems, character alphabet: multi-step
arithmetic; function composition on digit strings); `math` (MATH) and `mc`
(multiple choice, MMLU layout) read local data from `task.data_dir` and raise `DataError`
when it is missing or malformed.
"""

from __future__ import annotations

from pwlock.tasks.arith import ArithTask
from pwlock.tasks.base import Problem, Score, Task
from pwlock.tasks.compose import ComposeTask
from pwlock.tasks.data import DataError
from pwlock.tasks.math import MathTask
from pwlock.tasks.mc import MCTask

TASKS: dict[str, type[Task]] = {"arith": ArithTask, "compose": ComposeTask, "math": MathTask, "mc": MCTask}


def get_task_class(name: str) -> type[Task]:
    """The task class named `name`: one of `TASKS`, or a class from outside the package given as
    `module:Class` (a `Task` subclass; see the README, "Your own task")."""
    if ":" in name:
        from pwlock.utils import import_object

        cls = import_object(name, what="task.name")
        if not (isinstance(cls, type) and issubclass(cls, Task)):
            raise ValueError(f"task.name={name!r} is not a subclass of pwlock.tasks.Task")
        return cls
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {sorted(TASKS)} (or module:Class)")
    return TASKS[name]


def get_task(cfg, password_position: str = "both") -> Task:
    """Build the task named by `cfg.name` (a `TaskConfig`), the password placed at
    `password_position` (both, start or end of the problem)."""
    task = get_task_class(cfg.name)(cfg)
    task.password_position = password_position
    return task


__all__ = ["TASKS", "DataError", "Problem", "Score", "Task", "get_task", "get_task_class"]
