"""The experiment's shared state: its config, task, splits, tokenizer and device, and how models
are loaded, prompted and sampled. Every stage takes a `Context` as its first argument.

Building one runs the checks that need the task's data (a config's other rules are checked when
it loads, `pwlock.config.validate`): model paths exist, no split is empty.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from pwlock import distributed, hf, numerics, vllm_backend
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


def in_run(m) -> bool:
    """Whether a path model's zoo run holds the checkpoint later stages load (a GGUF file converted,
    or the model fine-tuned by `sft_steps`), rather than pointing at the model's own files."""
    return is_gguf(m) or bool(m.sft_steps)


# -- the rules that need the task's data (the config's own: `pwlock.config.validate`) -----------
def check_passwords(cfg: ExperimentConfig, alphabet: str) -> None:
    """Toy models read characters of the task's alphabet; any other character is one `<unk>` token,
    so `KIWI` and `LIME` would be the same four tokens. Every password must be spelled in the
    alphabet (and then distinct passwords stay distinct token sequences)."""
    chars = set(alphabet)
    pw, lc = cfg.password, cfg.lock
    named = [("password.password", pw.password)] + [
        (f"password.wrong_passwords[{i}]", w) for i, w in enumerate(pw.wrong_passwords)]
    if lc.second_password:
        named.append(("lock.second_password", lc.second_password))
    for key, value in named:
        bad = sorted(set(value) - chars)
        if bad:
            raise ValueError(f"{key}: {value!r} has characters the toy tokenizer cannot encode ({''.join(bad)!r} "
                             f"would all be <unk>); use characters of {alphabet!r}")


def check_sample_pools(cfg: ExperimentConfig, sizes: dict[str, int]) -> None:
    """Every attack takes at most the samples its split has: WSU's n_samples (x parts for
    `average`, a varied pool) from the elicit split, pre_pool and the lock's overfitting and
    relocking samples from the lock split."""
    from pwlock.elicit import get_attack

    n_elicit, n_lock = sizes.get("elicit", 0), sizes.get("lock", 0)
    if cfg.kind == "core" or not cfg.attacks:
        attacks = [("wsu", cfg.wsu)]
    else:
        attacks = [(f"attacks[{i}] ({a.name!r})", a) for i, a in enumerate(cfg.attacks)]
    for where, a in attacks:
        need = get_attack(a.kind).samples_needed(a)
        if need > n_elicit:
            what = (f"pool={a.pool}" if a.kind == "varied" else f"n_samples={a.n_samples}"
                    + (f" x parts={a.parts}" if a.kind == "average" else ""))
            raise ValueError(f"{where}.{what}: needs {need} samples of the elicit split, which has {n_elicit} "
                             f"problems (task.n_elicit)")
        if a.pre_pool > n_lock:
            raise ValueError(f"{where}.pre_pool={a.pre_pool}: the lock split has {n_lock} problems (task.n_lock)")
    lc = cfg.lock
    if lc.overfit_every and lc.overfit_samples > n_lock:
        raise ValueError(f"lock.overfit_samples={lc.overfit_samples}: the lock split has {n_lock} problems "
                         f"(task.n_lock)")
    if lc.relock_rounds and cfg.wsu.n_samples > n_lock:
        raise ValueError(f"wsu.n_samples={cfg.wsu.n_samples} (the relocking rounds' WSU): the lock split has "
                         f"{n_lock} problems (task.n_lock)")


def check_lengths(cfg: ExperimentConfig, task, splits: dict, toy: list) -> None:
    """Every sequence a toy model sees fits its `arch.max_positions` (one token per character):
    the longest prompt with the longest password plus `eval.max_new_tokens` (generation, and
    training on generated samples) and EOS; a pretraining problem with its solution and EOS."""
    pw = cfg.password
    longest_pw = max([pw.password, *pw.wrong_passwords, cfg.lock.second_password], key=len)
    gen = [p for name in ("test", "elicit", "lock") for p in splits.get(name, [])]
    prompt = max((task.prompt(p, longest_pw) for p in gen), key=len, default="")
    need = len(prompt) + cfg.eval.max_new_tokens + 1
    pre = max(splits.get("pretrain", []), key=lambda p: len(task.prompt(p, None)) + len(p.solution), default=None)
    need_pre = len(task.prompt(pre, None)) + len(pre.solution) + 1 if pre is not None else 0
    plain = max((len(task.prompt(p, None)) for p in gen), default=0)
    shots = [a for a in (cfg.attacks if cfg.kind != "core" else []) if a.kind == "few_shot"]
    for m in toy:
        mp = m.arch.max_positions
        for a in shots:  # demonstrations in front of the prompt: bounded by their longest possible length
            from pwlock.elicit.few_shot import longest_prompt

            n = longest_prompt(a.n_samples, plain, cfg.eval.max_new_tokens) + cfg.eval.max_new_tokens + 1
            if n > mp:
                raise ValueError(f"attack {a.name!r} (few_shot, n_samples={a.n_samples}): prompts with its "
                                 f"demonstrations may take {n} tokens, more than zoo model {m.name!r}'s "
                                 f"arch.max_positions={mp}; lower n_samples")
        if need > mp:
            raise ValueError(f"zoo model {m.name!r}: arch.max_positions={mp} is shorter than its longest sequence, "
                             f"{need} tokens (a prompt of {len(prompt)}, {prompt!r}, + eval.max_new_tokens="
                             f"{cfg.eval.max_new_tokens} + EOS); raise arch.max_positions or lower eval.max_new_tokens")
        if need_pre > mp:
            raise ValueError(f"zoo model {m.name!r}: arch.max_positions={mp} is shorter than the longest pretraining "
                             f"sequence, {need_pre} tokens (problem {pre.id} with its solution and EOS)")


class Context:
    """Config, task, splits (`by_id`: problem id -> problem), the toy tokenizer, the device."""

    def __init__(self, cfg: ExperimentConfig, threads: int | None = None, *, plan_only: bool = False):
        self.cfg = cfg
        # under torchrun each rank keeps its slice of the cores (`pwlock.distributed.init_distributed`)
        sharded = distributed.current_env() is not None
        own = torch.get_num_threads() if sharded else numerics.default_threads()
        torch.set_num_threads(threads or cfg.threads or own)
        if not cfg.zoo:
            raise ValueError("zoo: no models (a strong one and the weak ones it is locked to imitate)")
        self.zoo_cfg = {m.name: m for m in cfg.zoo}
        for i, m in enumerate(cfg.zoo):
            if m.path:  # before any work: a missing model is named with the layout expected
                hf.check_model_path(m.path, m.gguf_file or None, what=f"zoo model {m.name!r} (zoo.{i}.path)")
        self.task = get_task(cfg.task, cfg.password.position)
        toy = [m for m in cfg.zoo if not m.path]
        if toy and hasattr(self.task, "alphabet"):
            check_passwords(cfg, self.task.alphabet)
        self.splits = self.task.splits()
        for name, probs in self.splits.items():
            if not probs and not (name == "pretrain" and all(m.path and not m.sft_steps for m in cfg.zoo)):
                # nothing to train (zoo models fine-tuned here train on the pretrain split)
                raise ValueError(f"task split {name!r} is empty; check task.n_{name}")
        if cfg.kind != "variants":  # (each variant's context checks its own attacks and splits)
            check_sample_pools(cfg, {k: len(v) for k, v in self.splits.items()})
        if toy and hasattr(self.task, "alphabet"):
            check_lengths(cfg, self.task, self.splits, toy)
        self.by_id = {p.id: p for probs in self.splits.values() for p in probs}
        self.runs_dir = Path(cfg.runs_dir)
        self.task_spec = spec_dict(cfg.task)
        # portable numerics compute other bits than fast ones: their runs have keys of their own. Their
        # bits also depend on the main process's thread count (ATen's reduction chunks, MKL's thread
        # team: measured, a nano E1 at threads=2 differs from threads=1 and is the same under every
        # CPU capability), so a count other than portable's 1 is in the key (workers always use 1).
        self.numerics_spec = {}
        if cfg.numerics != "fast":
            self.numerics_spec = {"numerics": cfg.numerics}
            if (cfg.threads or numerics.PORTABLE_THREADS) != numerics.PORTABLE_THREADS:
                self.numerics_spec["threads"] = cfg.threads
        # eval.max_length (a cap on prompt + answer) changes what is generated: in the keys of the runs that
        # generate (samples, eval, attacks) when set; at 0 they keep their keys
        self.max_length_spec = {"max_length": cfg.eval.max_length} if cfg.eval.max_length else {}
        self.device = hf.resolve_device(cfg.device)
        if self.device.type == "cuda" and not plan_only:  # (a dry run may plan a GPU run on a laptop)
            if not torch.cuda.is_available():
                raise ValueError(f"device: {cfg.device!r} but CUDA is not available on this machine (use cpu or auto)")
            if self.device.index is not None and self.device.index >= torch.cuda.device_count():
                raise ValueError(f"device: {cfg.device!r} but this machine has {torch.cuda.device_count()} CUDA "
                                 f"device(s)")
        if cfg.lock.lora.r or any(a.lora.r for a in [cfg.wsu, *cfg.attacks]):
            from pwlock import lora

            lora.import_peft()  # before any work: no peft here stops the run now
        if cfg.eval.backend == "vllm" and not plan_only:
            vllm_backend.import_vllm()  # before any work: no vllm or no GPU here stops the run now
        # Toy models (trained here) share one character tokenizer; path models bring their own.
        self.tok = None
        if any(not m.path for m in cfg.zoo):
            if not hasattr(self.task, "alphabet"):  # an instance's attribute: a task may set it from its config
                toy = [m.name for m in cfg.zoo if not m.path]
                raise ValueError(f"zoo models {toy} have no `path`: models trained here need a task with a "
                                 f"character alphabet (arith, compose), not {cfg.task.name!r}; give them a path")
            self.tok = char_tokenizer(self.task.alphabet)
        self._fingerprints: dict[str, dict] = {}

    @property
    def has_path_models(self) -> bool:
        return any(m.path for m in self.cfg.zoo)

    def model_cfg(self, run: Run):
        """The zoo entry behind a run's model: the zoo model itself, or the model a lock starts from."""
        if run.stage == "zoo":
            return self.zoo_cfg[run.name]
        if run.stage == "lock" and run.spec.get("given"):
            return self.zoo_cfg[run.spec["given"]]
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
        if run.stage == "zoo" and not in_run(m):
            self._check_unchanged(run, m)
            return hf.load_model(m.path, dtype=self.dtype(m), device=self.device,
                                 trust_remote_code=m.trust_remote_code)
        # a lock checkpoint, or the checkpoint a zoo run converted a GGUF model to or fine-tuned
        return hf.load_model(run.dir / ckpt, dtype=self.dtype(m), device=self.device,
                             trust_remote_code=m.trust_remote_code)

    def model_dir(self, run: Run, ckpt: str = "model"):
        """(directory, tokenizer) of checkpoint `ckpt` of a path model's zoo or lock run, checked as
        `load` checks it (the fingerprint of a zoo model's files, a checkpoint's checksum)."""
        m = self.model_cfg(run)
        if run.stage == "zoo" and not in_run(m):
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
            comps = vllm_backend.generate(d, tok, prompts, max_new_tokens=ec.max_new_tokens, max_length=ec.max_length,
                                          temperature=temperature,
                                          seed=seed, dtype=self.dtype(m), trust_remote_code=m.trust_remote_code,
                                          gpu_memory_utilization=ec.vllm_memory)
            return task, prompts, comps
        model, tok = self.load(run, ckpt)
        task = self.task_for(run, tok)
        prompts = prompts_of(task)
        return task, prompts, generate(model, tok, prompts, max_new_tokens=ec.max_new_tokens, temperature=temperature,
                                       seed=seed, batch_size=ec.batch_size, desc=desc, max_length=ec.max_length)
