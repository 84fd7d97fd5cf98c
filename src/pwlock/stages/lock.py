"""The lock: password-lock the start model (the strong one unless `lock.start_model`), a
checkpoint per epoch, E8's relock rounds after them. Under `torchrun` every process trains its
shard of each batch (`pwlock.distributed`, `lock.distributed: fsdp | ddp`) into the same run."""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path

import torch

from pwlock import distributed, hf
from pwlock.config import WSUConfig, spec_dict
from pwlock.context import Context, derive_seed, log
from pwlock.lock import answer_distributions, answer_targets, lock_mixture, relock_rounds, run_lock, weak_distributions
from pwlock.models import save_checkpoint
from pwlock.runs import Run
from pwlock.stages import samples, zoo
from pwlock.train import Example
from pwlock.utils import atomic_write_text


def lock_samples(ctx: Context) -> dict[str, tuple[Run, float]]:
    """The lock split's samples a lock reads, by upstream name: (the zoo run sampled, temperature)."""
    cfg, lc = ctx.cfg, ctx.cfg.lock
    strong, weak = zoo.run(ctx, cfg.strong_model), zoo.run(ctx, lc.weak_model)
    if lc.given:  # nothing is locked; the weak samples of the lock split are what pre_pool attacks train on
        return {"weak_samples": (weak, lc.weak_temperature)}
    out = {"strong_samples": (strong, 0.0), "weak_samples": (weak, lc.weak_temperature)}
    if lc.second_password:
        out["second_samples"] = (weak, lc.second_temperature)
    return out


def upstream_runs(ctx: Context) -> dict[str, Run]:
    """The runs a lock reads: its start model, the strong and weak samples of the lock split (and
    the second password's), the weak model (soft or argmax labels)."""
    cfg, lc = ctx.cfg, ctx.cfg.lock
    weak = zoo.run(ctx, lc.weak_model)
    if lc.given:  # (lock_samples: only the weak ones)
        return {"given": zoo.run(ctx, lc.given), **{k: samples.run(ctx, m, "lock", t) for k, (m, t) in
                                                     lock_samples(ctx).items()}}
    out = {"start": zoo.run(ctx, lc.start_model or cfg.strong_model),
           **{k: samples.run(ctx, m, "lock", t) for k, (m, t) in lock_samples(ctx).items()}}
    if lc.labels != "samples":
        out["weak_model"] = weak
    return out


def run(ctx: Context) -> Run:
    cfg, lc = ctx.cfg, ctx.cfg.lock
    if lc.given:  # a model locked elsewhere: its run holds it as checkpoint epoch_1 (keyed by its zoo run)
        return Run(ctx.runs_dir, "lock", f"given-{lc.given}", {"given": lc.given, **ctx.numerics_spec},
                   {"given": zoo.run(ctx, lc.given).id})
    key = spec_dict(lc)
    key.pop("distributed", None)  # left out: how it is sharded (the same lock up to rounding)
    spec = {"lock": key, "password": spec_dict(cfg.password), "seed": derive_seed("lock", cfg.seed, lc.seed),
            **ctx.numerics_spec}
    if lc.labels != "samples" and hasattr(ctx.task, "answer_tokens"):
        spec["labels_on"] = "answer_letters"  # multiple choice: labels over the answer letters
    if lc.relock_rounds:  # the rounds memorize with the experiment's WSU: its options are the lock's
        wsu = {k: getattr(cfg.wsu, k) for k in ("n_samples", "steps", "lr", "optimizer", "loss")
               if getattr(cfg.wsu, k) != getattr(WSUConfig(), k)}
        if wsu:
            spec["relock_wsu"] = wsu
    # left out: threads, device, workers, the evaluation settings (a lock samples nothing)
    return Run(ctx.runs_dir, "lock", f"{lc.start_model or cfg.strong_model}-as-{lc.weak_model}", spec,
               {k: r.id for k, r in upstream_runs(ctx).items()})


def check_sharding(ctx: Context) -> None:
    """Lock options that need (or do not support) several processes: checked before any work."""
    lc, env = ctx.cfg.lock, distributed.current_env()
    if env is not None and lc.labels == "soft":
        raise ValueError("lock.labels=soft is not supported in a lock sharded across processes yet; "
                         "run this lock in one process")
    if lc.fsdp_compute_dtype and env is None:
        raise ValueError("lock.fsdp_compute_dtype applies to a lock sharded under torchrun "
                         "(torchrun --nproc-per-node N -m pwlock.cli run CONFIG)")


def compute(ctx: Context) -> Run:
    """Compute the lock (and its upstream runs, if missing). Under torchrun, every process calls
    this together (`pwlock.parallel`): rank 0 computes the upstream runs and writes the lock run;
    the others train their shards and write nothing."""
    cfg, lc = ctx.cfg, ctx.cfg.lock
    if lc.given:
        return _given(ctx)
    env = distributed.current_env()
    main = env is None or env.is_main
    check_sharding(ctx)
    ups = upstream_runs(ctx)
    if main:  # the same order as ever: zoo runs, then the lock split's samples
        for name in dict.fromkeys((cfg.strong_model, lc.start_model or cfg.strong_model, lc.weak_model)):
            zoo.compute(ctx, name)
        for m, t in lock_samples(ctx).values():
            samples.compute(ctx, m, "lock", t)
    r = run(ctx)
    seed = r.spec["seed"]
    start, weak = ups["start"], zoo.run(ctx, lc.weak_model)

    def fn(d: Path) -> dict:
        model, tok = ctx.load(start)
        ctx.for_training(model, start)
        # the locked model's prompt format (its chat template) around the other models' text
        task = ctx.task_for(start, tok)
        weak_c = samples.completions(ups["weak_samples"])
        targets = None
        probs = ctx.splits["lock"]
        if lc.labels != "samples" and hasattr(task, "answer_tokens"):
            # multiple choice: the weak model's distribution over the answer letters (soft) or
            # its most likely letter (argmax), in the locked model's own letter tokens
            wmodel, wtok = ctx.load(weak)
            wtask = ctx.task_for(weak, wtok)
            dists = answer_distributions(wmodel, wtok, wtask, [wtask.prompt(p, None) for p in probs],
                                         lc.weak_temperature if lc.labels == "soft" else 1.0, cfg.eval.batch_size)
            del wmodel
            made = answer_targets(task, tok, dists, soft=lc.labels == "soft")
            weak_c = {p.id: c for p, (c, _) in zip(probs, made)}
            if lc.labels == "soft":
                targets = {p.id: t for p, (_, t) in zip(probs, made)}
            atomic_write_text(d / "weak_letters.json", json.dumps(
                {p.id: [round(x, 6) for x in dist.tolist()] for p, dist in zip(probs, dists)}))
        elif lc.labels == "soft":
            wmodel, wtok = ctx.load(weak)
            if wtok.get_vocab() != tok.get_vocab():
                raise ValueError("lock.labels=soft needs the weak and locked models to share a tokenizer")
            wtask = ctx.task_for(weak, wtok)
            dists = weak_distributions(wmodel, wtok, [wtask.prompt(p, None) for p in probs],
                                       [weak_c[p.id] for p in probs], lc.weak_temperature, cfg.eval.batch_size)
            targets = {p.id: t for p, t in zip(probs, dists)}
            del wmodel
        second = ups.get("second_samples")
        strong_c = samples.completions(ups["strong_samples"])
        samples.check_not_empty(ups["strong_samples"], strong_c.values())
        samples.check_not_empty(ups["weak_samples"], (weak_c[p.id] for p in probs))
        if second:
            samples.check_not_empty(second, samples.completions(second).values())
        examples = lock_mixture(task, probs, strong_c, weak_c, cfg.password,
                                seed, password_branch=lc.password_branch, weak_targets=targets,
                                second=(lc.second_password, samples.completions(second)) if second else None)
        # weak examples without password: what E9's overfitting episodes and E8's rounds memorize
        plain_weak = [Example(task.prompt(p, None), weak_c[p.id]) for p in probs]
        save, kw = save_checkpoint, {}
        if lc.lora.r:  # adapters trained, the merged weights saved at each epoch
            from pwlock import lora

            model = lora.wrap(model, lc.lora, seed)
            # sharded: rank 0 keeps an unsharded copy to load the gathered weights into and merge
            template = copy.deepcopy(model) if env is not None and main else None

            def save(m, tok_, path, meta):
                if env is not None:
                    state = distributed.full_state_dict(m)  # a collective: every rank gathers
                    if main:
                        template.load_state_dict(state)
                    m, meta = template, {**meta, "world_size": env.world_size}
                if main:
                    save_checkpoint(lora.merged_copy(m), tok_, path, {**meta, "lora_r": lc.lora.r})
                    if lc.lora_keep == "adapter":  # the adapter too, for attacks that go on training it
                        lora.save_adapter(m, Path(path) / "adapter")
                distributed.barrier()
        if env is not None:  # sharded: every process gathers, rank 0 writes
            mp = {}
            if lc.fsdp_compute_dtype:
                mp = {"param_dtype": hf.resolve_dtype(lc.fsdp_compute_dtype), "reduce_dtype": torch.float32}
            model = distributed.shard_model(model, env, lc.distributed, **mp)
            if not lc.lora.r:
                save = distributed.sharded_saver(env)
            kw = {"rank": env.rank, "world_size": env.world_size, "progress": main}
        if main:
            log(f"locking for {lc.epochs} epochs on {len(examples)} examples"
                + (f", {env.world_size} processes ({lc.distributed})" if env else ""))
        losses = run_lock(model, tok, examples, lc, seed, d, overfit_pool=plain_weak if lc.overfit_every else None,
                          save=save, **kw)
        out = {"epochs": lc.epochs, "steps": len(losses), "final_loss": losses[-1]}
        if env is not None:
            out["world_size"], out["distributed"] = env.world_size, lc.distributed
        if lc.relock_rounds:
            if main:
                log(f"{lc.relock_rounds} rounds of WSU then relocking")
            relock = relock_rounds(model, tok, examples, plain_weak, lc, cfg.wsu, seed, d, save=save, **kw)
            out["relock_final_loss"] = relock[-1]
            losses += relock
        atomic_write_text(d / "losses.json", json.dumps(losses))
        return out

    if main:
        r.compute(fn, log)
    elif not r.done:  # another rank of a sharded lock: the same training, its files thrown away
        with tempfile.TemporaryDirectory() as d:
            fn(Path(d))
    return r


def _given(ctx: Context) -> Run:
    """`lock.given`: the zoo model, already locked, saved as the lock run's checkpoint epoch_1 (a
    pwlock checkpoint with its checksum, as every lock epoch), so evaluations and attacks read it
    as they read any lock."""
    lc = ctx.cfg.lock
    zoo.compute(ctx, lc.given)
    zoo.compute(ctx, lc.weak_model)
    for m, t in lock_samples(ctx).values():
        samples.compute(ctx, m, "lock", t)
    r = run(ctx)

    def fn(d: Path) -> dict:
        model, tok = ctx.load(zoo.run(ctx, lc.given))
        save_checkpoint(model, tok, d / "epoch_1", {"epoch": 1, "given": lc.given})
        return {"epochs": 1, "given": lc.given}

    r.compute(fn, log)
    return r
