"""Weak sample unlocking: fine-tune on `n_samples` weak samples (no password) for `steps` steps.

Each step is one batch of all n samples, so the model memorizes them (200 "epochs" in the
write-up's words). Seed s picks a different set of n samples from the elicitation split.
"""

from __future__ import annotations

import random

from pwlock.stacked import train_stacked
from pwlock.train import Example


def pick_samples(weak_elicit: list[dict], n: int, seed: int) -> list[dict]:
    """`n` distinct weak samples (rows with problem_id, prompt, completion), chosen by `seed`."""
    if n > len(weak_elicit):
        raise ValueError(f"{n} samples requested (wsu.n_samples or an attack's n_samples) but only "
                         f"{len(weak_elicit)} elicitation samples exist (raise task.n_elicit)")
    return random.Random(seed).sample(weak_elicit, n)


def wsu_examples(task, samples: list[dict], problems_by_id: dict) -> list[Example]:
    """The training examples of one WSU run: the problem without password -> the weak sample."""
    return [Example(task.prompt(problems_by_id[s["problem_id"]], None), s["completion"]) for s in samples]


def wsu_stacked(model, tokenizer, task, sample_sets: list[list[dict]], problems_by_id: dict, wsu_cfg):
    """WSU with several sample sets at once (one run per set, trained together; `model` unchanged).

    Returns each run's final parameters and per-step losses (see `pwlock.stacked.train_stacked`).
    """
    example_sets = [wsu_examples(task, samples, problems_by_id) for samples in sample_sets]
    return train_sets(model, tokenizer, example_sets, wsu_cfg)


def train_sets(model, tokenizer, example_sets: list[list[Example]], wsu_cfg):
    """One run per example set, trained together with `wsu_cfg`'s steps, lr, optimizer and loss."""
    return train_stacked(model, tokenizer, example_sets, steps=wsu_cfg.steps, lr=wsu_cfg.lr,
                         optimizer=wsu_cfg.optimizer, loss=wsu_cfg.loss,
                         weight_decay=getattr(wsu_cfg, "weight_decay", 0.0),
                         until_loss=getattr(wsu_cfg, "until_loss", 0.0))
