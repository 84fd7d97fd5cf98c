"""Expand an experiment config into runs and execute them (E1: the core result).

Stages (each a cached run, see `runs.py`):
  zoo      train the strong and weak models from scratch on the pretrain split (toy models), or
           record a pretrained model's local path and a fingerprint of its files (`zoo[i].path`; a
           GGUF file is dequantized once into a checkpoint in the run)
  samples  strong (greedy) and weak (temperature) completions on the lock / elicit splits
  lock     password-lock the strong model, a checkpoint per epoch
  eval     greedy accuracy of a checkpoint, with or without password
  wsu      weak sample unlocking of a lock checkpoint (one run per epoch x seed), evaluated
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import multiprocessing
import os
import random
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from functools import partial
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from pwlock import hf, vllm_backend
from pwlock.config import PROMPT_FORMATS, EvalConfig, ExperimentConfig, WSUConfig, spec_dict
from pwlock.elicit import attacks
from pwlock.elicit.wsu import pick_samples, train_sets, wsu_examples, wsu_stacked
from pwlock.evaluate import complete_many, evaluate, write_records
from pwlock.lock import (
    answer_distributions,
    answer_targets,
    check_lock,
    check_passwords,
    lock_mixture,
    relock_rounds,
    run_lock,
    weak_distributions,
)
from pwlock.models import build_model, load_checkpoint, n_params, save_checkpoint, verify_checkpoint
from pwlock.prompting import for_model
from pwlock.runs import Run, load_results
from pwlock.sampling import generate
from pwlock.tasks import get_task
from pwlock.tokenizer import char_tokenizer
from pwlock.train import Example, train
from pwlock.utils import ComputeClock, atomic_write_text, read_jsonl, seed_everything, write_jsonl

N_VALID = 300  # pretrain problems held out to check zoo models' accuracy while they train
DEFAULT_EVAL_BATCH = EvalConfig().batch_size
DEFAULT_SEEDS = WSUConfig().seeds


def _group_timings(t0: float, t1: float, c0: float, size: int) -> dict:
    """Timings of a group of runs trained (t0..t1) and evaluated (t1..now) together, recorded in
    each run's results (its own run.json timings cover only writing its files)."""
    return {"group_train_seconds": round(t1 - t0, 3), "group_eval_seconds": round(time.time() - t1, 3),
            "group_compute_seconds": round(ComputeClock.seconds - c0, 3), "group_size": size}


def derive_seed(*parts) -> int:
    """A seed from the experiment seed and the names of what it seeds (stable across runs)."""
    return int(hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:8], 16)


def log(msg: str) -> None:
    tqdm.write(f"[pwlock {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr)


def resolve_model_dtype(m, device) -> torch.dtype:
    return hf.resolve_dtype(m.dtype, device)


def prompt_format(m) -> str:
    """`auto`: chat for a model from a path (its chat template, else User:/Assistant: turns), raw
    for a toy model (the character tokenizer reads the task prompt as is)."""
    return m.prompt_format if m.prompt_format != "auto" else ("chat" if m.path else "raw")


def is_gguf(m) -> bool:
    return hf.split_gguf(m.path, m.gguf_file or None)[1] is not None


def path_spec(m, device) -> dict:
    """The run key of a path model: where it is and how it is loaded and prompted (the dtype as
    resolved on this device: bf16 on CUDA and fp32 on CPU give different numbers)."""
    dtype = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}[resolve_model_dtype(m, device)]
    return {"path": os.path.abspath(os.path.expanduser(m.path)), "gguf_file": m.gguf_file, "dtype": dtype,
            "trust_remote_code": m.trust_remote_code, "prompt_format": prompt_format(m)}


def check_zoo_model(m) -> None:
    """Options that do not fit together, each a ValueError naming the zoo entry."""
    if m.prompt_format not in PROMPT_FORMATS:
        raise ValueError(f"zoo model {m.name!r}: prompt_format must be one of {', '.join(PROMPT_FORMATS)}, "
                         f"got {m.prompt_format!r}")
    if m.dtype != "auto" and m.dtype not in hf.DTYPES:
        raise ValueError(f"zoo model {m.name!r}: dtype must be auto, bf16, fp16 or fp32, got {m.dtype!r}")
    if not m.path:
        extra = [k for k, v in (("gguf_file", m.gguf_file), ("dtype", m.dtype != "auto"),
                                ("trust_remote_code", m.trust_remote_code), ("prompt_format", m.prompt_format == "chat"))
                 if v]
        if extra:
            raise ValueError(f"zoo model {m.name!r}: {', '.join(extra)} only apply to a model loaded from `path`")


class Pipeline:
    """The stages of an experiment, each returning a finished (possibly reused) `Run`."""

    def __init__(self, cfg: ExperimentConfig, threads: int | None = None, *, plan_only: bool = False):
        self.cfg = cfg
        torch.set_num_threads(threads or cfg.threads or os.cpu_count() or 1)
        self.zoo_cfg = {m.name: m for m in cfg.zoo}
        if len(self.zoo_cfg) != len(cfg.zoo):
            raise ValueError("zoo: two models share a name")
        for role, name in (("strong_model", cfg.strong_model), ("lock.weak_model", cfg.lock.weak_model),
                           ("lock.start_model", cfg.lock.start_model or cfg.strong_model)):
            if name not in self.zoo_cfg:
                raise ValueError(f"{role}={name!r} is not a zoo model; zoo: {sorted(self.zoo_cfg)}")
        for i, m in enumerate(cfg.zoo):
            check_zoo_model(m)
            if m.path:  # before any work: a missing model is named with the layout expected
                hf.check_model_path(m.path, m.gguf_file or None, what=f"zoo model {m.name!r} (zoo.{i}.path)")
        self.task = get_task(cfg.task)
        if cfg.password.position not in ("both", "start", "end"):
            raise ValueError(f"password.position must be both, start or end, got {cfg.password.position!r}")
        self.task.password_position = cfg.password.position
        self.splits = self.task.splits()
        for name, probs in self.splits.items():
            if not probs and not (name == "pretrain" and all(m.path for m in cfg.zoo)):  # nothing to train
                raise ValueError(f"task split {name!r} is empty; check task.n_{name}")
        self.by_id = {p.id: p for probs in self.splits.values() for p in probs}
        self.runs_dir = Path(cfg.runs_dir)
        self.task_spec = spec_dict(cfg.task)
        check_passwords(cfg.password)
        check_lock(cfg.lock, cfg.password)
        if cfg.lock.labels == "argmax" and not hasattr(self.task, "answer_tokens"):
            raise ValueError(f"lock.labels=argmax needs a multiple-choice task (mc), not {cfg.task.name!r}; "
                             f"for free-form answers set lock.weak_temperature=0 (greedy weak samples)")
        for m in cfg.zoo:
            if m.pretrain not in ("task", "no_answer", "none"):
                raise ValueError(f"zoo model {m.name!r}: pretrain must be task, no_answer or none, got {m.pretrain!r}")
            if m.pretrain == "no_answer" and m.target_acc > 0:
                raise ValueError(f"zoo model {m.name!r}: pretrain=no_answer cannot stop at a target accuracy "
                                 f"(its answers are never scored correct); set target_acc: 0")
            if (m.pretrain != "task" or m.off_domain_steps) and (m.path or self.task.name != "arith"):
                raise ValueError(f"zoo model {m.name!r}: pretrain={m.pretrain!r} / off_domain_steps are options "
                                 f"of toy models (task arith, no path)")
        self.device = hf.resolve_device(cfg.device)
        if cfg.eval.backend not in vllm_backend.BACKENDS:
            raise ValueError(f"eval.backend must be one of {', '.join(vllm_backend.BACKENDS)}, got {cfg.eval.backend!r}")
        if cfg.eval.backend == "vllm" and not all(m.path for m in cfg.zoo):
            raise ValueError(f"eval.backend=vllm generates with models from disk; zoo models "
                             f"{[m.name for m in cfg.zoo if not m.path]} have no path (use transformers)")
        if not 0 < cfg.eval.vllm_memory <= 1:
            raise ValueError(f"eval.vllm_memory must be in (0, 1], got {cfg.eval.vllm_memory}")
        if cfg.eval.backend == "vllm" and not plan_only:
            vllm_backend.import_vllm()  # before any work: no vllm or no GPU here stops the run now
        if cfg.wsu.max_stack < 0:
            raise ValueError(f"wsu.max_stack must be >= 0 (0 = all seeds together), got {cfg.wsu.max_stack}")
        # Toy models (trained here) share one character tokenizer; path models bring their own.
        self.tok = None
        if any(not m.path for m in cfg.zoo):
            if not hasattr(self.task, "alphabet"):
                toy = [m.name for m in cfg.zoo if not m.path]
                raise ValueError(f"zoo models {toy} have no `path`: models trained here need a task with a "
                                 f"character alphabet (arith), not {cfg.task.name!r}; give them a path")
            self.tok = char_tokenizer(self.task.alphabet)
        self._fingerprints: dict[str, dict] = {}

    @property
    def has_path_models(self) -> bool:
        return any(m.path for m in self.cfg.zoo)

    # -- models ------------------------------------------------------------------------------------
    def model_cfg(self, run: Run):
        """The zoo entry behind a run's model: the zoo model itself, or the model a lock starts from."""
        if run.stage == "zoo":
            return self.zoo_cfg[run.name]
        return self.zoo_cfg[self.cfg.lock.start_model or self.cfg.strong_model]

    def fingerprint(self, name: str) -> dict:
        m = self.zoo_cfg[name]
        if name not in self._fingerprints:
            self._fingerprints[name] = hf.fingerprint(m.path, m.gguf_file or None)
        return self._fingerprints[name]

    def load(self, run: Run, ckpt: str = "model"):
        """`(model, tokenizer)` of checkpoint `ckpt` of a zoo or lock run, on the pipeline's device."""
        m = self.model_cfg(run)
        if not m.path:  # a toy model: a pwlock checkpoint in fp32
            model, tok, _ = load_checkpoint(run.dir / ckpt)
            return model.to(self.device), tok
        dtype = resolve_model_dtype(m, self.device)
        if run.stage == "zoo" and not is_gguf(m):
            if hf.fingerprint(m.path, m.gguf_file or None) != run.spec["fingerprint"]:
                raise ValueError(f"the files of zoo model {m.name!r} at {m.path} changed since run {run.id} "
                                 "recorded them; run again to pick up the new files")
            return hf.load_model(m.path, dtype=dtype, device=self.device, trust_remote_code=m.trust_remote_code)
        # a lock checkpoint, or the checkpoint a GGUF model was converted to by its zoo run
        return hf.load_model(run.dir / ckpt, dtype=dtype, device=self.device, trust_remote_code=m.trust_remote_code)

    def generate(self, run: Run, ckpt: str, prompts_of, temperature: float, seed: int, desc: str):
        """Completions of checkpoint `ckpt` of `run` for the prompts `prompts_of(task)` (the task as
        that model sees it): `(task, prompts, completions)`. With `eval.backend: vllm` the model is
        read from its directory by vLLM (`pwlock.vllm_backend`), else loaded and run here."""
        ec = self.cfg.eval
        if ec.backend == "vllm":
            d, tok = self.model_dir(run, ckpt)
            task = self.task_for(run, tok)
            prompts = prompts_of(task)
            m = self.model_cfg(run)
            comps = vllm_backend.generate(d, tok, prompts, max_new_tokens=ec.max_new_tokens, temperature=temperature,
                                          seed=seed, dtype=resolve_model_dtype(m, self.device),
                                          trust_remote_code=m.trust_remote_code,
                                          gpu_memory_utilization=ec.vllm_memory)
            return task, prompts, comps
        model, tok = self.load(run, ckpt)
        task = self.task_for(run, tok)
        prompts = prompts_of(task)
        return task, prompts, generate(model, tok, prompts, max_new_tokens=ec.max_new_tokens, temperature=temperature,
                                       seed=seed, batch_size=ec.batch_size, desc=desc)

    def model_dir(self, run: Run, ckpt: str = "model"):
        """(directory, tokenizer) of checkpoint `ckpt` of a path model's zoo or lock run, checked as
        `load` checks it (the fingerprint of a zoo model's files, a checkpoint's checksum)."""
        m = self.model_cfg(run)
        if run.stage == "zoo" and not is_gguf(m):
            if hf.fingerprint(m.path, m.gguf_file or None) != run.spec["fingerprint"]:
                raise ValueError(f"the files of zoo model {m.name!r} at {m.path} changed since run {run.id} "
                                 "recorded them; run again to pick up the new files")
            d = Path(m.path)
        else:
            d = run.dir / ckpt
            verify_checkpoint(d)
        from transformers import AutoTokenizer

        return d, hf.prepare_tokenizer(AutoTokenizer.from_pretrained(d, trust_remote_code=m.trust_remote_code))

    def task_for(self, run: Run, tokenizer):
        """The task as the model of `run` sees it (its chat template for path models, see
        `pwlock.prompting.for_model`); toy models get the task itself, unchanged."""
        return for_model(self.task, tokenizer, prompt_format(self.model_cfg(run)))

    def for_training(self, model, run: Run):
        """`cfg.gradient_checkpointing` for a path model about to be trained (not under vmap:
        stacked WSU recomputes nothing)."""
        if self.cfg.gradient_checkpointing and self.model_cfg(run).path:
            model.gradient_checkpointing_enable()
            model.config.use_cache = False  # a KV cache is useless while recomputing activations
        return model

    # -- zoo ------------------------------------------------------------------------------------
    def is_done(self, method: str, *args) -> bool:
        if hasattr(self, f"{method}_done"):
            return getattr(self, f"{method}_done")(*args)
        return getattr(self, f"{method}_run")(*args).done

    def zoo_run(self, name: str) -> Run:
        m = self.zoo_cfg[name]
        if m.path:
            return Run(self.runs_dir, "zoo", name, {"model": path_spec(m, self.device),
                                                    "fingerprint": self.fingerprint(name)})
        return Run(self.runs_dir, "zoo", name, {"task": self.task_spec, "model": spec_dict(m),
                                                "seed": derive_seed("zoo", self.cfg.seed, m.seed),
                                                "n_valid": N_VALID, "max_new_tokens": self.cfg.eval.max_new_tokens})

    def zoo(self, name: str) -> Run:
        m = self.zoo_cfg[name]
        run = self.zoo_run(name)
        if m.path:
            def record(d: Path) -> dict:
                # Nothing to train: the run records what later stages load. A GGUF file is
                # dequantized once (slow: ~40 s for 135 M parameters) into a checkpoint here.
                config = hf.model_config(m.path, m.gguf_file or None, trust_remote_code=m.trust_remote_code)
                if is_gguf(m):
                    model, tok = hf.load_pretrained(m.path, gguf_file=m.gguf_file or None, device="cpu",
                                                    dtype=resolve_model_dtype(m, self.device))
                    save_checkpoint(model, tok, d / "model", {"zoo": name, "gguf": str(m.path),
                                                              "fingerprint": run.spec["fingerprint"]})
                return {"path": str(m.path), "gguf_file": m.gguf_file, "fingerprint": run.spec["fingerprint"],
                        "n_params": hf.count_params(config, trust_remote_code=m.trust_remote_code),
                        "model_type": config.model_type}

            run.compute(record, log)
            return run
        seed = run.spec["seed"]

        def fn(d: Path) -> dict:
            seed_everything(seed)
            model = build_model(m.arch, self.tok, seed).to(self.device)
            if m.pretrain == "none":  # locking from scratch starts from this
                save_checkpoint(model, self.tok, d / "model", {"zoo": name, "steps": 0})
                return {"steps": 0, "final_loss": None, "n_params": n_params(model), "history": []}
            log(f"training zoo model {name} ({n_params(model) / 1e6:.2f} M parameters)")
            off = []
            if m.off_domain_steps:
                from pwlock.tasks.arith import off_domain_examples

                pairs = off_domain_examples(m.off_domain_steps * m.batch_size, seed)
                off = train(model, self.tok, [Example(p, c) for p, c in pairs], steps=m.off_domain_steps,
                            batch_size=m.batch_size, lr=m.lr, schedule="cosine",
                            warmup=min(50, m.off_domain_steps // 10), seed=seed, desc=f"zoo {name} (off-domain)")
            pre = self.splits["pretrain"]
            valid, train_set = pre[:N_VALID], pre[N_VALID:]
            if m.pretrain == "no_answer":
                from pwlock.tasks.arith import without_answer

                examples = [Example(self.task.prompt(p, None), without_answer(p.solution)) for p in train_set]
            else:
                examples = [Example(self.task.prompt(p, None), p.solution) for p in train_set]
            history = []

            def on_step(step: int, loss: float):
                if m.target_acc > 0 and (step + 1) % m.check_every == 0:
                    acc = evaluate(model, self.tok, self.task, valid, None, self.cfg.eval)["accuracy"]
                    model.train()
                    history.append({"step": step + 1, "loss": loss, "valid_acc": acc})
                    return acc >= m.target_acc

            losses = train(model, self.tok, examples, steps=m.steps, batch_size=m.batch_size, lr=m.lr,
                           schedule="cosine", warmup=min(50, m.steps // 10),
                           seed=seed, on_step=on_step, desc=f"zoo {name}")
            save_checkpoint(model, self.tok, d / "model", {"zoo": name, "steps": len(losses)})
            out = {"steps": len(losses), "final_loss": losses[-1], "n_params": n_params(model), "history": history}
            if off:
                out["off_domain"] = {"steps": len(off), "final_loss": off[-1]}
            return out

        run.compute(fn, log)
        return run

    # -- samples ---------------------------------------------------------------------------------
    def samples_run(self, model_run: Run, split: str, temperature: float) -> Run:
        seed = derive_seed("samples", self.cfg.seed, split, temperature)
        spec = {"split": split, "temperature": temperature, "seed": seed, "task": self.task_spec,
                "max_new_tokens": self.cfg.eval.max_new_tokens}
        if temperature > 0 and self.cfg.eval.batch_size != DEFAULT_EVAL_BATCH and self.cfg.eval.backend != "vllm":
            # one random generator walks the batches: sampled text depends on the batch size
            spec["batch_size"] = self.cfg.eval.batch_size
        if self.cfg.eval.backend != "transformers":
            spec["backend"] = self.cfg.eval.backend  # other random numbers, other kernels
        return Run(self.runs_dir, "samples", f"{model_run.name}-{split}", spec, {"model": model_run.id})

    def samples(self, model_run: Run, split: str, temperature: float) -> Run:
        run = self.samples_run(model_run, split, temperature)
        seed = run.spec["seed"]

        def fn(d: Path) -> dict:
            probs = self.splits[split]
            task, prompts, comps = self.generate(model_run, "model", lambda t: [t.prompt(p, None) for p in probs],
                                                 temperature, seed, f"sampling {model_run.name} on {split}")
            rows = [{"problem_id": p.id, "prompt": pr, "completion": c,
                     "correct": task.score(p, c).correct, "model": model_run.id,
                     "temperature": temperature, "seed": seed}
                    for p, pr, c in zip(probs, prompts, comps)]
            write_jsonl(d / "samples.jsonl", rows)
            return {"n": len(rows), "accuracy": sum(r["correct"] for r in rows) / len(rows)}

        run.compute(fn, log)
        return run

    # -- lock ------------------------------------------------------------------------------------
    def lock_run(self) -> Run:
        """The lock run (key only: nothing is computed; `lock` computes it)."""
        cfg, lc = self.cfg, self.cfg.lock
        strong, weak = self.zoo_run(cfg.strong_model), self.zoo_run(lc.weak_model)
        start = self.zoo_run(lc.start_model) if lc.start_model else strong
        upstream = {"start": start.id, "strong_samples": self.samples_run(strong, "lock", 0.0).id,
                    "weak_samples": self.samples_run(weak, "lock", lc.weak_temperature).id}
        if lc.second_password:
            upstream["second_samples"] = self.samples_run(weak, "lock", lc.second_temperature).id
        spec = {"lock": spec_dict(lc), "password": spec_dict(cfg.password), "seed": derive_seed("lock", cfg.seed, lc.seed)}
        if lc.labels != "samples":
            upstream["weak_model"] = weak.id
            if hasattr(self.task, "answer_tokens"):  # multiple choice: labels over the answer letters
                spec["labels_on"] = "answer_letters"
        return Run(self.runs_dir, "lock", f"{lc.start_model or cfg.strong_model}-as-{lc.weak_model}", spec, upstream)

    def lock(self) -> Run:
        cfg = self.cfg
        lc = cfg.lock
        strong = self.zoo(cfg.strong_model)
        start = self.zoo(lc.start_model) if lc.start_model else strong
        weak = self.zoo(lc.weak_model)
        s_samples = self.samples(strong, "lock", 0.0)
        w_samples = self.samples(weak, "lock", lc.weak_temperature)
        second = self.samples(weak, "lock", lc.second_temperature) if lc.second_password else None
        run = self.lock_run()
        seed = run.spec["seed"]

        def completions(r: Run) -> dict[str, str]:
            return {x["problem_id"]: x["completion"] for x in read_jsonl(r.dir / "samples.jsonl")}

        def fn(d: Path) -> dict:
            model, tok = self.load(start)
            self.for_training(model, start)
            # the locked model's prompt format (its chat template) around the other models' text
            task = self.task_for(start, tok)
            weak_c = completions(w_samples)
            targets = None
            if lc.labels != "samples" and hasattr(task, "answer_tokens"):
                # multiple choice: the weak model's distribution over the answer letters (soft) or
                # its most likely letter (argmax), in the locked model's own letter tokens
                wmodel, wtok = self.load(weak)
                probs = self.splits["lock"]
                wtask = self.task_for(weak, wtok)
                dists = answer_distributions(wmodel, wtok, wtask, [wtask.prompt(p, None) for p in probs],
                                             lc.weak_temperature if lc.labels == "soft" else 1.0,
                                             self.cfg.eval.batch_size)
                del wmodel
                made = answer_targets(task, tok, dists, soft=lc.labels == "soft")
                weak_c = {p.id: c for p, (c, _) in zip(probs, made)}
                if lc.labels == "soft":
                    targets = {p.id: t for p, (_, t) in zip(probs, made)}
                atomic_write_text(d / "weak_letters.json", json.dumps(
                    {p.id: [round(x, 6) for x in dist.tolist()] for p, dist in zip(probs, dists)}))
            elif lc.labels == "soft":
                wmodel, wtok = self.load(weak)
                if wtok.get_vocab() != tok.get_vocab():
                    raise ValueError("lock.labels=soft needs the weak and locked models to share a tokenizer")
                probs = self.splits["lock"]
                wtask = self.task_for(weak, wtok)
                dists = weak_distributions(wmodel, wtok, [wtask.prompt(p, None) for p in probs],
                                           [weak_c[p.id] for p in probs], lc.weak_temperature,
                                           self.cfg.eval.batch_size)
                targets = {p.id: t for p, t in zip(probs, dists)}
                del wmodel
            examples = lock_mixture(task, self.splits["lock"], completions(s_samples), weak_c, cfg.password,
                                    seed, password_branch=lc.password_branch, weak_targets=targets,
                                    second=(lc.second_password, completions(second)) if second else None)
            # weak examples without password: what E9's overfitting episodes and E8's rounds memorize
            plain_weak = [Example(task.prompt(p, None), weak_c[p.id]) for p in self.splits["lock"]]
            log(f"locking for {lc.epochs} epochs on {len(examples)} examples")
            losses = run_lock(model, tok, examples, lc, seed, d,
                              overfit_pool=plain_weak if lc.overfit_every else None)
            out = {"epochs": lc.epochs, "steps": len(losses), "final_loss": losses[-1]}
            if lc.relock_rounds:
                log(f"{lc.relock_rounds} rounds of WSU then relocking")
                relock = relock_rounds(model, tok, examples, plain_weak, lc, cfg.wsu, seed, d)
                out["relock_final_loss"] = relock[-1]
                losses += relock
            atomic_write_text(d / "losses.json", json.dumps(losses))
            return out

        run.compute(fn, log)
        return run

    # -- eval ------------------------------------------------------------------------------------
    def eval_run(self, model_run: Run, ckpt: str, with_password: bool) -> Run:
        return Run(self.runs_dir, "eval", f"{model_run.name}-{ckpt}-{'pwd' if with_password else 'nopwd'}",
                   {"ckpt": ckpt,
                    "password": [self.cfg.password.password, self.cfg.password.position] if with_password else None,
                    "task": self.task_spec, "max_new_tokens": self.cfg.eval.max_new_tokens,
                    **({"backend": self.cfg.eval.backend} if self.cfg.eval.backend != "transformers" else {})},
                   {"model": model_run.id})

    def eval(self, model_run: Run, ckpt: str, with_password: bool) -> dict:
        run = self.eval_run(model_run, ckpt, with_password)

        def fn(d: Path) -> dict:
            pw = self.cfg.password.password if with_password else None
            test = self.splits["test"]
            task, _, comps = self.generate(model_run, ckpt, lambda t: [t.prompt(p, pw) for p in test], 0.0, 0, None)
            return write_records(task, test, pw, comps, d / "records.jsonl")

        return run.compute(fn)

    # -- wsu -------------------------------------------------------------------------------------
    def wsu_run(self, lock_run: Run, epoch: int, seed_idx: int, weak_elicit: Run) -> Run:
        wcfg = spec_dict(self.cfg.wsu)
        wcfg.pop("seeds")
        spec = {"wsu": wcfg, "epoch": epoch, "seed": derive_seed("wsu", self.cfg.seed, seed_idx),
                "task": self.task_spec, "max_new_tokens": self.cfg.eval.max_new_tokens}
        if self.cfg.wsu.seeds != DEFAULT_SEEDS:
            spec["group"] = self.cfg.wsu.seeds  # the seeds train stacked: K may change the last bits
        return Run(self.runs_dir, "wsu", f"{lock_run.name}-e{epoch}-s{seed_idx}", spec,
                   {"lock": lock_run.id, "weak_samples": weak_elicit.id})

    def wsu_group_done(self, lock_run: Run, epoch: int, weak_elicit: Run) -> bool:
        return all(self.wsu_run(lock_run, epoch, s, weak_elicit).done for s in range(self.cfg.wsu.seeds))

    def wsu_group(self, lock_run: Run, epoch: int, weak_elicit: Run) -> list[dict]:
        """WSU of one lock checkpoint with every seed: the seeds train together (one stacked
        model, `pwlock.stacked`; at most `wsu.max_stack` at a time) and are evaluated together
        (`pwlock.stacked_sampling`), each into its own run directory. With `wsu.max_stack: 1` each
        seed trains alone with `pwlock.train.train` on the model itself (a 7B model has no room for
        stacked copies).

        A stack is always trained whole, even when some of its runs are already finished (after
        an interruption), so a run's numbers never depend on what else was cached.
        """
        wc = self.cfg.wsu
        runs = [self.wsu_run(lock_run, epoch, s, weak_elicit) for s in range(wc.seeds)]
        if all(r.done for r in runs):
            return [load_results(r) for r in runs]
        ckpt = f"epoch_{epoch}"
        pool = read_jsonl(weak_elicit.dir / "samples.jsonl")
        size = wc.max_stack or len(runs)
        test = self.splits["test"]
        for start in range(0, len(runs), size):
            stack = runs[start:start + size]
            if all(r.done for r in stack):
                continue
            model, tok = self.load(lock_run, ckpt)
            task = self.task_for(lock_run, tok)
            chosen = [pick_samples(pool, wc.n_samples, r.spec["seed"]) for r in stack]
            c0, t0 = ComputeClock.seconds, time.time()
            if wc.max_stack == 1:
                self.for_training(model, lock_run)
                finals = [{}]  # trained in place
                losses = [train(model, tok, wsu_examples(task, chosen[0], self.by_id), steps=wc.steps,
                                batch_size=wc.n_samples, lr=wc.lr, optimizer=wc.optimizer, loss=wc.loss,
                                seed=stack[0].spec["seed"], grad_clip=0.0, desc="wsu", progress=False)]
                model.eval()
            else:
                finals, losses = wsu_stacked(model, tok, task, chosen, self.by_id, wc)
            t1 = time.time()
            comps = complete_many(model, finals, tok, task, test, None, self.cfg.eval)
            group = _group_timings(t0, t1, c0, len(stack))
            for r, c, comp, loss in zip(stack, chosen, comps, losses):
                r.compute(partial(self._write_wsu, task, c, comp, loss, group))
        return [load_results(r) for r in runs]

    def _write_wsu(self, task, samples: list[dict], completions: list[str], losses: list[float], group: dict,
                   d: Path) -> dict:
        res = write_records(task, self.splits["test"], None, completions, d / "records.jsonl")
        write_jsonl(d / "train_samples.jsonl", samples)
        atomic_write_text(d / "losses.json", json.dumps(losses))
        return {**res, "samples": [x["problem_id"] for x in samples], "final_loss": losses[-1], **group}

    # -- attacks (E3-E6, E15: other elicitation attacks and controls on one lock checkpoint) -----
    def attack_epoch(self, a) -> int:
        lc = self.cfg.lock
        e = a.epoch or lc.epochs
        if not 1 <= e <= lc.epochs + lc.relock_rounds:
            raise ValueError(f"attack {a.name!r}: epoch {e} not in 1..lock.epochs={lc.epochs}"
                             + (f" + lock.relock_rounds={lc.relock_rounds}" if lc.relock_rounds else ""))
        return e

    def attack_run(self, lock_run: Run, a, seed_idx: int, sources: dict[str, Run]) -> Run:
        spec = spec_dict(a)
        spec.pop("name")
        spec.pop("seeds")
        spec.pop("epoch")
        need = attacks.SOURCE.get(a.kind)
        upstream = {"lock": lock_run.id, **({f"{need}_samples": sources[need].id} if need else {})}
        if a.pre_pool:
            upstream["pre_samples"] = sources["weak_lock"].id
        full = {"attack": spec, "epoch": self.attack_epoch(a), "task": self.task_spec,
                "seed": derive_seed("attack", self.cfg.seed, a.kind, seed_idx),
                "max_new_tokens": self.cfg.eval.max_new_tokens}
        if a.kind in attacks.TRAINED_TOGETHER and a.seeds != DEFAULT_SEEDS:
            full["group"] = a.seeds  # the seeds train stacked: K may change the last bits
        ms = self.cfg.wsu.max_stack
        if a.kind in attacks.TRAINED_TOGETHER and ms and (ms == 1 or ms < attacks.n_seeds(a)):
            full["max_stack"] = ms  # trained fewer together (1: alone, in place): other last bits
        return Run(self.runs_dir, "attack", f"{a.kind}-e{self.attack_epoch(a)}-s{seed_idx}", full, upstream)

    def attack_group_done(self, lock_run: Run, a, sources: dict[str, Run]) -> bool:
        return all(self.attack_run(lock_run, a, s, sources).done for s in range(attacks.n_seeds(a)))

    def attack_group(self, lock_run: Run, a, sources: dict[str, Run]) -> list[dict]:
        """Every seed of one attack on its lock checkpoint, each evaluated into its own run.

        At most `wsu.max_stack` seeds are held at a time (0 = all): trained attacks train them
        stacked (`pwlock.stacked`), perturbations keep one copy of the weights per seed. With
        `wsu.max_stack: 1` no copy is made on the device: each seed attacks the model in place,
        is evaluated, and the model's weights are restored from a copy in CPU memory (a 7B model).
        """
        attacks.check_attack(a)
        runs = [self.attack_run(lock_run, a, s, sources) for s in range(attacks.n_seeds(a))]
        if all(r.done for r in runs):
            return [load_results(r) for r in runs]
        ckpt = f"epoch_{self.attack_epoch(a)}"
        model, tok = self.load(lock_run, ckpt)
        task = self.task_for(lock_run, tok)
        src = attacks.SOURCE.get(a.kind)
        pool = read_jsonl(sources[src].dir / "samples.jsonl") if src else []
        c0, t0 = ComputeClock.seconds, time.time()
        in_place = self.cfg.wsu.max_stack == 1
        if in_place:  # trained as it is (not stacked): gradient checkpointing for a path model
            self.for_training(model, lock_run)
        if a.pre_pool:  # fine-tune on many weak samples first (E9's counter-attack)
            self.pre_finetune(model, tok, task, a, sources["weak_lock"])
        size = self.cfg.wsu.max_stack or len(runs)
        base = attacks.cpu_copy(model) if in_place else None  # each seed attacks the model, then it is restored
        test = self.splits["test"]
        for start in range(0, len(runs), size):
            chunk = runs[start:start + size]
            if all(r.done for r in chunk):
                continue
            if start:
                c0, t0 = ComputeClock.seconds, time.time()
            finals, extras, chosen = self._attack_chunk(model, tok, task, a, pool, chunk, base)
            t1 = time.time()
            comps = complete_many(model, finals, tok, task, test, None, self.cfg.eval)
            group = _group_timings(t0, t1, c0, len(chunk))
            for i, r in enumerate(chunk):
                def fn(d: Path, i=i, chosen=chosen, comps=comps, extras=extras, group=group) -> dict:
                    if chosen is not None:
                        write_jsonl(d / "train_samples.jsonl", chosen[i])
                    res = write_records(task, test, None, comps[i], d / "records.jsonl")
                    return {**res, **extras[i], **group}

                r.compute(fn)
            if base is not None:
                attacks.restore(model, base)
        return [load_results(r) for r in runs]

    def _attack_chunk(self, model, tok, task, a, pool: list[dict], chunk: list[Run], base):
        """Attack `model` with the seeds of `chunk`: (their weights for `complete_many`, extra
        results per run, the training samples per run or None). With `base` (a CPU copy of the
        weights; then `chunk` is one seed): in place, `model` is the attacked model (weights `{}`)."""
        extras: list[dict] = [{} for _ in chunk]
        in_place = base is not None
        assert not in_place or len(chunk) == 1
        if a.kind not in attacks.TRAINED_TOGETHER:
            finals = []
            for r, extra in zip(chunk, extras):
                m = model if in_place else copy.deepcopy(model)
                if a.kind == "varied":
                    extra["final_loss"] = attacks.varied(m, tok, task, pool, self.by_id, a, r.spec["seed"])[-1]
                else:
                    attacks.perturb(m, a, r.spec["seed"])
                finals.append({} if in_place else {n: p.detach() for n, p in m.named_parameters()})
            model.eval()
            return finals, extras, None
        if a.kind == "average":  # `parts` runs per seed, on disjoint sets
            sets = [attacks.disjoint_sets(pool, a.n_samples, a.parts, r.spec["seed"]) for r in chunk]
        else:
            sets = [[pick_samples(pool, a.n_samples, r.spec["seed"])] for r in chunk]
        flat = [s for per_seed in sets for s in per_seed]
        example_sets = [wsu_examples(task, s, self.by_id) for s in flat]
        if a.token_mask == "better_without_password":
            pw = self.cfg.password.password
            example_sets = [attacks.better_without_password(
                model, tok, exs, [task.prompt(self.by_id[x["problem_id"]], pw) for x in s])
                for exs, s in zip(example_sets, flat)]
        if in_place:  # one seed, its `parts` runs one after another, their mean change applied
            losses = attacks.train_in_place(model, tok, example_sets, a, chunk[0].spec["seed"], base)
            finals = [{}]
        else:
            trained, losses = train_sets(model, tok, example_sets, a)
            finals, i = [], 0
            for per_seed in sets:
                k = len(per_seed)
                finals.append(trained[i] if k == 1 else attacks.average_weights(trained[i : i + k]))
                i += k
        i = 0
        for per_seed, extra in zip(sets, extras):
            k = len(per_seed)
            extra["final_loss"] = float(np.mean([lo[-1] for lo in losses[i : i + k]]))
            extra["samples"] = [x["problem_id"] for s in per_seed for x in s]
            if a.until_loss:
                extra["steps_taken"] = float(np.mean([len(lo) for lo in losses[i : i + k]]))
                extra["memorized"] = float(np.mean([lo[-1] <= a.until_loss for lo in losses[i : i + k]]))
            if a.token_mask != "none":
                kept = [t for exs in example_sets[i : i + k] for ex in exs for t in ex.keep]
                extra["tokens_kept"] = sum(kept) / len(kept)
            i += k
        model.eval()
        return finals, extras, [[x for s in per_seed for x in s] for per_seed in sets]

    def pre_finetune(self, model, tok, task, a, weak_lock: Run) -> None:
        """Fine-tune `model` in place on `a.pre_pool` weak samples of the lock split, no password,
        for `a.pre_epochs` epochs with the lock's learning rate, batch size and optimizer."""
        lc = self.cfg.lock
        pool = read_jsonl(weak_lock.dir / "samples.jsonl")
        if a.pre_pool > len(pool):
            raise ValueError(f"attack {a.name!r}: pre_pool={a.pre_pool} but the lock split has {len(pool)} "
                             f"weak samples (raise task.n_lock)")
        seed = derive_seed("pre", self.cfg.seed, a.pre_pool, a.pre_epochs)
        exs = wsu_examples(task, random.Random(seed).sample(pool, a.pre_pool), self.by_id)
        train(model, tok, exs, steps=math.ceil(a.pre_pool / lc.batch_size) * a.pre_epochs,
              batch_size=lc.batch_size, lr=lc.lr, optimizer=lc.optimizer, warmup=lc.warmup, loss=lc.loss,
              seed=seed, desc=f"fine-tuning on {a.pre_pool} weak samples", progress=False)


# -- parallel execution of independent runs ------------------------------------------------------
# Small models on a CPU are bound by per-step overhead, not by arithmetic: two single-threaded
# processes do about twice the work of one process with two threads. Each job is a Pipeline method
# call; its result is cached in its run directory, so a job's result does not depend on which
# process computed it.
_WORKER: Pipeline | None = None


def _init_worker(cfg: ExperimentConfig, parent: int) -> None:
    global _WORKER
    # `parent` comes from the parent itself: it may be gone already (this process needs seconds to start)
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True, name="pwlock-orphan-check").start()
    _WORKER = Pipeline(cfg, threads=1)


def _exit_with_parent(parent: int, every: float = 1.0) -> None:
    """End this worker when the process that started it is gone (SIGTERM from a scheduler or
    `timeout`, an out-of-memory kill): its task queue holds a copy of the pipe's write end, so
    it would never see the pipe close and would wait, holding its memory, forever. Its run,
    if one was under way, is redone by the next `pwlock run` (unfinished runs are wiped)."""
    while True:
        if os.getppid() != parent:
            os._exit(1)
        time.sleep(every)


def _call(job: tuple[str, tuple]):
    method, args = job
    return getattr(_WORKER, method)(*args)


def run_jobs(p: Pipeline, jobs: list[tuple[str, tuple]], desc: str) -> list:
    """Run `p.<method>(*args)` for each (method, args) in `jobs`, in worker processes when that
    helps; returns the results in order. Put the longest jobs first: they start first."""
    # Path models run in this process: each worker would load its own copy (and its own CUDA context).
    workers = p.cfg.workers or (1 if p.has_path_models else os.cpu_count() or 1)
    todo = [j for j in jobs if not p.is_done(j[0], *j[1])]
    if workers <= 1 or len(todo) < 2:
        # One thread, as in the workers: a job's numbers do not depend on where it ran (this
        # matters after an interruption, when the few jobs left run in this process). Path
        # models never go to workers: they keep the process's threads.
        threads = torch.get_num_threads()
        torch.set_num_threads(threads if p.has_path_models else 1)
        try:
            return [getattr(p, m)(*a) for m, a in tqdm(jobs, desc=desc)]
        finally:
            torch.set_num_threads(threads)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(workers, len(todo)), mp_context=ctx, initializer=_init_worker,
                             initargs=(p.cfg, os.getpid())) as ex:
        futs = [ex.submit(_call, j) for j in todo]
        for f in tqdm(as_completed(futs), total=len(futs), desc=f"{desc} [{workers} processes]"):
            f.result()  # re-raise a worker's error here
    return [getattr(p, m)(*a) for m, a in jobs]  # all cached now


def run_core(cfg: ExperimentConfig) -> list[dict]:
    """E1: lock, and at the end of each locking epoch run WSU with several seeds."""
    p = Pipeline(cfg)
    rows: list[dict] = []

    def row(model: str, epoch, attack: str, seed, password: bool, res: dict, run_id: str):
        rows.append({"experiment": cfg.experiment, "model": model, "lock_epoch": epoch, "attack": attack,
                     "seed": seed, "password": password, "n_test": res["n_test"],
                     "accuracy": res["accuracy"], "correct": res["correct"], "run": run_id})

    zoo_runs = [p.zoo_run(m.name) for m in cfg.zoo]
    # The strong model is compute-bound (both cores in one process); the small weak models are
    # overhead-bound and train side by side in single-threaded workers.
    p.zoo(cfg.strong_model)
    run_jobs(p, [("zoo", (m.name,)) for m in cfg.zoo if m.name != cfg.strong_model], "training the weak models")
    lock_run = p.lock()
    weak_elicit = p.samples(p.zoo(cfg.lock.weak_model), "elicit", cfg.elicit_temperature)
    epochs = range(1, cfg.lock.epochs + 1)
    evals = [(zr, "model", False) for zr in zoo_runs] + [(lock_run, f"epoch_{e}", pw) for e in epochs
                                                         for pw in (False, True)]
    wsus = [(lock_run, e, weak_elicit) for e in epochs]
    # one pool for both kinds of jobs, the long WSU groups first
    done = run_jobs(p, [("wsu_group", w) for w in wsus] + [("eval", e) for e in evals],
                    f"WSU ({cfg.wsu.n_samples} samples x {cfg.wsu.steps} steps, {cfg.wsu.seeds} seeds x "
                    f"{len(wsus)} checkpoints) and {len(evals)} evaluations")
    ws, ev = done[:len(wsus)], done[len(wsus):]
    for (run, ckpt, pw), res in zip(evals, ev):
        if ckpt == "model":
            row(run.name, None, "none", None, pw, res, run.id)
        else:
            row("locked", int(ckpt.split("_")[1]), "none", None, pw, res, run.id)
    for (run, e, _), group in zip(wsus, ws):
        for s, res in enumerate(group):
            row("locked", e, "wsu", s, False, res, p.wsu_run(run, e, s, weak_elicit).id)
    return rows


def run_attacks(cfg: ExperimentConfig) -> list[dict]:
    """Several elicitation attacks (cfg.attacks) on one lock, each with its seeds (E3-E6, E15)."""
    if not cfg.attacks:
        raise ValueError("kind=attacks needs a non-empty `attacks` list")
    names = [a.name for a in cfg.attacks]
    if "none" in names:
        raise ValueError("attacks: the name 'none' is reserved for the models without attack")
    if len(set(names)) != len(names):
        raise ValueError(f"attacks: names must be unique, got {names}")
    for a in cfg.attacks:
        attacks.check_attack(a)
    p = Pipeline(cfg)
    rows: list[dict] = []
    zoo_runs = [p.zoo_run(m.name) for m in cfg.zoo]
    p.zoo(cfg.strong_model)
    run_jobs(p, [("zoo", (m.name,)) for m in cfg.zoo if m.name != cfg.strong_model], "training the weak models")
    lock_run = p.lock()
    sources = {"weak": p.samples(p.zoo(cfg.lock.weak_model), "elicit", cfg.elicit_temperature),
               "weak_lock": p.samples(p.zoo(cfg.lock.weak_model), "lock", cfg.lock.weak_temperature),
               "strong": p.samples(p.zoo(cfg.strong_model), "elicit", 0.0)}
    epochs = sorted({p.attack_epoch(a) for a in cfg.attacks})
    evals = [(zr, "model", False) for zr in zoo_runs] + [(lock_run, f"epoch_{e}", pw) for e in epochs
                                                         for pw in (False, True)]
    jobs = [(lock_run, a, sources) for a in cfg.attacks]
    done = run_jobs(p, [("attack_group", j) for j in jobs] + [("eval", e) for e in evals],
                    f"{len(jobs)} attacks and {len(evals)} evaluations")
    groups, ev = done[:len(jobs)], done[len(jobs):]
    for (run, ckpt, pw), res in zip(evals, ev):
        model, epoch = (run.name, None) if ckpt == "model" else ("locked", int(ckpt.split("_")[1]))
        rows.append({"experiment": cfg.experiment, "model": model, "lock_epoch": epoch, "attack": "none",
                     "seed": None, "password": pw, "n_test": res["n_test"], "accuracy": res["accuracy"],
                     "correct": res["correct"], "run": run.id})
    for a, group in zip(cfg.attacks, groups):
        for s, res in enumerate(group):
            rows.append({"experiment": cfg.experiment, "model": "locked", "lock_epoch": p.attack_epoch(a),
                         "attack": a.name, "seed": s, "password": False, "n_test": res["n_test"],
                         "accuracy": res["accuracy"], "correct": res["correct"],
                         "run": p.attack_run(lock_run, a, s, sources).id})
    return rows


def run_variants(cfg: ExperimentConfig) -> list[dict]:
    """The same attacks (default: WSU as in `cfg.wsu`) on each variant of the experiment: each
    variant is `cfg` with its overrides (a weak model, a locking option...), with its own lock
    (E10, E12-E14). Rows carry the variant's name."""
    if not cfg.variants:
        raise ValueError("kind=variants needs a non-empty `variants` list")
    names = [v.name for v in cfg.variants]
    if len(set(names)) != len(names):
        raise ValueError(f"variants: names must be unique, got {names}")
    rows = []
    for v in cfg.variants:
        vcfg = variant_config(cfg, v)
        log(f"variant {v.name}: {' '.join(v.overrides) or '(the experiment as configured)'}")
        rows += [{**r, "variant": v.name} for r in run_attacks(vcfg)]
    return rows


def variant_config(cfg: ExperimentConfig, v) -> ExperimentConfig:
    """The config of variant `v`: `cfg` with `v.overrides`, run as `kind: attacks`; with no
    attacks configured, the attack is WSU as in `cfg.wsu`."""
    from pwlock.config import AttackConfig, ConfigError, with_overrides

    try:
        vcfg = with_overrides(cfg, [*v.overrides, "kind=attacks"])
    except ConfigError as e:
        raise ConfigError(f"variant {v.name!r}: {e}") from None
    vcfg = dataclasses.replace(vcfg, variants=[])
    if not vcfg.attacks:
        w = vcfg.wsu
        vcfg = dataclasses.replace(vcfg, attacks=[AttackConfig(name="wsu", kind="wsu", n_samples=w.n_samples,
                                                               steps=w.steps, lr=w.lr, optimizer=w.optimizer,
                                                               loss=w.loss, seeds=w.seeds)])
    return vcfg
