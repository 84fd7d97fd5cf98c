"""Elicitation attacks other than plain WSU, and the controls of the write-up.

Every attack maps (locked model, attack config, seed) to a new model, in place:
- `wsu` / `demos`: fine-tune on n weak / strong samples, the full n as the batch each step
  (trained for all seeds at once, see `pwlock.stacked`);
- `varied`: the same steps, lr and batch size as WSU, but each batch drawn from a pool of many
  weak samples (E5: does *few* samples matter?);
- `noise`: Gaussian noise with std = `scale` x the tensor's own std, one draw per seed (E3);
- `scale`: every weight multiplied by `scale` (E4);
- `decay`: weights multiplied by (1 - lr x weight_decay) per step for `steps` steps, i.e. the
  weight decay of `steps` optimizer steps without any gradient (E4).
"""

from __future__ import annotations

import random

import torch

from pwlock.train import Example, train

KINDS = ("wsu", "demos", "varied", "noise", "scale", "decay")
TRAINED_TOGETHER = ("wsu", "demos")


def check_attack(a) -> None:
    if a.kind not in KINDS:
        raise ValueError(f"attack {a.name!r}: unknown kind {a.kind!r}; use one of {', '.join(KINDS)}")
    if a.seeds < 1:
        raise ValueError(f"attack {a.name!r}: seeds must be >= 1")
    if a.kind in ("wsu", "demos", "varied") and (a.steps < 1 or a.n_samples < 1):
        raise ValueError(f"attack {a.name!r}: {a.kind} needs steps >= 1 and n_samples >= 1")
    if a.kind in ("noise",) and a.scale <= 0:
        raise ValueError(f"attack {a.name!r}: noise needs scale > 0 (the noise std / tensor std)")
    if a.kind == "scale" and a.scale <= 0:
        raise ValueError(f"attack {a.name!r}: scale needs scale > 0 (the weight multiplier)")


def n_seeds(a) -> int:
    return 1 if a.kind in ("scale", "decay") else a.seeds


@torch.no_grad()
def perturb(model, a, seed: int) -> None:
    """noise / scale / decay, in place."""
    if a.kind == "noise":
        gen = torch.Generator().manual_seed(seed)
        for p in model.parameters():
            std = p.float().std() if p.numel() > 1 else p.abs().float()
            # drawn on the CPU (one generator, the same numbers on any device), then moved
            noise = torch.randn(p.shape, generator=gen, dtype=p.dtype).to(p.device)
            p.add_(noise * (a.scale * std).to(p.dtype))
    elif a.kind == "scale":
        for p in model.parameters():
            p.mul_(a.scale)
    elif a.kind == "decay":
        factor = (1.0 - a.lr * a.weight_decay) ** a.steps
        for p in model.parameters():
            p.mul_(factor)
    else:
        raise ValueError(f"perturb: {a.kind!r} is not a weight perturbation")


def varied(model, tok, task, pool: list[dict], problems_by_id: dict, a, seed: int) -> list[float]:
    """`steps` steps with batches of n from a seeded pool of weak samples (no password)."""
    rng = random.Random(seed)
    chosen = rng.sample(pool, min(a.pool, len(pool)))
    if len(chosen) < a.pool:
        raise ValueError(f"attack {a.name!r}: pool={a.pool} but only {len(pool)} weak samples exist "
                         f"(raise task.n_elicit)")
    examples = [Example(task.prompt(problems_by_id[s["problem_id"]], None), s["completion"]) for s in chosen]
    return train(model, tok, examples, steps=a.steps, batch_size=a.n_samples, lr=a.lr, optimizer=a.optimizer,
                 weight_decay=a.weight_decay, loss=a.loss, seed=seed, grad_clip=0.0, progress=False)
