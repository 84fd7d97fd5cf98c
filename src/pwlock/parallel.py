"""Running an experiment's job graph: phases of jobs, each job a cached stage computation.

A `Job` is a module-level function of the stage (`fn(ctx, *args)`, e.g. `stages.eval.compute`)
with its arguments and the runs it produces, so it is done when they are. Where it runs:
- `main`: this process with all its threads (the strong model, sampling: compute-bound);
- `pool`: worker processes, one thread each (small models on a CPU are bound by per-step overhead,
  not arithmetic: two single-threaded processes do about twice the work of one with two threads);
  in this process with one thread when one job is left, so a job's numbers never depend on where
  it ran (after an interruption the few jobs left run here);
- `ranks`: every process of a `torchrun` group (the lock stage, sharded); rank 0 alone runs
  the other jobs, the other ranks follow the graph to each `ranks` job (`follow`).
Results are cached in run directories, so the executor never changes a result.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from pwlock import distributed, numerics
from pwlock.context import Context
from pwlock.runs import Run


@dataclass(frozen=True)
class Job:
    stage: str
    fn: Callable
    args: tuple
    runs: tuple[Run, ...]
    where: str = "pool"

    @property
    def done(self) -> bool:
        return all(r.done for r in self.runs)

    def __call__(self, ctx: Context):
        return self.fn(ctx, *self.args)


@dataclass(frozen=True)
class Phase:
    desc: str
    jobs: tuple[Job, ...]


# -- worker processes -------------------------------------------------------------------------
_CTX: Context | None = None


def _init_worker(cfg, parent: int) -> None:
    global _CTX
    # `parent` comes from the parent itself: it may be gone already (this process needs seconds to start)
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True, name="pwlock-orphan-check").start()
    numerics.apply_from_env()  # the parent's mode: its variables are inherited, torch's settings are not
    _CTX = Context(cfg, threads=1)


def _exit_with_parent(parent: int, every: float = 1.0) -> None:
    """End this worker when the process that started it is gone (SIGTERM from a scheduler or
    `timeout`, an out-of-memory kill): its task queue holds a copy of the pipe's write end, so
    it would never see the pipe close and would wait, holding its memory, forever. Its run,
    if one was under way, is redone by the next `pwlock run` (unfinished runs are wiped)."""
    while True:
        if os.getppid() != parent:
            os._exit(1)
        time.sleep(every)


def _call(job: Job):
    return job(_CTX)


def run_pool(ctx: Context, jobs: list[Job], desc: str) -> None:
    """Compute `jobs` in worker processes when that helps (put the longest first: they start first)."""
    # Path models run in this process: each worker would load its own copy (and its own CUDA context).
    workers = ctx.cfg.workers or (1 if ctx.has_path_models else os.cpu_count() or 1)
    todo = [j for j in jobs if not j.done]
    if workers <= 1 or len(todo) < 2:
        # One thread, as in the workers (path models keep the process's threads).
        threads = torch.get_num_threads()
        torch.set_num_threads(threads if ctx.has_path_models else 1)
        try:
            for j in tqdm(todo, desc=desc):
                j(ctx)
        finally:
            torch.set_num_threads(threads)
        return
    mp = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(workers, len(todo)), mp_context=mp, initializer=_init_worker,
                             initargs=(ctx.cfg, os.getpid())) as ex:
        futs = [ex.submit(_call, j) for j in todo]
        for f in tqdm(as_completed(futs), total=len(futs), desc=f"{desc} [{workers} processes]"):
            f.result()  # re-raise a worker's error here


def execute(ctx: Context, phases: list[Phase]) -> None:
    """Run the phases in order (rank 0 of a torchrun group, or the only process); with
    `executor: ray`, as Ray tasks (`pwlock.ray_executor`)."""
    if ctx.cfg.executor == "ray":
        from pwlock import ray_executor

        ray_executor.execute(ctx, phases)
        return
    for ph in phases:
        where = {j.where for j in ph.jobs}
        if where == {"ranks"}:
            for j in ph.jobs:
                distributed.barrier()  # the other ranks wait here until the upstream runs exist
                j(ctx)
                distributed.barrier()
        elif where == {"main"}:
            for j in ph.jobs:
                j(ctx)
        elif where == {"pool"}:
            run_pool(ctx, list(ph.jobs), ph.desc)
        elif ph.jobs:
            raise ValueError(f"phase {ph.desc!r} mixes jobs of {sorted(where)}")


def follow(ctx: Context, phases: list[Phase]) -> None:
    """A rank > 0 of a torchrun group: join each `ranks` job of the graph, skip the rest."""
    for ph in phases:
        for j in ph.jobs:
            if j.where == "ranks":
                distributed.barrier()
                j(ctx)
                distributed.barrier()
