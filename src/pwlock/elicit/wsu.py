"""Weak sample unlocking: fine-tune on `n_samples` weak samples (no password) for `steps` steps.

Each step is one batch of all n samples, so the model memorizes them (200 "epochs" in the
write-up's words). Seed s picks a different set of n samples from the elicitation split.

This file is the only WSU training code: E1's WSU, the `wsu`/`demos`/`average` attacks, E8's
relock rounds and E9's overfitting episodes (`pwlock.lock`) all train through `memorize` (one
set, in place) or `train_sets` (several sets stacked in one model, `pwlock.stacked`).

Options (`AttackConfig`): `until_loss` stops each run at its first step with per-token loss at
most that (memorized, E6); `token_mask: better_without_password` trains only on the completion
tokens the locked model predicts better without the password than with it (E11).
"""

from __future__ import annotations

import random

import numpy as np
import torch

from pwlock.elicit.base import Attack
from pwlock.stacked import train_stacked
from pwlock.train import Example, collate, encode, train

TRAINING = ("n_samples", "steps", "lr", "optimizer", "loss", "weight_decay", "until_loss", "token_mask",
            "master_weights", "lora", "lora_init")


class WSU(Attack):
    kind = "wsu"
    source = "weak"
    trains = True
    fields = (*TRAINING, "pick")

    def check(self, a) -> None:
        super().check(a)
        if a.steps < 1 or a.n_samples < 1:
            raise ValueError(f"attack {a.name!r}: {a.kind} needs steps >= 1 and n_samples >= 1")
        if a.until_loss < 0:
            raise ValueError(f"attack {a.name!r}: until_loss must be >= 0")
        if a.pick == "first" and a.seeds != 1:
            raise ValueError(f"attack {a.name!r}: pick=first trains every seed on the same first {a.n_samples} "
                             f"samples; set seeds: 1 (got {a.seeds})")

    def sample_sets(self, a, pool: list[dict], seed: int) -> list[list[dict]]:
        return [pick_samples(pool, a.n_samples, seed, first=a.pick == "first")]


def pick_samples(pool: list[dict], n: int, seed: int, first: bool = False) -> list[dict]:
    """`n` distinct samples (rows with problem_id, prompt, completion), chosen by `seed`; `first`:
    the first `n` of the pool (the elicit split's order)."""
    if n > len(pool):
        raise ValueError(f"{n} samples requested (wsu.n_samples or an attack's n_samples) but only "
                         f"{len(pool)} elicitation samples exist (raise task.n_elicit)")
    return pool[:n] if first else random.Random(seed).sample(pool, n)


def wsu_examples(task, samples: list[dict], problems_by_id: dict) -> list[Example]:
    """The training examples of one WSU run: the problem without password -> the sample."""
    return [Example(task.prompt(problems_by_id[s["problem_id"]], None), s["completion"]) for s in samples]


def _stop_at(until_loss: float):
    """`train`'s `on_step` that stops at `until_loss` (None: every step)."""
    return (lambda step, loss: loss <= until_loss) if until_loss > 0 else None


def memorize(model, tokenizer, examples: list[Example], *, steps: int, lr: float, optimizer: str = "adamw",
             loss: str = "completion", weight_decay: float = 0.0, seed: int = 0, until_loss: float = 0.0,
             **train_kw) -> list[float]:
    """One WSU run on `model` in place: `steps` steps, each one batch of all `examples`, no
    gradient clipping. `train_kw` go to `pwlock.train.train` (a sharded lock's rank, world_size)."""
    return train(model, tokenizer, examples, steps=steps, batch_size=len(examples), lr=lr, optimizer=optimizer,
                 weight_decay=weight_decay, loss=loss, seed=seed, grad_clip=0.0, progress=False,
                 on_step=_stop_at(until_loss), **train_kw)


def train_sets(model, tokenizer, example_sets: list[list[Example]], a):
    """One run per example set with `a`'s steps, lr, optimizer and loss, trained together (one
    stacked model; `model` unchanged). Returns each run's final parameters and per-step losses."""
    return train_stacked(model, tokenizer, example_sets, steps=a.steps, lr=a.lr, optimizer=a.optimizer,
                         loss=a.loss, weight_decay=a.weight_decay, until_loss=a.until_loss)


@torch.no_grad()
def cpu_copy(model) -> dict[str, torch.Tensor]:
    """The model's parameters, copied to CPU memory (to restore after an attack in place)."""
    return {n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters()}


@torch.no_grad()
def restore(model, weights: dict[str, torch.Tensor]) -> None:
    for n, p in model.named_parameters():
        p.copy_(weights[n])


def train_in_place(model, tokenizer, example_sets: list[list[Example]], a, seed: int,
                   base: dict[str, torch.Tensor], adapter=None) -> list[list[float]]:
    """What `train_sets` computes for the sets of one seed, without stacked copies: each set trains
    `model` from `base` (its CPU weights) in turn; with several sets `model` ends as the mean of
    the trained weights. `adapter` (a peft adapter directory, `lora_init: lock`): each set trains
    that adapter on `model` (the lock's start model) instead of new ones. Returns the losses."""
    losses, total = [], None
    for k, exs in enumerate(example_sets):
        if k:
            restore(model, base)
        trained = model
        if a.lora.r:  # adapters on the model, merged back into it after the run
            from pwlock import lora

            trained = lora.load_adapter(model, adapter) if adapter else lora.wrap(model, a.lora, seed + k)
        losses.append(memorize(trained, tokenizer, exs, steps=a.steps, lr=a.lr, optimizer=a.optimizer, loss=a.loss,
                               weight_decay=a.weight_decay, seed=seed + k, until_loss=a.until_loss,
                               master_weights=False if a.master_weights == "direct" else None))
        if a.lora.r:
            lora.merge(trained)  # `model` again, with the merged weights
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


def average_weights(weights: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The mean of several runs' weights = the shared start plus the mean of their changes."""
    return {n: torch.stack([w[n] for w in weights]).mean(0) for n in weights[0]}


@torch.no_grad()
def better_without_password(model, tok, examples: list[Example], with_password: list[str]) -> list[Example]:
    """`examples` (prompts without password) with `keep` set to the completion tokens (and EOS)
    that `model` gives a higher log-probability without the password than with it;
    `with_password[i]` is example i's prompt with the password."""

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


def train_seeds(model, tok, task, a, attack: Attack, pool: list[dict], seeds: list[int], by_id: dict,
                password: str, base: dict | None, adapter=None):
    """Train a trained attack for `seeds` (a chunk of its seeds): (each seed's weights for
    `complete_many`, extra results per seed, the training samples per seed). With `base` (a CPU
    copy of the weights; then one seed): in place, `model` is the attacked model (weights `{}`)."""
    sets = [attack.sample_sets(a, pool, s) for s in seeds]
    flat = [s for per_seed in sets for s in per_seed]
    example_sets = [wsu_examples(task, s, by_id) for s in flat]
    if a.token_mask == "better_without_password":
        example_sets = [better_without_password(model, tok, exs, [task.prompt(by_id[x["problem_id"]], password)
                                                                  for x in s])
                        for exs, s in zip(example_sets, flat)]
    if base is not None:  # one seed, its sets one after another, their mean change applied
        assert len(seeds) == 1
        losses = train_in_place(model, tok, example_sets, a, seeds[0], base, adapter)
        finals = [{}]
    else:
        trained, losses = train_sets(model, tok, example_sets, a)
        finals, i = [], 0
        for per_seed in sets:
            k = len(per_seed)
            finals.append(trained[i] if k == 1 else average_weights(trained[i : i + k]))
            i += k
    extras, i = [], 0
    for per_seed in sets:
        k = len(per_seed)
        lo = losses[i : i + k]
        extra = {"final_loss": float(np.mean([x[-1] for x in lo])),
                 "samples": [x["problem_id"] for s in per_seed for x in s],
                 "losses": lo[0] if k == 1 else lo}
        if a.until_loss:
            extra["steps_taken"] = float(np.mean([len(x) for x in lo]))
            extra["memorized"] = float(np.mean([x[-1] <= a.until_loss for x in lo]))
        if a.token_mask != "none":
            kept = [t for exs in example_sets[i : i + k] for ex in exs for t in ex.keep]
            extra["tokens_kept"] = sum(kept) / len(kept)
        extras.append(extra)
        i += k
    model.eval()
    return finals, extras, [[x for s in per_seed for x in s] for per_seed in sets]
