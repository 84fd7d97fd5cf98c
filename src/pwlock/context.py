"""The experiment's shared state: its config, task, splits, tokenizer and device, and how models
are loaded, prompted and sampled. Every stage takes a `Context` as its first argument.

Building one runs the checks that need the task's data (a config's other rules are checked when
it loads, `pwlock.config.validate`): model paths exist, no split is empty.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from pwlock import hf, vllm_backend
from pwlock.config import ExperimentConfig, spec_dict
from pwlock.models import load_checkpoint, verify_checkpoint
from pwlock.prompting import for_model
from pwlock.runs import Run
from pwlock.sampling import generate
from pwlock.tasks import get_task
from pwlock.tokenizer import char_tokenizer


def derive_seed(*parts) -> int:
    """A seed from the experiment seed and the names of what it seeds (stable across runs)."""
    return int(hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:8], 16)


def log(msg: str) -> None:
    tqdm.write(f"[pwlock {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr)


def prompt_format(m) -> str:
    """`auto`: chat for a model from a path (its chat template, else User:/Assistant: turns), raw
    for a toy model (the character tokenizer reads the task prompt as is)."""
    return m.prompt_format if m.prompt_format != "auto" else ("chat" if m.path else "raw")


def is_gguf(m) -> bool:
    return hf.split_gguf(m.path, m.gguf_file or None)[1] is not None


class Context:
    """Config, task, splits (`by_id`: problem id -> problem), the toy tokenizer, the device."""

    def __init__(self, cfg: ExperimentConfig, threads: int | None = None, *, plan_only: bool = False):
        self.cfg = cfg
        torch.set_num_threads(threads or cfg.threads or os.cpu_count() or 1)
        if not cfg.zoo:
            raise ValueError("zoo: no models (a strong one and the weak ones it is locked to imitate)")
        self.zoo_cfg = {m.name: m for m in cfg.zoo}
        for i, m in enumerate(cfg.zoo):
            if m.path:  # before any work: a missing model is named with the layout expected
                hf.check_model_path(m.path, m.gguf_file or None, what=f"zoo model {m.name!r} (zoo.{i}.path)")
        self.task = get_task(cfg.task, cfg.password.position)
        self.splits = self.task.splits()
        for name, probs in self.splits.items():
            if not probs and not (name == "pretrain" and all(m.path for m in cfg.zoo)):  # nothing to train
                raise ValueError(f"task split {name!r} is empty; check task.n_{name}")
        self.by_id = {p.id: p for probs in self.splits.values() for p in probs}
        self.runs_dir = Path(cfg.runs_dir)
        self.task_spec = spec_dict(cfg.task)
        self.device = hf.resolve_device(cfg.device)
        if cfg.eval.backend == "vllm" and not plan_only:
            vllm_backend.import_vllm()  # before any work: no vllm or no GPU here stops the run now
        # Toy models (trained here) share one character tokenizer; path models bring their own.
        self.tok = None
        if any(not m.path for m in cfg.zoo):
            if not hasattr(self.task, "alphabet"):  # an instance's attribute: a task may set it from its config
                toy = [m.name for m in cfg.zoo if not m.path]
                raise ValueError(f"zoo models {toy} have no `path`: models trained here need a task with a "
                                 f"character alphabet (arith), not {cfg.task.name!r}; give them a path")
            self.tok = char_tokenizer(self.task.alphabet)
        self._fingerprints: dict[str, dict] = {}

    @property
    def has_path_models(self) -> bool:
        return any(m.path for m in self.cfg.zoo)

    def model_cfg(self, run: Run):
        """The zoo entry behind a run's model: the zoo model itself, or the model a lock starts from."""
        if run.stage == "zoo":
            return self.zoo_cfg[run.name]
        return self.zoo_cfg[self.cfg.lock.start_model or self.cfg.strong_model]

    def dtype(self, m) -> torch.dtype:
        return hf.resolve_dtype(m.dtype, self.device)

    def fingerprint(self, name: str) -> dict:
        m = self.zoo_cfg[name]
        if name not in self._fingerprints:
            self._fingerprints[name] = hf.fingerprint(m.path, m.gguf_file or None)
        return self._fingerprints[name]

    def _check_unchanged(self, run: Run, m) -> None:
        if hf.fingerprint(m.path, m.gguf_file or None) != run.spec["fingerprint"]:
            raise ValueError(f"the files of zoo model {m.name!r} at {m.path} changed since run {run.id} "
                             "recorded them; run again to pick up the new files")

    def load(self, run: Run, ckpt: str = "model"):
        """`(model, tokenizer)` of checkpoint `ckpt` of a zoo or lock run, on the context's device."""
        m = self.model_cfg(run)
        if not m.path:  # a toy model: a pwlock checkpoint in fp32
            model, tok, _ = load_checkpoint(run.dir / ckpt)
            return model.to(self.device), tok
        if run.stage == "zoo" and not is_gguf(m):
            self._check_unchanged(run, m)
            return hf.load_model(m.path, dtype=self.dtype(m), device=self.device,
                                 trust_remote_code=m.trust_remote_code)
        # a lock checkpoint, or the checkpoint a GGUF model was converted to by its zoo run
        return hf.load_model(run.dir / ckpt, dtype=self.dtype(m), device=self.device,
                             trust_remote_code=m.trust_remote_code)

    def model_dir(self, run: Run, ckpt: str = "model"):
        """(directory, tokenizer) of checkpoint `ckpt` of a path model's zoo or lock run, checked as
        `load` checks it (the fingerprint of a zoo model's files, a checkpoint's checksum)."""
        m = self.model_cfg(run)
        if run.stage == "zoo" and not is_gguf(m):
            self._check_unchanged(run, m)
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

    def generate(self, run: Run, ckpt: str, prompts_of, temperature: float, seed: int, desc: str | None):
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
                                          seed=seed, dtype=self.dtype(m), trust_remote_code=m.trust_remote_code,
                                          gpu_memory_utilization=ec.vllm_memory)
            return task, prompts, comps
        model, tok = self.load(run, ckpt)
        task = self.task_for(run, tok)
        prompts = prompts_of(task)
        return task, prompts, generate(model, tok, prompts, max_new_tokens=ec.max_new_tokens, temperature=temperature,
                                       seed=seed, batch_size=ec.batch_size, desc=desc)
