"""`executor: ray`: the jobs of an experiment's graph as Ray tasks, on a local or remote cluster.

The driver (`pwlock run`) walks the phases in order as the local executor does; the jobs of a
phase are submitted together and the next phase starts when every one is done (its upstream
runs exist). Each task enters the driver's working directory (so `runs_dir` and data paths mean
the same on every node: they must be on a filesystem every node sees, checked at start with a
probe file), builds the experiment's `Context` once per worker process, and runs the job, which
writes its cached run directories exactly as the local executor's workers do: the results do not
depend on where a job ran. Resources: a `pool` job (an evaluation, an attack group) asks for 1 CPU
and runs with 1 thread; a `main` job (zoo training, sampling, the lock) asks for `ray_main_cpus`
CPUs (0 = the driver's thread count) and runs with that many threads; with `device: cuda` a job
asks for one GPU. A task whose worker process or node dies is retried by Ray (`max_retries`),
its unfinished run directory wiped as always; an exception in a job (a config or data error, a
diverged training) fails the experiment at once, not retried.

A lock sharded across several processes (`ray_lock_workers: N`, a 7B lock on N GPUs) runs
through Ray Train: a `TorchTrainer` of N workers, each joined to the process group by Ray Train
(NCCL on GPUs, gloo on CPUs), runs the lock stage as a rank of a torchrun group does
(`pwlock.distributed`, `lock.distributed: fsdp | ddp`): the same lock run, rank 0 writes it.
Progress: one bar over the jobs of the whole graph, with counts per stage.

Ray is optional: `pip install -e .[ray]` (Ray Train: the `ray[train]` extra it names).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from tqdm.auto import tqdm

RETRIES = 3  # retries of a task whose worker process died (not of an exception in the job)
_CONTEXTS: dict = {}  # per worker process: (config, threads) -> Context


def import_ray():
    try:
        import ray
    except ImportError:
        raise ValueError("executor: ray needs the ray package: pip install -e .[ray]") from None
    return ray


def connect(cfg):
    """Connect to the cluster at `cfg.ray_address` (empty: start a local one), once per process."""
    from pwlock.context import log

    ray = import_ray()
    if not ray.is_initialized():
        ray.init(address=cfg.ray_address or None, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
        res = ray.cluster_resources()
        log(f"ray: {'cluster at ' + cfg.ray_address if cfg.ray_address else 'a local cluster'}, "
            f"{res.get('CPU', 0):g} CPUs, {res.get('GPU', 0):g} GPUs, {len(ray.nodes())} node(s); dashboard: "
            f"{_dashboard(ray) or 'off (start the cluster with `ray start --head` for one)'}")
    return ray


def _dashboard(ray) -> str | None:
    try:
        return ray.get_runtime_context().get_dashboard_url() or None  # newer Ray
    except Exception:
        return None


def _env(cfg) -> dict:
    """The environment the tasks' worker processes start with: portable numerics' variables."""
    from pwlock import numerics

    if cfg.numerics == "fast":
        return {}
    return {k: v for k, v in numerics.portable_env().items() if isinstance(v, str)}


def _task(cwd: str, cfg, threads: int, job, env: dict):
    """Run one job in a Ray worker (module-level: what Ray pickles is the job, not a closure)."""
    if not Path(cwd).is_dir():
        raise FileNotFoundError(f"ray: the driver's working directory {cwd} does not exist on this node; runs_dir "
                                f"and the data must be on a filesystem every node sees")
    os.chdir(cwd)
    from pwlock import numerics
    from pwlock.context import Context

    if env:
        numerics.apply_from_env()
    key = (repr(cfg), threads)
    if key not in _CONTEXTS:
        _CONTEXTS[key] = Context(cfg, threads=threads)
    import torch

    torch.set_num_threads(threads)
    job(_CONTEXTS[key])
    return [r.id for r in job.runs]


def _train_worker(conf: dict) -> None:
    """One Ray Train worker of a sharded lock: Ray Train has joined it to the process group (gloo
    on CPU, NCCL on GPU), so the lock stage shards as under torchrun (`pwlock.distributed`): rank 0
    writes the lock run, the others train their shards. An exception in the job is written to
    `errors/` and the worker returns: Ray Train's retries are for lost workers only."""
    import json
    import traceback

    import torch
    import torch.distributed as dist

    rank = dist.get_rank() if dist.is_initialized() else 0
    try:
        if torch.cuda.is_available() and conf["gpu"]:
            import ray.train.torch as rt

            torch.cuda.set_device(rt.get_device())
        _task(conf["cwd"], conf["cfg"], conf["threads"], conf["job"], conf["env"])
    except Exception as e:  # the job's own error: reported by the driver, not retried
        err = Path(conf["errors"]) / f"rank{rank}.json"
        err.parent.mkdir(parents=True, exist_ok=True)
        err.write_text(json.dumps({"type": type(e).__name__, "message": str(e), "traceback": traceback.format_exc()}))


def run_sharded(cfg, job, workers: int, cpus: int, gpu: bool, env: dict, cwd: str) -> None:
    """Run `job` (the lock stage) on `workers` Ray Train workers (`TorchTrainer`), `cpus` CPUs and
    threads each (one GPU each with `gpu`); the same run directory as a single process."""
    import json
    import tempfile

    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    with tempfile.TemporaryDirectory(prefix="pwlock-ray-train-", dir=cfg.runs_dir) as tmp:
        errors = Path(tmp).resolve() / "errors"
        conf = {"cwd": cwd, "cfg": cfg, "threads": cpus, "job": job, "env": env, "errors": str(errors), "gpu": gpu}
        trainer = TorchTrainer(
            _train_worker, train_loop_config=conf,
            torch_config=TorchConfig(backend="nccl" if gpu else "gloo"),
            scaling_config=ScalingConfig(num_workers=workers, use_gpu=gpu,
                                         resources_per_worker={"CPU": cpus, **({"GPU": 1} if gpu else {})}),
            run_config=RunConfig(name=f"pwlock-{job.stage}", storage_path=str(Path(tmp).resolve() / "ray"),
                                 failure_config=FailureConfig(max_failures=RETRIES),
                                 **({_runconfig_env_field(): {"env_vars": env}} if env else {})))
        trainer.fit()
        errs = sorted(errors.glob("rank*.json"))
        if errs:
            e = json.loads(errs[0].read_text())
            raise ValueError(f"{job.stage} on {workers} Ray Train workers, {errs[0].stem}: {e['type']}: {e['message']}")
    if not job.done:
        raise RuntimeError(f"{job.stage} on {workers} Ray Train workers finished without its run "
                           f"{', '.join(r.id for r in job.runs)} (rank 0 writes it)")


def _runconfig_env_field() -> str:
    """The RunConfig field that gives Ray Train's workers their environment (portable numerics'
    variables must be there when the worker process starts)."""
    import inspect

    from ray.train import RunConfig

    fields = inspect.signature(RunConfig).parameters
    for name in ("worker_runtime_env", "runtime_env"):
        if name in fields:
            return name
    raise ValueError("numerics: portable with ray_lock_workers: this Ray's RunConfig takes no worker runtime_env; "
                     "use numerics: fast or another Ray version")


def _probe(cwd: str, path: str) -> str:
    p = Path(cwd) / path
    return p.read_text() if p.is_file() else f"missing: {p}"


def check_shared_runs_dir(ray, cfg) -> None:
    """A worker must read what the driver writes in `runs_dir` (else each node caches alone and
    the driver never sees the runs): a probe file written here, read back by a task."""
    d = Path(cfg.runs_dir)
    d.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    probe = d / f".ray-probe-{token}"
    probe.write_text(token)
    try:
        got = ray.get(ray.remote(num_cpus=1)(_probe).remote(os.getcwd(), str(probe)))
    finally:
        probe.unlink(missing_ok=True)
    if got != token:
        raise ValueError(f"ray: a worker cannot read {probe.resolve()} that the driver wrote ({got}); runs_dir "
                         f"must be on a filesystem every node sees")


def execute(ctx, phases) -> None:
    """Run the phases on Ray (the counterpart of `pwlock.parallel.execute`)."""
    import torch

    from pwlock import distributed

    cfg = ctx.cfg
    if distributed.current_env() is not None:
        raise ValueError("executor: ray does not run under torchrun; for a sharded lock on Ray set "
                         "ray_lock_workers: N (Ray Train workers), or use the local executor under torchrun")
    ray = connect(cfg)
    check_shared_runs_dir(ray, cfg)
    env = _env(cfg)
    gpus = 1 if ctx.device.type == "cuda" else 0
    main_threads = cfg.ray_main_cpus or torch.get_num_threads()
    sharded = cfg.ray_lock_workers > 1 and not cfg.lock.given
    runtime = {"env_vars": env} if env else None
    cwd = os.getcwd()
    n, per = cfg.ray_lock_workers, max(1, main_threads // max(1, cfg.ray_lock_workers))  # workers, CPUs each
    if sharded:  # before any work: a placement Ray cannot make would wait forever
        have = ray.cluster_resources()
        for res, need in (("CPU", n * per), ("GPU", n * gpus)):
            if need and have.get(res, 0) < need:
                raise ValueError(f"ray_lock_workers={n}: the lock asks for {need:g} {res}s ({per} CPU"
                                 f"{' + 1 GPU' if gpus else ''} per worker) but the cluster has "
                                 f"{have.get(res, 0):g}")
    # one bar over the whole graph: the jobs to run, with counts per stage (done/all)
    todo_all = [j for ph in phases for j in ph.jobs if not j.done]
    counts = {st: [0, sum(j.stage == st for j in todo_all)] for st in dict.fromkeys(j.stage for j in todo_all)}
    with tqdm(total=len(todo_all), desc="jobs [ray]") as bar:
        def finished(job) -> None:
            counts[job.stage][0] += 1
            bar.set_postfix_str(" ".join(f"{st} {a}/{b}" for st, (a, b) in counts.items()), refresh=False)
            bar.update(1)

        for ph in phases:
            todo = [j for j in ph.jobs if not j.done]
            if not todo:
                continue
            refs, jobs = [], {}
            for j in todo:  # (a `ranks` job outside torchrun, the lock, is a main job)
                if sharded and j.where == "ranks":
                    run_sharded(cfg, j, n, per, bool(gpus), env, cwd)
                    finished(j)
                    continue
                threads = main_threads if j.where in ("main", "ranks") else 1
                opts = {"num_cpus": threads, "num_gpus": gpus, "max_retries": RETRIES, "retry_exceptions": False}
                if runtime:
                    opts["runtime_env"] = runtime
                ref = ray.remote(**opts)(_task).remote(cwd, cfg, threads, j, env)
                refs.append(ref)
                jobs[ref] = j
            pending = list(refs)
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                try:
                    ray.get(done[0])
                except ray.exceptions.RayTaskError as e:  # the job's own exception: fail now, naming it
                    for r in pending:
                        ray.cancel(r, force=True)
                    cause = e.cause if getattr(e, "cause", None) is not None else e
                    raise cause from None
                finished(jobs[done[0]])
