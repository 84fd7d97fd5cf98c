"""Evaluation: greedy accuracy of one checkpoint on the test split, with or without password."""

from __future__ import annotations

from pathlib import Path

from pwlock.context import Context
from pwlock.evaluate import write_records
from pwlock.runs import Run


def run(ctx: Context, model_run: Run, ckpt: str, with_password: bool) -> Run:
    c = ctx.cfg
    # left out: the evaluation batch size (greedy text does not depend on it), threads, device
    spec = {"ckpt": ckpt, "password": [c.password.password, c.password.position] if with_password else None,
            "task": ctx.task_spec, "max_new_tokens": c.eval.max_new_tokens, **ctx.numerics_spec,
            **ctx.max_length_spec}
    if c.eval.backend != "transformers":
        spec["backend"] = c.eval.backend
    return Run(ctx.runs_dir, "eval", f"{model_run.name}-{ckpt}-{'pwd' if with_password else 'nopwd'}", spec,
               {"model": model_run.id})


def compute(ctx: Context, model_run: Run, ckpt: str, with_password: bool) -> dict:
    def fn(d: Path) -> dict:
        pw = ctx.cfg.password.password if with_password else None
        test = ctx.splits["test"]
        task, _, comps = ctx.generate(model_run, ckpt, lambda t: [t.prompt(p, pw) for p in test], 0.0, 0, None)
        return write_records(task, test, pw, comps, d / "records.jsonl")

    return run(ctx, model_run, ckpt, with_password).compute(fn)
