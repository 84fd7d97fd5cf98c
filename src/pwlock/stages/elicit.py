"""Elicitation: one attack on one lock checkpoint, every seed, each evaluated into its own run.

The group of one attack's seeds is one job: trained attacks train their seeds together (one
stacked model, at most `wsu.max_stack` at a time) and evaluate them together (stacked sampling);
with `wsu.max_stack: 1` each seed attacks the model in place, is evaluated, and the weights are
restored from a CPU copy (a 7B model has room for one copy). A stack is always trained whole,
even when some of its runs are finished (after an interruption), so a run's numbers never depend
on what else was cached.

Two run keys, one code path. E1's WSU (`Group.stage == "wsu"`) keeps the key of the `wsu` stage
(cached before the attack stage existed): the fields of the `wsu` section and seeds derived from
("wsu", seed, i). An attack of an `attacks` list (stage `attack`) is keyed by its own fields and
seeds from ("attack", seed, kind, i). So E1's WSU and an attacks config's `wsu` attack on the same
lock draw *different* sample sets: seed i of one is not seed i of the other.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

from pwlock.config import AttackConfig, EvalConfig, WSUConfig, spec_dict
from pwlock.context import Context, derive_seed
from pwlock.elicit import Inputs, get_attack
from pwlock.elicit.wsu import cpu_copy, restore, train_seeds, wsu_examples
from pwlock.evaluate import complete_many, write_records
from pwlock.runs import Run, group_lock, load_results
from pwlock.stages.samples import check_not_empty
from pwlock.train import TrainingDivergedError, train
from pwlock.utils import ComputeClock, atomic_write_text, read_jsonl, write_jsonl

DEFAULT_SEEDS = WSUConfig().seeds
DEFAULT_EVAL_BATCH = EvalConfig().batch_size


@dataclass(frozen=True)
class Group:
    """One attack on one lock epoch. `stage`: "wsu" for E1's WSU (the `wsu` section), else "attack"."""

    attack: AttackConfig
    epoch: int
    stage: str = "attack"


def run(ctx: Context, lock_run: Run, g: Group, seed_idx: int, sources: dict[str, Run]) -> Run:
    c, a = ctx.cfg, g.attack
    attack = get_attack(a.kind)
    common = {"epoch": g.epoch, "task": ctx.task_spec, "max_new_tokens": c.eval.max_new_tokens, **ctx.numerics_spec,
              **ctx.max_length_spec}
    if g.stage == "wsu":  # E1's WSU
        wsu = spec_dict(c.wsu)
        for k in ("seeds", "name", "kind", "epoch", "pool", "scale"):
            wsu.pop(k)  # left out: not WSU options (and the seeds make one run each)
        if wsu.pop("weight_decay") != 0.0:
            wsu["weight_decay"] = c.wsu.weight_decay  # an option E1 did not have: keyed only when set
        spec = {"wsu": wsu, **common, "seed": derive_seed("wsu", c.seed, seed_idx)}
        if c.wsu.seeds != DEFAULT_SEEDS:
            spec["group"] = c.wsu.seeds  # the seeds train stacked: K may change the last bits
        upstream = {"lock": lock_run.id, "weak_samples": sources["weak"].id}
        if a.pre_pool:
            upstream["pre_samples"] = sources["weak_lock"].id
        return Run(ctx.runs_dir, "wsu", f"{lock_run.name}-e{g.epoch}-s{seed_idx}", spec, upstream)
    key = spec_dict(a)
    for k in ("name", "seeds", "epoch"):
        key.pop(k)  # left out: the label, how many seeds, the epoch (below)
    upstream = {"lock": lock_run.id}
    if attack.source:
        upstream[f"{attack.source}_samples"] = sources[attack.source].id
    if a.pre_pool:
        upstream["pre_samples"] = sources["weak_lock"].id
    spec = {"attack": key, **common, "seed": derive_seed("attack", c.seed, a.kind, seed_idx)}
    if attack.trains and a.seeds != DEFAULT_SEEDS:
        spec["group"] = a.seeds  # the seeds train stacked: K may change the last bits
    ms = c.wsu.max_stack
    if attack.trains and ms and (ms == 1 or ms < attack.n_seeds(a)):
        spec["max_stack"] = ms  # trained fewer together (1: alone, in place): other last bits
    kind = a.kind.replace(":", ".")  # an attack from outside the package: module.Class
    return Run(ctx.runs_dir, "attack", f"{kind}-e{g.epoch}-s{seed_idx}", spec, upstream)


def runs(ctx: Context, lock_run: Run, g: Group, sources: dict[str, Run]) -> list[Run]:
    return [run(ctx, lock_run, g, s, sources) for s in range(get_attack(g.attack.kind).n_seeds(g.attack))]


def compute(ctx: Context, lock_run: Run, g: Group, sources: dict[str, Run]) -> list[dict]:
    """Every seed of `g` on its lock checkpoint, each evaluated into its own run: their results."""
    a = g.attack
    rs = runs(ctx, lock_run, g, sources)
    if all(r.done for r in rs):
        return [load_results(r) for r in rs]
    with group_lock(ctx.runs_dir, rs, f"{g.stage} {a.name} epoch {g.epoch}") as note:
        if not all(r.done for r in rs):  # another process may have computed the group while we waited
            note("start")
            try:
                _compute(ctx, lock_run, g, sources, rs)
            except TrainingDivergedError as e:  # name the group (its seeds train together, outside any run)
                if str(e).startswith("run "):
                    raise
                note("failed")
                raise TrainingDivergedError(f"{g.stage} {a.name!r} on lock epoch {g.epoch} (runs {rs[0].id} ...): {e}; "
                                            f"its unfinished runs are not stored") from e
            note("finish")
    return [load_results(r) for r in rs]


def _compute(ctx: Context, lock_run: Run, g: Group, sources: dict[str, Run], rs: list[Run]) -> None:
    a, attack = g.attack, get_attack(g.attack.kind)
    adapter = None
    if a.lora.r and a.lora_init == "lock":  # the lock's own adapter, trained on the lock's start model
        from pwlock.stages import zoo

        adapter = lock_run.dir / f"epoch_{g.epoch}" / "adapter"
        model, tok = ctx.load(zoo.run(ctx, ctx.cfg.lock.start_model or ctx.cfg.strong_model))
    else:
        model, tok = ctx.load(lock_run, f"epoch_{g.epoch}")
    task = ctx.task_for(lock_run, tok)
    pool = read_jsonl(sources[attack.source].dir / "samples.jsonl") if attack.source else []
    if attack.source:
        check_not_empty(sources[attack.source], (x["completion"] for x in pool))
    inputs = Inputs(tok, task, pool, ctx.by_id, ctx.cfg.password.password, elicit=ctx.splits.get("elicit", []),
                    eval=ctx.cfg.eval)
    c0, t0 = ComputeClock.seconds, time.time()
    in_place = ctx.cfg.wsu.max_stack == 1
    if in_place:  # trained as it is (not stacked): gradient checkpointing for a path model
        ctx.for_training(model, lock_run)
    if a.pre_pool:  # fine-tune on many weak samples first (E9's counter-attack)
        pre_finetune(ctx, model, tok, task, a, sources["weak_lock"])
    size = ctx.cfg.wsu.max_stack or len(rs)
    base = cpu_copy(model) if in_place else None  # each seed attacks the model, then it is restored
    test = ctx.splits["test"]
    for start in range(0, len(rs), size):
        chunk = rs[start:start + size]
        if all(r.done for r in chunk):
            continue
        if start:
            c0, t0 = ComputeClock.seconds, time.time()
        seeds = [r.spec["seed"] for r in chunk]
        if attack.prompted:  # the model as it is, each seed with its own prompts
            _evaluate_prompted(ctx, model, tok, task, a, attack, inputs, chunk, c0)
            continue
        if attack.trains:
            finals, extras, chosen = train_seeds(model, tok, task, a, attack, pool, seeds, ctx.by_id,
                                                 inputs.password, base, adapter)
        else:
            finals, extras, chosen = [], [], None
            for s in seeds:
                m = model if in_place else _copy(model)
                extras.append(attack.apply(m, a, s, inputs))
                finals.append({} if in_place else {n: p.detach() for n, p in m.named_parameters()})
            model.eval()
        t1 = time.time()
        comps = complete_many(model, finals, tok, task, test, None, ctx.cfg.eval)
        group = {"group_train_seconds": round(t1 - t0, 3), "group_eval_seconds": round(time.time() - t1, 3),
                 "group_compute_seconds": round(ComputeClock.seconds - c0, 3), "group_size": len(chunk)}
        for i, r in enumerate(chunk):
            def fn(d: Path, i=i, chosen=chosen, comps=comps, extras=extras, group=group) -> dict:
                extra = dict(extras[i])
                if chosen is not None:
                    write_jsonl(d / "train_samples.jsonl", chosen[i])
                if "losses" in extra:
                    atomic_write_text(d / "losses.json", json.dumps(extra.pop("losses")))
                res = write_records(task, test, None, comps[i], d / "records.jsonl")
                return {**res, **extra, **group}

            r.compute(fn)
        if base is not None:
            restore(model, base)


def _evaluate_prompted(ctx: Context, model, tok, task, a, attack, inputs: Inputs, chunk: list[Run],
                       c0: float) -> None:
    """A prompted attack's seeds: the model unchanged, evaluated with each seed's prompts."""
    test = ctx.splits["test"]
    for r in chunk:
        if r.done:
            continue
        ptask = attack.eval_task(task, a, r.spec["seed"], inputs)
        t1 = time.time()
        comps = complete_many(model, [{}], tok, ptask, test, None, ctx.cfg.eval)[0]
        group = {"group_train_seconds": 0.0, "group_eval_seconds": round(time.time() - t1, 3),
                 "group_compute_seconds": round(ComputeClock.seconds - c0, 3), "group_size": 1}

        def fn(d: Path, ptask=ptask, comps=comps, group=group) -> dict:
            res = write_records(ptask, test, None, comps, d / "records.jsonl")
            return {**res, "prompted_with": ptask.label, **group}

        r.compute(fn)
        c0 = ComputeClock.seconds


def _copy(model):
    import copy

    return copy.deepcopy(model)


def pre_finetune(ctx: Context, model, tok, task, a, weak_lock: Run) -> None:
    """Fine-tune `model` in place on `a.pre_pool` weak samples of the lock split, no password,
    for `a.pre_epochs` epochs with the lock's learning rate, batch size and optimizer."""
    lc = ctx.cfg.lock
    pool = read_jsonl(weak_lock.dir / "samples.jsonl")
    check_not_empty(weak_lock, (x["completion"] for x in pool))
    if a.pre_pool > len(pool):
        raise ValueError(f"attack {a.name!r}: pre_pool={a.pre_pool} but the lock split has {len(pool)} "
                         f"weak samples (raise task.n_lock)")
    seed = derive_seed("pre", ctx.cfg.seed, a.pre_pool, a.pre_epochs)
    exs = wsu_examples(task, random.Random(seed).sample(pool, a.pre_pool), ctx.by_id)
    train(model, tok, exs, steps=math.ceil(a.pre_pool / lc.batch_size) * a.pre_epochs,
          batch_size=lc.batch_size, lr=lc.lr, optimizer=lc.optimizer, warmup=lc.warmup, loss=lc.loss,
          seed=seed, desc=f"fine-tuning on {a.pre_pool} weak samples", progress=False)
