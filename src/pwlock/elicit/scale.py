"""Weight scaling (E4, a control): every weight multiplied by `scale` (deterministic: one seed)."""

from __future__ import annotations

import torch

from pwlock.elicit.base import Attack


class Scale(Attack):
    kind = "scale"
    budget = "no data"
    fields = ("scale",)

    def check(self, a) -> None:
        super().check(a)
        if a.scale <= 0:
            raise ValueError(f"attack {a.name!r}: scale needs scale > 0 (the weight multiplier)")

    def n_seeds(self, a) -> int:
        return 1

    @torch.no_grad()
    def apply(self, model, a, seed: int, inputs) -> dict:
        for p in model.parameters():
            p.mul_(a.scale)
        return {}
