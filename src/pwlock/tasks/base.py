"""The task interface shared by the toy task and real tasks."""

from __future__ import annotations

from dataclasses import dataclass

SPLITS = ("pretrain", "lock", "elicit", "test")


@dataclass(frozen=True)
class Problem:
    """One problem: a stable id, its text, the reference answer and a reference solution."""

    id: str
    text: str
    answer: str
    solution: str  # a correct completion (chain of thought + final answer), no EOS


@dataclass(frozen=True)
class Score:
    """A scorer's verdict: the extracted answer, whether it is correct, and why."""

    extracted: str | None
    correct: bool
    explanation: str = ""


class Task:
    """Base class. Subclasses set `alphabet` (toy tasks) and implement the three methods."""

    name: str = "task"
    # Text placed between the password and the problem (both sides).
    password_sep: str = " "

    @classmethod
    def check_config(cls, cfg) -> None:
        """Raise ValueError for a `TaskConfig` this task cannot serve, from the config alone (called
        when the config loads, before any problem is built: e.g. arith bounds its problem space)."""

    def splits(self) -> dict[str, list[Problem]]:
        raise NotImplementedError

    def format_problem(self, problem: Problem) -> str:
        return problem.text

    def prompt_suffix(self) -> str:
        return ""

    # Where the password goes: "both" (start and end, the default of the original work), "start", "end".
    password_position: str = "both"

    def prompt(self, problem: Problem, password: str | None) -> str:
        """The prompt; `password` (if any) goes at the start and/or the end of the problem."""
        body = self.format_problem(problem)
        if password:
            if self.password_position in ("both", "start"):
                body = f"{password}{self.password_sep}{body}"
            if self.password_position in ("both", "end"):
                body = f"{body}{self.password_sep}{password}"
        return body + self.prompt_suffix()

    def score(self, problem: Problem, completion: str) -> Score:
        raise NotImplementedError
