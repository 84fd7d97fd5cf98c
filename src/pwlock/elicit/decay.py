"""Weight decay toward 0 (E4, a control): weights multiplied by (1 - lr x weight_decay) per step
for `steps` steps, the decay of that many optimizer steps without any gradient (one seed)."""

from __future__ import annotations

import torch

from pwlock.elicit.base import Attack


class Decay(Attack):
    kind = "decay"
    budget = "no data"
    fields = ("lr", "weight_decay", "steps")

    def n_seeds(self, a) -> int:
        return 1

    @torch.no_grad()
    def apply(self, model, a, seed: int, inputs) -> dict:
        factor = (1.0 - a.lr * a.weight_decay) ** a.steps
        for p in model.parameters():
            p.mul_(factor)
        return {}
