"""Elicitation attacks other than plain WSU, and the controls of the write-up.

Every attack maps (locked model, attack config, seed) to a new model, in place:
- `wsu` / `demos`: fine-tune on n weak / strong samples, the full n as the batch each step
  (trained for all seeds at once, see `pwlock.stacked`);
- `varied`: the same steps, lr and batch size as WSU, but each batch drawn from a pool of many
  weak samples (E5: does *few* samples matter?);
- `noise`: Gaussian noise with std = `scale` x the tensor's own std, one draw per seed (E3);
- `scale`: every weight multiplied by `scale` (E4);
- `decay`: weights multiplied by (1 - lr x weight_decay) per step for `steps` steps, i.e. the
  weight decay of `steps` optimizer steps without any gradient (E4);
- `average`: `parts` WSU runs, each on its own n weak samples (disjoint), trained together; the
  attacked model is the base plus the mean of their weight changes (E7).
Option `until_loss` (wsu, demos, average): train each run until its per-token loss is at most
that (memorized, E6), `steps` at most; the results say how many steps it took.
Option `token_mask: better_without_password` (wsu, demos, average): train only on the
completion tokens that the locked model predicts better without the password than with it (E11).
"""

from __future__ import annotations

import random

import torch

from pwlock.train import Example, train

KINDS = ("wsu", "demos", "varied", "noise", "scale", "decay", "average")
TRAINED_TOGETHER = ("wsu", "demos", "average")
TOKEN_MASKS = ("none", "better_without_password")
SOURCE = {"wsu": "weak", "varied": "weak", "average": "weak", "demos": "strong"}  # whose samples train


def check_attack(a) -> None:
    if a.kind not in KINDS:
        raise ValueError(f"attack {a.name!r}: unknown kind {a.kind!r}; use one of {', '.join(KINDS)}")
    if a.seeds < 1:
        raise ValueError(f"attack {a.name!r}: seeds must be >= 1")
    if a.pre_pool < 0 or (a.pre_pool and a.pre_epochs < 1):
        raise ValueError(f"attack {a.name!r}: pre_pool must be >= 0, with pre_epochs >= 1")
    if a.kind == "average" and a.parts < 1:
        raise ValueError(f"attack {a.name!r}: average needs parts >= 1")
    if a.token_mask not in TOKEN_MASKS:
        raise ValueError(f"attack {a.name!r}: token_mask must be one of {', '.join(TOKEN_MASKS)}")
    if a.token_mask != "none" and a.kind not in TRAINED_TOGETHER:
        raise ValueError(f"attack {a.name!r}: token_mask applies to {', '.join(TRAINED_TOGETHER)}, not {a.kind}")
    if a.kind in ("wsu", "demos", "varied", "average") and (a.steps < 1 or a.n_samples < 1):
        raise ValueError(f"attack {a.name!r}: {a.kind} needs steps >= 1 and n_samples >= 1")
    if a.until_loss < 0 or (a.until_loss and a.kind not in TRAINED_TOGETHER):
        raise ValueError(f"attack {a.name!r}: until_loss must be >= 0 and applies to "
                         f"{', '.join(TRAINED_TOGETHER)}, not {a.kind}")
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


def disjoint_sets(pool: list[dict], n: int, parts: int, seed: int) -> list[list[dict]]:
    """`parts` disjoint sets of `n` samples from `pool`, chosen by `seed` (attack `average`)."""
    if n * parts > len(pool):
        raise ValueError(f"average: {parts} parts x {n} samples need {n * parts} samples but only "
                         f"{len(pool)} exist (raise task.n_elicit)")
    chosen = random.Random(seed).sample(pool, n * parts)
    return [chosen[i * n : (i + 1) * n] for i in range(parts)]


def average_weights(weights: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The mean of several runs' weights = the shared start plus the mean of their changes."""
    return {n: torch.stack([w[n] for w in weights]).mean(0) for n in weights[0]}


@torch.no_grad()
def better_without_password(model, tok, examples: list[Example], with_password: list[str]) -> list[Example]:
    """`examples` (prompts without password) with `keep` set to the completion tokens (and EOS)
    that `model` gives a higher log-probability without the password than with it;
    `with_password[i]` is example i's prompt with the password."""
    from pwlock.train import collate, encode

    def token_logprobs(exs):
        rows = encode(tok, exs)
        ids, att, _ = collate(rows, tok.pad_token_id)
        dev = next(model.parameters()).device
        logp = torch.log_softmax(model(input_ids=ids.to(dev), attention_mask=att.to(dev)).logits.float(), -1).cpu()
        out = []
        for i, (x, m) in enumerate(rows):
            n = sum(m)
            pos = torch.arange(len(x) - n - 1, len(x) - 1)
            out.append(logp[i, pos, torch.tensor(x[len(x) - n:])])
        return out

    model.eval()
    plain = token_logprobs(examples)
    pwd = token_logprobs([Example(p, ex.completion) for ex, p in zip(examples, with_password)])
    return [Example(ex.prompt, ex.completion, keep=tuple(int(k) for k in (a > b).tolist()))
            for ex, a, b in zip(examples, plain, pwd)]


def memorized(a):
    """`train`'s `on_step` that stops at `a.until_loss` (None: all `a.steps` steps)."""
    limit = getattr(a, "until_loss", 0.0)
    return (lambda step, loss: loss <= limit) if limit > 0 else None


# -- one seed at a time, on the model itself (`wsu.max_stack: 1`: a 7B model has room for one copy) --
@torch.no_grad()
def cpu_copy(model) -> dict[str, torch.Tensor]:
    """The model's parameters, copied to CPU memory (to restore after an attack in place)."""
    return {n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters()}


@torch.no_grad()
def restore(model, weights: dict[str, torch.Tensor]) -> None:
    for n, p in model.named_parameters():
        p.copy_(weights[n])


def train_in_place(model, tok, example_sets: list[list[Example]], a, seed: int,
                   base: dict[str, torch.Tensor]) -> list[list[float]]:
    """What `pwlock.elicit.wsu.train_sets` computes for the sets of one seed, without stacked copies:
    each set trains `model` from `base` (its CPU weights) in turn, the full set as the batch; with
    several sets (`average`) `model` ends as the mean of the trained weights. Returns the losses."""
    losses, total = [], None
    for k, exs in enumerate(example_sets):
        if k:
            restore(model, base)
        losses.append(train(model, tok, exs, steps=a.steps, batch_size=len(exs), lr=a.lr, optimizer=a.optimizer,
                            weight_decay=a.weight_decay, loss=a.loss, seed=seed + k, grad_clip=0.0,
                            progress=False, on_step=memorized(a)))
        if len(example_sets) > 1:
            with torch.no_grad():
                if total is None:
                    total = {n: torch.zeros(p.shape) for n, p in model.named_parameters()}
                for n, p in model.named_parameters():
                    total[n] += p.detach().float().cpu()
    if total is not None:
        with torch.no_grad():
            for n, p in model.named_parameters():
                p.copy_((total[n] / len(example_sets)).to(p.dtype))
    return losses
