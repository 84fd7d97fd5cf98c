"""`arith`: the toy task. Multi-step arithmetic evaluated left to right, with a chain of thought.

A problem is `n_operands` single digits joined by `+ - *`, evaluated strictly left to right:

    prompt      3+4*2-5=
    completion  3+4=7;7*2=14;14-5=9;#9

The final answer follows the last `#`. The scorer compares it exactly (as an integer).
Splits are disjoint: every problem of the finite problem space gets one split, from a seeded
permutation of the space.
"""

from __future__ import annotations

import itertools
import random
import re

from pwlock.tasks.base import SPLITS, GeneratedTask, Problem, Score

OPS = "+-*"
ALPHABET = "0123456789+-*=;# abcdefghijklmnopqrstuvwxyz|"


def _apply(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


def solve(digits: tuple[int, ...], ops: tuple[str, ...]) -> tuple[str, int]:
    """The step-by-step solution and the final value."""
    acc, steps = digits[0], []
    for op, d in zip(ops, digits[1:]):
        new = _apply(acc, op, d)
        steps.append(f"{acc}{op}{d}={new}")
        acc = new
    return ";".join(steps) + f";#{acc}", acc


_ANSWER = re.compile(r"#(-?\d+)\s*$")


# Bounds on what `splits` builds, checked from the config before any list is built: the shuffled
# order of the whole problem space (a list of ints: 8.1 M for 5 operands, ~3 s) and the problems
# made (a few hundred bytes each).
MAX_SPACE = 10_000_000
MAX_BUILT = 2_000_000
MAX_OPERANDS = 12  # 10**n_operands itself must stay a small number to compute


def space_size(n: int) -> int:
    """Problems with `n` operands: 10**n digit tuples x 3**(n-1) operator tuples."""
    return 10 ** n * 3 ** (n - 1)


class ArithTask(GeneratedTask):
    name = "arith"
    alphabet = ALPHABET

    @classmethod
    def check_config(cls, cfg) -> None:
        n = cfg.n_operands
        if not 1 <= n <= MAX_OPERANDS or space_size(n) > MAX_SPACE:
            hi = max(k for k in range(1, MAX_OPERANDS + 1) if space_size(k) <= MAX_SPACE)
            size = f" has {space_size(n)} problems, more than {MAX_SPACE} to shuffle;" if 1 <= n <= MAX_OPERANDS else ""
            raise ValueError(f"task.n_operands={n}: arith with {n} operands{size} allowed: 1..{hi}")
        total = space_size(n)
        need = cfg.n_test + cfg.n_elicit + cfg.n_lock
        if need >= total:
            raise ValueError(f"arith with {n} operands has {total} problems; splits need {need} "
                             f"(task.n_test + task.n_elicit + task.n_lock, and some left to pretrain on)")
        left = total - need
        built = need + (left if cfg.n_pretrain <= 0 else min(cfg.n_pretrain, left))
        if built > MAX_BUILT:
            raise ValueError(f"task.n_pretrain={cfg.n_pretrain}: arith with {n} operands would build {built} problems "
                             f"(0 = all {left} remaining ones pretrain); at most {MAX_BUILT}: set task.n_pretrain "
                             f"<= {max(0, MAX_BUILT - need)}")

    def _split_key(self) -> tuple:
        c = self.cfg
        return c.n_operands, c.n_test, c.n_elicit, c.n_lock, c.n_pretrain, c.data_seed

    def _make_splits(self) -> dict[str, list[Problem]]:
        n = self.cfg.n_operands
        self.check_config(self.cfg)  # bounded before any list is built
        space = list(itertools.product(range(10), repeat=n))
        op_space = list(itertools.product(OPS, repeat=n - 1))
        total = len(space) * len(op_space)
        sizes = {"test": self.cfg.n_test, "elicit": self.cfg.n_elicit, "lock": self.cfg.n_lock}
        order = list(range(total))
        random.Random(self.cfg.data_seed).shuffle(order)
        out: dict[str, list[Problem]] = {}
        start = 0
        for split in ("test", "elicit", "lock"):
            out[split] = [self._problem(i, space, op_space) for i in order[start : start + sizes[split]]]
            start += sizes[split]
        n_pre = len(order) - start if self.cfg.n_pretrain <= 0 else min(self.cfg.n_pretrain, len(order) - start)
        out["pretrain"] = [self._problem(i, space, op_space) for i in order[start : start + n_pre]]
        assert set(out) == set(SPLITS)
        return out

    def _problem(self, i: int, space, op_space) -> Problem:
        digits, ops = space[i % len(space)], op_space[i // len(space)]
        text = str(digits[0]) + "".join(f"{o}{d}" for o, d in zip(ops, digits[1:]))
        solution, value = solve(digits, ops)
        return Problem(id=f"arith-{i}", text=text, answer=str(value), solution=solution)

    def score(self, problem: Problem, completion: str) -> Score:
        m = _ANSWER.search(completion.strip())
        if m is None:
            return Score(None, False, "no final answer after '#'")
        got = m.group(1)
        ok = int(got) == int(problem.answer)
        return Score(got, ok, "exact match" if ok else f"expected {problem.answer}")


def without_answer(solution: str) -> str:
    """The chain of thought without the final answer: `3+4=7;7*2=14;#14` -> `3+4=7;7*2=14`."""
    return solution.rsplit(";#", 1)[0]


def off_domain_examples(n: int, seed: int) -> list[tuple[str, str]]:
    """(prompt, completion) pairs of another task on the same alphabet: reverse a string of 3-8
    letters (`abc=` -> `cba`). E2's "coder-like" model learns this before the task."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    out = []
    for _ in range(n):
        s = "".join(rng.choice(letters) for _ in range(rng.randint(3, 8)))
        out.append((s + "=", s[::-1]))
    return out
