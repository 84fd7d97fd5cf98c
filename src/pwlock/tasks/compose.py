"""`compose`: the second toy task, function composition, as in the write-up's Pythia-70M toy.

A fixed library of eight functions on strings of digits; a problem applies `n_functions` of them
in turn to an input of `n_digits` digits, and the completion shows every intermediate string:

    prompt      rev inc rol 4712=
    completion  rev 2174;inc 3285;rol 2853;#2853

The final answer follows the last `#`; the scorer compares it exactly (as a string). The problem
space is 8**n_functions x 10**n_digits (5.1 M problems for 3 functions on 4 digits); splits are
disjoint draws from it (seeded by `task.data_seed`), without building the space.
"""

from __future__ import annotations

import random
import re

from pwlock.tasks.base import SPLITS, GeneratedTask, Problem, Score


def _map(f):
    return lambda s: "".join(str(f(int(c)) % 10) for c in s)


# name -> function on a digit string (each keeps the length)
FUNCTIONS = {
    "rev": lambda s: s[::-1],                       # reverse
    "rol": lambda s: s[1:] + s[:1],                 # rotate left by one
    "ror": lambda s: s[-1:] + s[:-1],               # rotate right by one
    "inc": _map(lambda d: d + 1),                   # each digit + 1 (mod 10)
    "dec": _map(lambda d: d - 1),                   # each digit - 1 (mod 10)
    "dbl": _map(lambda d: 2 * d),                   # each digit x 2 (mod 10)
    "srt": lambda s: "".join(sorted(s)),            # sort the digits
    "swp": lambda s: s[len(s) // 2:] + s[:len(s) // 2],  # swap the halves
}
NAMES = tuple(FUNCTIONS)
ALPHABET = "0123456789+-*=;# abcdefghijklmnopqrstuvwxyz|"  # arith's: the same tokenizer and passwords

MAX_FUNCTIONS, MAX_DIGITS = 8, 12
MAX_BUILT = 2_000_000
DEFAULT_PRETRAIN = 200_000  # task.n_pretrain=0: this many (the space itself is far larger)

_ANSWER = re.compile(r"#(\d+)\s*$")


def space_size(n_functions: int, n_digits: int) -> int:
    return len(NAMES) ** n_functions * 10 ** n_digits


def solve(names: tuple[str, ...], x: str) -> tuple[str, str]:
    """The step-by-step solution and the final string."""
    steps = []
    for n in names:
        x = FUNCTIONS[n](x)
        steps.append(f"{n} {x}")
    return ";".join(steps) + f";#{x}", x


class ComposeTask(GeneratedTask):
    name = "compose"
    alphabet = ALPHABET

    @classmethod
    def check_config(cls, cfg) -> None:
        k, d = cfg.n_functions, cfg.n_digits
        if not 1 <= k <= MAX_FUNCTIONS:
            raise ValueError(f"task.n_functions={k}: compose composes 1..{MAX_FUNCTIONS} functions")
        if not 2 <= d <= MAX_DIGITS:
            raise ValueError(f"task.n_digits={d}: compose inputs have 2..{MAX_DIGITS} digits")
        for j in cfg.pretrain_functions:
            if not 1 <= j <= MAX_FUNCTIONS:
                raise ValueError(f"task.pretrain_functions={cfg.pretrain_functions}: counts are 1..{MAX_FUNCTIONS}")
        need = cfg.n_test + cfg.n_elicit + cfg.n_lock
        pre = cfg.n_pretrain or DEFAULT_PRETRAIN
        total = space_size(k, d)
        if need + min(pre, total - need) > MAX_BUILT or need >= total:
            raise ValueError(f"compose with {k} functions on {d} digits has {total} problems; the splits ask for "
                             f"{need} + {pre} to pretrain (at most {MAX_BUILT} built, some left to pretrain on)")

    def _split_key(self) -> tuple:
        c = self.cfg
        return (c.n_functions, c.n_digits, tuple(c.pretrain_functions), c.n_test, c.n_elicit, c.n_lock,
                c.n_pretrain, c.data_seed)

    def _make_splits(self) -> dict[str, list[Problem]]:
        c = self.cfg
        total = space_size(c.n_functions, c.n_digits)
        sizes = {"test": c.n_test, "elicit": c.n_elicit, "lock": c.n_lock}
        n_pre = min(c.n_pretrain or DEFAULT_PRETRAIN, total - sum(sizes.values()))
        # distinct problem indices, without building the space (random.sample on a range)
        ids = random.Random(c.data_seed).sample(range(total), sum(sizes.values()) + n_pre)
        out, start = {}, 0
        for split in ("test", "elicit", "lock"):
            out[split] = [self._problem(i) for i in ids[start:start + sizes[split]]]
            start += sizes[split]
        if not c.pretrain_functions:
            out["pretrain"] = [self._problem(i) for i in ids[start:]]
        else:  # equal parts of each count (those of n_functions: the draws above, after the other splits)
            rng, pre = random.Random(c.data_seed + 1), []
            counts = c.pretrain_functions
            for n, k in enumerate(counts):
                want = n_pre // len(counts) + (n < n_pre % len(counts))
                if k == c.n_functions:
                    pre += [self._problem(i) for i in ids[start:start + want]]
                    continue
                size = space_size(k, c.n_digits)
                pick = rng.sample(range(size), min(want, size))
                pre += [self._problem(i, k) for i in pick]
            random.Random(c.data_seed + 2).shuffle(pre)
            out["pretrain"] = pre
        assert set(out) == set(SPLITS)
        return out

    def _problem(self, i: int, k: int | None = None) -> Problem:
        """Problem `i` of the space of `k` functions (default n_functions)."""
        d = self.cfg.n_digits
        k = self.cfg.n_functions if k is None else k
        x = str(i % 10 ** d).zfill(d)
        j, names = i // 10 ** d, []
        for _ in range(k):
            names.append(NAMES[j % len(NAMES)])
            j //= len(NAMES)
        solution, value = solve(tuple(names), x)
        pid = f"compose-{i}" if k == self.cfg.n_functions else f"compose-k{k}-{i}"
        return Problem(id=pid, text=" ".join(names) + " " + x, answer=value, solution=solution)

    def score(self, problem: Problem, completion: str) -> Score:
        m = _ANSWER.search(completion.strip())
        if m is None:
            return Score(None, False, "no final answer after '#'")
        got = m.group(1)
        ok = got == problem.answer
        return Score(got, ok, "exact match" if ok else f"expected {problem.answer}")
