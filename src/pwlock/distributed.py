"""Data-parallel training across processes with FSDP2 (`fully_shard`) or DDP, under `torchrun`.

The training loop stays `pwlock.train.train`: every rank walks the same global batches (same
seed) and trains on its rows of each (`train(..., rank=, world_size=)`); the loss is the mean
over all supervised tokens of the global batch (token counts all-reduced), so the loss curve and
the updates equal a single process's with the same global batch. Only rank 0 writes: checkpoints
are the full state dict gathered from the shards, in the usual pwlock format.

An experiment whose lock is sharded across processes (one per GPU, or CPU processes with gloo):

    torchrun --nproc-per-node 8 -m pwlock.cli run CONFIG [key=value ...]

Rank 0 runs the experiment as `pwlock run` does; every rank joins it for each lock stage
(`pwlock.stages.lock`, every lock option, `lock.distributed: fsdp | ddp`), whose run is the same
cached lock run that WSU and evaluation read. See docs/real-models.md.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist

from pwlock import numerics
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
        torch.set_num_threads(max(1, numerics.default_threads() // local_world))
    if world_size == 1:
        return DistEnv(0, 1, 0, dev)
    if not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        # rank 0 computes the zoo and samples before each lock while the others wait: a long timeout
        dist.init_process_group(backend, device_id=dev if dev.type == "cuda" else None,
                                timeout=datetime.timedelta(hours=48))
    return DistEnv(rank, world_size, local_rank, dev)


def current_env() -> DistEnv | None:
    """This process's `DistEnv` inside a process group of several processes (`pwlock run` under
    torchrun, after `init_distributed`), else None."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return None
    dev = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    return DistEnv(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), dev)


def close() -> None:
    """Leave the process group, if this process is in one."""
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


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


def sharded_saver(env: DistEnv) -> Callable[..., None]:
    """`save(model, tokenizer, path, meta)` for `pwlock.lock.run_lock` of a sharded model."""

    def save(m, tok, path: Path, meta: dict) -> None:
        save_sharded_checkpoint(m, tok, path, env, {**meta, "world_size": env.world_size})

    return save
