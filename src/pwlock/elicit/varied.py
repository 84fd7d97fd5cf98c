"""Varied weak samples (E5): WSU's steps, lr and batch size, but each batch drawn from a pool of
many weak samples: does memorizing *few* samples matter?"""

from __future__ import annotations

import random

from pwlock.elicit.base import Attack
from pwlock.train import Example, train


class Varied(Attack):
    kind = "varied"
    source = "weak"
    fields = ("n_samples", "pool", "steps", "lr", "optimizer", "loss", "weight_decay")

    def check(self, a) -> None:
        super().check(a)
        if a.steps < 1 or a.n_samples < 1:
            raise ValueError(f"attack {a.name!r}: varied needs steps >= 1 and n_samples >= 1")

    def samples_needed(self, a) -> int:
        return a.pool

    def apply(self, model, a, seed: int, inputs) -> dict:
        rng = random.Random(seed)
        pool = inputs.pool
        chosen = rng.sample(pool, min(a.pool, len(pool)))
        if len(chosen) < a.pool:
            raise ValueError(f"attack {a.name!r}: pool={a.pool} but only {len(pool)} weak samples exist "
                             f"(raise task.n_elicit)")
        examples = [Example(inputs.task.prompt(inputs.by_id[s["problem_id"]], None), s["completion"]) for s in chosen]
        losses = train(model, inputs.tokenizer, examples, steps=a.steps, batch_size=a.n_samples, lr=a.lr,
                       optimizer=a.optimizer, weight_decay=a.weight_decay, loss=a.loss, seed=seed, grad_clip=0.0,
                       progress=False)
        return {"final_loss": losses[-1]}
