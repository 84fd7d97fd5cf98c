"""Evaluation: greedy accuracy on the test split, with or without the password.

Writes one record per problem (prompt, completion, extracted answer, correct) so every number
in a report can be traced back to the completions behind it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from pwlock import stacked_sampling
from pwlock.sampling import generate
from pwlock.utils import write_jsonl


def _score(task, problems, prompts, comps, out: Path | None) -> dict:
    records = []
    for p, prompt, c in zip(problems, prompts, comps):
        s = task.score(p, c)
        records.append({"problem_id": p.id, "prompt": prompt, "completion": c,
                        "extracted": s.extracted, "answer": p.answer, "correct": bool(s.correct)})
    if out is not None:
        write_jsonl(out, records)
    n = len(records)
    return {"n_test": n, "accuracy": sum(r["correct"] for r in records) / max(n, 1),
            "correct": "".join("1" if r["correct"] else "0" for r in records)}


def evaluate(model, tokenizer, task, problems, password: str | None, eval_cfg, out: Path | None = None,
             desc: str | None = None) -> dict:
    """Greedy accuracy of `model` on `problems`; records go to `out` (JSONL) if given."""
    prompts = [task.prompt(p, password) for p in problems]
    comps = generate(model, tokenizer, prompts, max_new_tokens=eval_cfg.max_new_tokens,
                     temperature=0.0, batch_size=eval_cfg.batch_size, desc=desc, max_length=eval_cfg.max_length)
    return _score(task, problems, prompts, comps, out)


def complete_many(model, weights: Sequence[Mapping[str, torch.Tensor]], tokenizer, task, problems,
                  password: str | None, eval_cfg, desc: str | None = None) -> list[list[str]]:
    """Greedy completions of `problems` by K models that differ from `model` by `weights[k]`
    (name -> tensor), for `write_records` to score: the evaluation of a group of elicitation runs.

    Llama-family models generate in one stacked batch (`pwlock.stacked_sampling`), others one
    after another; the completions are the same. `model` keeps its own weights.
    """
    prompts = [task.prompt(p, password) for p in problems]
    if len(weights) == 1 and not weights[0]:  # the model itself (attacked in place): no copy of its weights
        return [generate(model, tokenizer, prompts, max_new_tokens=eval_cfg.max_new_tokens, temperature=0.0,
                         batch_size=eval_cfg.batch_size, desc=desc, max_length=eval_cfg.max_length)]
    if stacked_sampling.supports(model):
        comps = stacked_sampling.generate_stacked(model, weights, tokenizer, prompts,
                                                  max_new_tokens=eval_cfg.max_new_tokens,
                                                  max_length=eval_cfg.max_length,
                                                  batch_size=eval_cfg.batch_size, desc=desc)
    else:
        own = {n: p.detach().clone() for n, p in model.named_parameters()}
        comps = []
        with torch.no_grad():
            for w in weights:
                for n, p in model.named_parameters():
                    p.copy_(w.get(n, own[n]))
                comps.append(generate(model, tokenizer, prompts, max_new_tokens=eval_cfg.max_new_tokens,
                                      temperature=0.0, batch_size=eval_cfg.batch_size, desc=desc,
                                      max_length=eval_cfg.max_length))
            for n, p in model.named_parameters():
                p.copy_(own[n])
    return comps


def write_records(task, problems, password: str | None, comps: list[str], out: Path | None) -> dict:
    """Score `comps` (completions of `problems` in order) and write the records to `out`."""
    return _score(task, problems, [task.prompt(p, password) for p in problems], comps, out)
