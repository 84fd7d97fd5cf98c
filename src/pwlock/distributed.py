"""Data-parallel training across processes with FSDP2 (`fully_shard`) or DDP, under `torchrun`.

The training loop stays `pwlock.train.train`: every rank walks the same global batches (same
seed) and trains on its rows of each (`train(..., rank=, world_size=)`); the loss is the mean
over all supervised tokens of the global batch (token counts all-reduced), so the loss curve and
the updates equal a single process's with the same global batch. Only rank 0 writes: checkpoints
are the full state dict gathered from the shards, in the usual pwlock format.

A locking run sharded across processes (one per GPU, or CPU processes with gloo):

    torchrun --nproc-per-node 8 -m pwlock.distributed CONFIG \\
        --model /models/deepseek-math-7b-rl --strong-samples strong.jsonl \\
        --weak-samples weak.jsonl --out runs/lock-dist [key=value ...]

CONFIG is an experiment config (its `task`, `password`, `lock` and `seed` sections are used);
`--model` is a Hugging Face directory, a `.gguf` file, or a pwlock checkpoint; the samples are
JSONL files with `problem_id` and `completion` per row (as the pipeline's `samples.jsonl`) and
must cover the task's lock split. Writes `<out>/epoch_<e>/` checkpoints, `losses.json` and
`lock.json`. See docs/real-models.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist

from pwlock.hf import resolve_device


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the job. Single process: rank 0 of 1, no process group."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> DistEnv:
    """Join the process group that `torchrun` describes in the environment (RANK, WORLD_SIZE,
    LOCAL_RANK, MASTER_ADDR/PORT): NCCL on CUDA (one GPU per local rank), gloo on CPU.

    Without torchrun (no WORLD_SIZE) or with one process: a single-process `DistEnv`, no group.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    else:
        # CPU processes share the cores: one slice each (no oversubscription).
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    if world_size == 1:
        return DistEnv(0, 1, 0, dev)
    if not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend, device_id=dev if dev.type == "cuda" else None)
    return DistEnv(rank, world_size, local_rank, dev)


def transformer_blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The repeated blocks of a `transformers` model (the classes in `_no_split_modules`, e.g.
    `LlamaDecoderLayer`), else the modules of the longest `nn.ModuleList`."""
    names = set(getattr(model, "_no_split_modules", None) or [])
    blocks = [m for m in model.modules() if type(m).__name__ in names]
    if blocks:
        return blocks
    lists = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList)]
    if not lists:
        raise ValueError(f"{type(model).__name__}: no transformer blocks found to shard")
    return list(max(lists, key=len))


def shard_model(model: torch.nn.Module, env: DistEnv, strategy: str = "fsdp",
                param_dtype: torch.dtype | None = None, reduce_dtype: torch.dtype | None = None) -> torch.nn.Module:
    """Wrap `model` for data-parallel training; returns the module to train.

    fsdp: FSDP2 `fully_shard` on each transformer block, then on the root (embeddings, final
    norm and the LM head, tied or not, stay in the root's group); parameters, gradients and
    optimizer state are sharded across ranks. `param_dtype`/`reduce_dtype`: optional mixed
    precision (e.g. fp32 weights computed in bf16, gradients reduced in fp32).
    ddp: a full replica per rank, gradients all-reduced. Single process without a process
    group: `model` unchanged (moved to `env.device`).
    """
    if env.world_size == 1 and not dist.is_initialized():
        return model.to(env.device)
    if strategy == "fsdp":
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        kw = {}
        if param_dtype is not None or reduce_dtype is not None:
            kw["mp_policy"] = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=reduce_dtype)
        model.to(env.device)
        for block in transformer_blocks(model):
            fully_shard(block, **kw)
        fully_shard(model, **kw)
        return model
    if strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        model.to(env.device)
        return DistributedDataParallel(model, device_ids=[env.device.index] if env.device.type == "cuda" else None)
    raise ValueError(f"unknown strategy {strategy!r}; use 'fsdp' or 'ddp'")


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The `transformers` model inside a DDP wrapper (FSDP2 wraps in place: the model itself)."""
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def full_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The unsharded weights on CPU, on rank 0 (an empty dict elsewhere). A collective: every rank
    must call it."""
    if not dist.is_initialized():
        return unwrap(model).state_dict()
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        return model.module.state_dict() if dist.get_rank() == 0 else {}
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def save_sharded_checkpoint(model, tokenizer, path: str | Path, env: DistEnv, meta: dict | None = None) -> None:
    """`pwlock.models.save_checkpoint` of a (possibly) sharded model: every rank gathers, rank 0
    writes, all wait for it."""
    from pwlock.models import save_checkpoint

    state = full_state_dict(model)
    if env.is_main:
        save_checkpoint(unwrap(model), tokenizer, path, meta, state_dict=state)
    if dist.is_initialized():
        dist.barrier()


def run_lock_distributed(model, tokenizer, examples, lock_cfg, seed: int, out_dir: Path, env: DistEnv,
                         on_epoch: Callable[[int], None] | None = None, progress: bool = True) -> list[float]:
    """`pwlock.lock.run_lock` across processes: the same schedule, checkpoints and losses."""
    from pwlock.lock import run_lock

    def save(m, tok, path: Path, meta: dict) -> None:
        save_sharded_checkpoint(m, tok, path, env, {**meta, "world_size": env.world_size})

    return run_lock(model, tokenizer, examples, lock_cfg, seed, out_dir, on_epoch, save=save,
                    progress=progress and env.is_main, rank=env.rank, world_size=env.world_size)


# ---------------------------------------------------------------------------------------------
# Command line


def load_model(path: str, *, gguf_file: str | None, dtype: str, trust_remote_code: bool,
               gradient_checkpointing: bool):
    """A pwlock checkpoint (directory with pwlock.json), a HF directory or a GGUF file, on CPU."""
    from pwlock.hf import load_model as _load

    return _load(path, gguf_file=gguf_file, dtype=dtype, device="cpu", trust_remote_code=trust_remote_code,
                 gradient_checkpointing=gradient_checkpointing)


def _completions(path: str) -> dict[str, str]:
    from pwlock.utils import read_jsonl

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"samples file not found: {p}")
    rows = read_jsonl(p)
    for i, r in enumerate(rows):
        if "problem_id" not in r or "completion" not in r:
            raise ValueError(f"{p}: row {i + 1} lacks problem_id or completion")
    return {r["problem_id"]: r["completion"] for r in rows}


def lock_main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="torchrun --nproc-per-node N -m pwlock.distributed",
                                 description="a password-locking run sharded across processes (FSDP2 or DDP)")
    ap.add_argument("config", help="experiment YAML: its task, password, lock and seed sections are used")
    ap.add_argument("overrides", nargs="*", help="key=value config overrides, e.g. lock.epochs=2")
    ap.add_argument("--model", required=True, help="HF model directory, .gguf file, or pwlock checkpoint")
    ap.add_argument("--gguf-file", default=None, help="GGUF file name inside --model")
    ap.add_argument("--strong-samples", required=True, help="JSONL (problem_id, completion): imitated with password")
    ap.add_argument("--weak-samples", required=True, help="JSONL (problem_id, completion): imitated without")
    ap.add_argument("--out", required=True, help="output directory (epoch_<e>/ checkpoints, losses.json)")
    ap.add_argument("--strategy", choices=("fsdp", "ddp"), default="fsdp")
    ap.add_argument("--device", default="auto", help="auto (cuda if available) | cuda | cpu")
    ap.add_argument("--dtype", default="auto", help="weights: auto (bf16 on CUDA, fp32 on CPU) | bf16 | fp32")
    ap.add_argument("--param-dtype", default=None,
                    help="fsdp mixed precision: compute in this dtype (e.g. bf16 with --dtype fp32: fp32 master "
                         "weights, optimizer state and gradient reduction; needed for Lion at lr ~1e-6)")
    ap.add_argument("--prompt-format", choices=("chat", "raw"), default="chat",
                    help="chat: the tokenizer's chat template (else User:/Assistant: turns); raw: the task prompt")
    ap.add_argument("--gradient-checkpointing", action="store_true", help="recompute activations (saves memory)")
    ap.add_argument("--trust-remote-code", action="store_true", help="run Python code shipped with the model")
    ap.add_argument("--no-progress", action="store_true")
    args, extra = ap.parse_known_args(argv)
    bad = [x for x in extra if x.startswith("-") or "=" not in x]
    if bad:
        ap.error(f"unrecognized arguments: {' '.join(bad)}")
    overrides = list(args.overrides) + extra

    from pwlock.config import dump_yaml, load_config
    from pwlock.experiment import derive_seed
    from pwlock.lock import check_passwords, lock_mixture
    from pwlock.prompting import chat_prompt
    from pwlock.tasks import get_task
    from pwlock.train import Example
    from pwlock.utils import atomic_write_text, seed_everything

    cfg = load_config(args.config, overrides)
    check_passwords(cfg.password)
    env = init_distributed(args.device)
    try:
        task = get_task(cfg.task)
        task.password_position = cfg.password.position
        problems = task.splits()["lock"]
        strong, weak = _completions(args.strong_samples), _completions(args.weak_samples)
        lacking = [p.id for p in problems if p.id not in strong or p.id not in weak]
        if lacking:
            raise ValueError(f"{len(lacking)} lock problems have no strong or weak sample, e.g. {lacking[:3]}")
        seed = derive_seed("lock", cfg.seed, cfg.lock.seed)  # the seed of the pipeline's lock stage
        seed_everything(seed)
        model, tok = load_model(args.model, gguf_file=args.gguf_file, dtype=args.dtype,
                                trust_remote_code=args.trust_remote_code,
                                gradient_checkpointing=args.gradient_checkpointing)
        examples = lock_mixture(task, problems, strong, weak, cfg.password, seed)
        if args.prompt_format == "chat":
            examples = [Example(chat_prompt(tok, ex.prompt), ex.completion) for ex in examples]
        if args.param_dtype is not None and args.strategy != "fsdp":
            raise ValueError("--param-dtype needs --strategy fsdp")
        mp = {}
        if args.param_dtype is not None:
            from pwlock.hf import resolve_dtype

            mp = {"param_dtype": resolve_dtype(args.param_dtype), "reduce_dtype": torch.float32}
        model = shard_model(model, env, args.strategy, **mp)
        out = Path(args.out)
        if env.is_main:
            out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(out / "config.yaml", dump_yaml(cfg))
            print(f"[pwlock.distributed] locking on {len(examples)} examples, {env.world_size} process(es), "
                  f"{args.strategy}, device {env.device}", file=sys.stderr)
        t0 = time.time()
        losses = run_lock_distributed(model, tok, examples, cfg.lock, seed, out, env,
                                      progress=not args.no_progress)
        if env.is_main:
            atomic_write_text(out / "losses.json", json.dumps(losses))
            atomic_write_text(out / "lock.json", json.dumps(
                {"epochs": cfg.lock.epochs, "steps": len(losses), "final_loss": losses[-1], "seed": seed,
                 "world_size": env.world_size, "strategy": args.strategy, "model": str(args.model),
                 "prompt_format": args.prompt_format, "seconds": round(time.time() - t0, 3)}, indent=2))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


def main(argv: list[str] | None = None) -> int:
    """`lock_main` with pwlock's one-line errors (PWLOCK_DEBUG=1 for a traceback)."""
    from pwlock.config import ConfigError
    from pwlock.models import CheckpointError

    try:
        return lock_main(argv)
    except (ConfigError, ValueError, FileNotFoundError, CheckpointError) as e:
        if os.environ.get("PWLOCK_DEBUG"):
            raise
        print(f"pwlock.distributed: error: {e} (set PWLOCK_DEBUG=1 for a traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
