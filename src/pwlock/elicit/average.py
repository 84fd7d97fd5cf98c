"""Averaging (E7): `parts` WSU runs per seed, each on its own `n_samples` weak samples (disjoint),
trained together; the attacked model is the lock plus the mean of their weight changes."""

from __future__ import annotations

import random

from pwlock.elicit.wsu import TRAINING, WSU


class Average(WSU):
    kind = "average"
    fields = (*TRAINING, "parts")

    def check(self, a) -> None:
        super().check(a)
        if a.parts < 1:
            raise ValueError(f"attack {a.name!r}: average needs parts >= 1")

    def sets_per_seed(self, a) -> int:
        return a.parts

    def sample_sets(self, a, pool: list[dict], seed: int) -> list[list[dict]]:
        return disjoint_sets(pool, a.n_samples, a.parts, seed)


def disjoint_sets(pool: list[dict], n: int, parts: int, seed: int) -> list[list[dict]]:
    """`parts` disjoint sets of `n` samples from `pool`, chosen by `seed`."""
    if n * parts > len(pool):
        raise ValueError(f"average: {parts} parts x {n} samples need {n * parts} samples but only "
                         f"{len(pool)} exist (raise task.n_elicit)")
    chosen = random.Random(seed).sample(pool, n * parts)
    return [chosen[i * n : (i + 1) * n] for i in range(parts)]
