"""Samples: a zoo model's completions of a split's problems (no password), at a temperature."""

from __future__ import annotations

from pathlib import Path

from pwlock.config import EvalConfig
from pwlock.context import Context, derive_seed, log
from pwlock.runs import Run
from pwlock.utils import read_jsonl, write_jsonl

DEFAULT_EVAL_BATCH = EvalConfig().batch_size


def run(ctx: Context, model_run: Run, split: str, temperature: float) -> Run:
    ec = ctx.cfg.eval
    spec = {"split": split, "temperature": temperature, "task": ctx.task_spec, "max_new_tokens": ec.max_new_tokens,
            "seed": derive_seed("samples", ctx.cfg.seed, split, temperature), **ctx.numerics_spec,
            **ctx.max_length_spec}
    # left out: the batch size of greedy sampling (it does not change greedy text), threads, device
    if temperature > 0 and ec.batch_size != DEFAULT_EVAL_BATCH and ec.backend != "vllm":
        spec["batch_size"] = ec.batch_size  # one random generator walks the batches: text depends on it
    if ec.backend != "transformers":
        spec["backend"] = ec.backend  # other random numbers, other kernels
    return Run(ctx.runs_dir, "samples", f"{model_run.name}-{split}", spec, {"model": model_run.id})


def compute(ctx: Context, model_run: Run, split: str, temperature: float) -> Run:
    r = run(ctx, model_run, split, temperature)
    seed = r.spec["seed"]

    def fn(d: Path) -> dict:
        probs = ctx.splits[split]
        task, prompts, comps = ctx.generate(model_run, "model", lambda t: [t.prompt(p, None) for p in probs],
                                            temperature, seed, f"sampling {model_run.name} on {split}")
        rows = [{"problem_id": p.id, "prompt": pr, "completion": c, "correct": task.score(p, c).correct,
                 "model": model_run.id, "temperature": temperature, "seed": seed}
                for p, pr, c in zip(probs, prompts, comps)]
        write_jsonl(d / "samples.jsonl", rows)
        return {"n": len(rows), "accuracy": sum(r["correct"] for r in rows) / len(rows)}

    r.compute(fn, log)
    return r


class EmptyCompletionsError(ValueError):
    """Every completion of a samples run is empty: there is nothing to lock to or to train on."""


def completions(r: Run) -> dict[str, str]:
    """problem id -> completion of a finished samples run."""
    return {x["problem_id"]: x["completion"] for x in read_jsonl(r.dir / "samples.jsonl")}


def check_not_empty(r: Run, comps) -> None:
    """Raise EmptyCompletionsError when every completion in `comps` (texts) is empty or blank: the
    model produced nothing (an EOS at once), and training on it would teach only that."""
    comps = list(comps)
    if comps and not any(c.strip() for c in comps):
        raise EmptyCompletionsError(f"samples run {r.id}: all {len(comps)} completions are empty (the model "
                                    f"{r.upstream.get('model', '?')} generated nothing); nothing to train on")
