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


class GeneratedTask(Task):
    """A toy task whose problems are generated from its config (arith, compose): the config is
    checked on construction; the splits are built once per config (`_split_key`, `_make_splits`)
    and shared by the tasks of that config (a dry run builds two contexts of one config)."""

    _LAST: dict[tuple, dict[str, list[Problem]]]  # each subclass: the splits of the last config built

    def __init__(self, cfg) -> None:
        self.check_config(cfg)
        self.cfg = cfg
        self._splits: dict[str, list[Problem]] | None = None

    def __init_subclass__(cls, **kw) -> None:
        super().__init_subclass__(**kw)
        cls._LAST = {}

    def prompt_suffix(self) -> str:
        return "="

    def _split_key(self) -> tuple:
        raise NotImplementedError

    def _make_splits(self) -> dict[str, list[Problem]]:
        raise NotImplementedError

    def splits(self) -> dict[str, list[Problem]]:
        if self._splits is None:
            key = self._split_key()
            if key not in self._LAST:
                self._LAST.clear()
                self._LAST[key] = self._make_splits()
            self._splits = {k: list(v) for k, v in self._LAST[key].items()}  # (Problems are frozen)
        return self._splits
