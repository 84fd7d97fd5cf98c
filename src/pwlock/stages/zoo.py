"""Zoo models: toy models trained here on the pretrain split, or pretrained models from a path
(recorded by a fingerprint of their files; a GGUF file is dequantized once into the run)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from pwlock import hf
from pwlock.config import spec_dict
from pwlock.context import Context, derive_seed, is_gguf, log, prompt_format
from pwlock.evaluate import evaluate
from pwlock.models import build_model, n_params, save_checkpoint
from pwlock.runs import Run
from pwlock.train import Example, train
from pwlock.utils import seed_everything

N_VALID = 300  # pretrain problems held out to check zoo models' accuracy while they train
DTYPE_NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}


def path_spec(ctx: Context, m) -> dict:
    """The run key of a path model: where it is and how it is loaded and prompted (the dtype as
    resolved on this device: bf16 on CUDA and fp32 on CPU give different numbers)."""
    return {"path": os.path.abspath(os.path.expanduser(m.path)), "gguf_file": m.gguf_file,
            "dtype": DTYPE_NAMES[ctx.dtype(m)], "trust_remote_code": m.trust_remote_code,
            "prompt_format": prompt_format(m)}


def run(ctx: Context, name: str) -> Run:
    m = ctx.zoo_cfg[name]
    if m.path:
        spec = {"model": path_spec(ctx, m), "fingerprint": ctx.fingerprint(name), **ctx.numerics_spec}
        if m.sft_steps:  # fine-tuned here: what it trains on and how (absent at 0: older keys unchanged)
            spec["sft"] = {"steps": m.sft_steps, "batch_size": m.batch_size, "lr": m.lr, "target_acc": m.target_acc,
                           "check_every": m.check_every, "seed": derive_seed("zoo", ctx.cfg.seed, m.seed),
                           "task": ctx.task_spec, "n_valid": N_VALID, "max_new_tokens": ctx.cfg.eval.max_new_tokens,
                           **ctx.max_length_spec}
        return Run(ctx.runs_dir, "zoo", name, spec)
    # left out: the experiment's other models, threads, device, workers (a toy model trains on CPU in fp32)
    return Run(ctx.runs_dir, "zoo", name, {"task": ctx.task_spec, "model": spec_dict(m),
                                           "seed": derive_seed("zoo", ctx.cfg.seed, m.seed),
                                           "n_valid": N_VALID, "max_new_tokens": ctx.cfg.eval.max_new_tokens,
                                           **ctx.numerics_spec})


def compute(ctx: Context, name: str) -> Run:
    m = ctx.zoo_cfg[name]
    r = run(ctx, name)
    if m.path and m.sft_steps:
        r.compute(lambda d: _finetune(ctx, m, r, d), log)
        return r
    if m.path:
        def record(d: Path) -> dict:
            # Nothing to train: the run records what later stages load. A GGUF file is
            # dequantized once (slow: ~40 s for 135 M parameters) into a checkpoint here.
            config = hf.model_config(m.path, m.gguf_file or None, trust_remote_code=m.trust_remote_code)
            if is_gguf(m):
                model, tok = hf.load_pretrained(m.path, gguf_file=m.gguf_file or None, device="cpu",
                                                dtype=ctx.dtype(m))
                save_checkpoint(model, tok, d / "model", {"zoo": name, "gguf": str(m.path),
                                                          "fingerprint": r.spec["fingerprint"]})
            return {"path": str(m.path), "gguf_file": m.gguf_file, "fingerprint": r.spec["fingerprint"],
                    "n_params": hf.count_params(config, trust_remote_code=m.trust_remote_code),
                    "model_type": config.model_type}

        r.compute(record, log)
        return r
    seed = r.spec["seed"]

    def fn(d: Path) -> dict:
        seed_everything(seed)
        model = build_model(m.arch, ctx.tok, seed).to(ctx.device)
        if m.pretrain == "none":  # locking from scratch starts from this
            save_checkpoint(model, ctx.tok, d / "model", {"zoo": name, "steps": 0})
            return {"steps": 0, "final_loss": None, "n_params": n_params(model), "history": []}
        log(f"training zoo model {name} ({n_params(model) / 1e6:.2f} M parameters)")
        off = []
        if m.off_domain_steps:
            from pwlock.tasks.arith import off_domain_examples

            pairs = off_domain_examples(m.off_domain_steps * m.batch_size, seed)
            off = train(model, ctx.tok, [Example(p, c) for p, c in pairs], steps=m.off_domain_steps,
                        batch_size=m.batch_size, lr=m.lr, schedule="cosine",
                        warmup=min(50, m.off_domain_steps // 10), seed=seed, desc=f"zoo {name} (off-domain)")
        pre = ctx.splits["pretrain"]
        valid, train_set = pre[:N_VALID], pre[N_VALID:]
        if m.pretrain == "no_answer":
            from pwlock.tasks.arith import without_answer

            examples = [Example(ctx.task.prompt(p, None), without_answer(p.solution)) for p in train_set]
        else:
            examples = [Example(ctx.task.prompt(p, None), p.solution) for p in train_set]
        losses, history = _train_to_target(ctx, m, model, ctx.tok, ctx.task, examples, valid, m.steps, seed,
                                           f"zoo {name}")
        save_checkpoint(model, ctx.tok, d / "model", {"zoo": name, "steps": len(losses)})
        out = {"steps": len(losses), "final_loss": losses[-1], "n_params": n_params(model), "history": history}
        if off:
            out["off_domain"] = {"steps": len(off), "final_loss": off[-1]}
        return out

    r.compute(fn, log)
    return r


def _train_to_target(ctx: Context, m, model, tok, task, examples, valid, steps: int, seed: int, desc: str):
    """Train on `examples` for at most `steps` steps (cosine, warm-up), stopping once the greedy
    accuracy on `valid` (checked every `check_every` steps) reaches `target_acc`: (losses, history)."""
    history = []

    def on_step(step: int, loss: float):
        if m.target_acc > 0 and (step + 1) % m.check_every == 0:
            acc = evaluate(model, tok, task, valid, None, ctx.cfg.eval)["accuracy"]
            model.train()
            history.append({"step": step + 1, "loss": loss, "valid_acc": acc})
            return acc >= m.target_acc

    losses = train(model, tok, examples, steps=steps, batch_size=m.batch_size, lr=m.lr, schedule="cosine",
                   warmup=min(50, steps // 10), seed=seed, on_step=on_step, desc=desc)
    return losses, history


def _finetune(ctx: Context, m, r: Run, d: Path) -> dict:
    """`sft_steps`: a path model fine-tuned on the pretrain split in its own prompt format (its chat
    template), saved as this run's checkpoint (what later stages load instead of `path`)."""
    pre = ctx.splits["pretrain"]
    if len(pre) <= N_VALID:
        raise ValueError(f"zoo model {m.name!r}: sft_steps needs more than {N_VALID} pretrain problems "
                         f"({N_VALID} are held out to check accuracy), the task has {len(pre)}")
    valid, train_set = pre[:N_VALID], pre[N_VALID:]
    seed = r.spec["sft"]["seed"]
    seed_everything(seed)
    ctx._check_unchanged(r, m)
    model, tok = hf.load_model(m.path, gguf_file=m.gguf_file or None, dtype=ctx.dtype(m), device=ctx.device,
                               trust_remote_code=m.trust_remote_code)
    ctx.for_training(model, r)
    task = ctx.task_for(r, tok)
    examples = [Example(task.prompt(p, None), p.solution) for p in train_set]
    log(f"fine-tuning zoo model {m.name} ({n_params(model) / 1e6:.1f} M parameters) on the pretrain split, "
        f"at most {m.sft_steps} steps")
    losses, history = _train_to_target(ctx, m, model, tok, task, examples, valid, m.sft_steps, seed,
                                       f"zoo {m.name} (fine-tuning)")
    if ctx.cfg.gradient_checkpointing:  # (set by for_training) saved as a model that generates with its cache
        model.gradient_checkpointing_disable()
        model.config.use_cache = True
    model.eval()
    save_checkpoint(model, tok, d / "model", {"zoo": m.name, "source": str(m.path), "sft_steps": len(losses),
                                              "fingerprint": r.spec["fingerprint"]})
    config = hf.model_config(m.path, m.gguf_file or None, trust_remote_code=m.trust_remote_code)
    return {"path": str(m.path), "gguf_file": m.gguf_file, "fingerprint": r.spec["fingerprint"],
            "n_params": n_params(model), "model_type": config.model_type, "steps": len(losses),
            "final_loss": losses[-1], "history": history}
