"""Weight noise (E3, a control): Gaussian noise with std = `scale` x each tensor's own std, one
draw per seed."""

from __future__ import annotations

import torch

from pwlock.elicit.base import Attack


class Noise(Attack):
    kind = "noise"
    budget = "no data"
    fields = ("scale",)

    def check(self, a) -> None:
        super().check(a)
        if a.scale <= 0:
            raise ValueError(f"attack {a.name!r}: noise needs scale > 0 (the noise std / tensor std)")

    @torch.no_grad()
    def apply(self, model, a, seed: int, inputs) -> dict:
        gen = torch.Generator().manual_seed(seed)
        for p in model.parameters():
            std = p.float().std() if p.numel() > 1 else p.abs().float()
            # drawn on the CPU (one generator, the same numbers on any device), then moved
            noise = torch.randn(p.shape, generator=gen, dtype=p.dtype).to(p.device)
            p.add_(noise * (a.scale * std).to(p.dtype))
        return {}
