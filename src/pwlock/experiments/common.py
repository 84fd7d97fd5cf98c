"""The part of the job graph every experiment kind shares: zoo, samples and the lock, then the
evaluations; and the rows of evaluated models."""

from __future__ import annotations

from pwlock import distributed, parallel
from pwlock.context import Context
from pwlock.parallel import Job, Phase
from pwlock.runs import Run, load_results
from pwlock.stages import eval as eval_stage
from pwlock.stages import lock, samples, zoo


def upstream_phases(ctx: Context, strong_elicit: bool) -> tuple[list[Phase], Run, dict[str, Run]]:
    """The zoo, the lock split's samples, the lock, the elicit split's samples: (phases, the lock
    run, the attacks' sample sources: weak and strong on the elicit split, weak on the lock split)."""
    cfg, lc = ctx.cfg, ctx.cfg.lock
    z = {m.name: zoo.run(ctx, m.name) for m in cfg.zoo}
    strong, weak = z[cfg.strong_model], z[lc.weak_model]
    ups = lock.upstream_runs(ctx)
    lock_run = lock.run(ctx)
    sources = {"weak": samples.run(ctx, weak, "elicit", cfg.elicit_temperature), "weak_lock": ups["weak_samples"]}
    elicit_samples = [(weak, cfg.elicit_temperature)] + ([(strong, 0.0)] if strong_elicit else [])
    if strong_elicit:
        sources["strong"] = samples.run(ctx, strong, "elicit", 0.0)

    def sampling(split, which):
        return tuple(Job("samples", samples.compute, (m, split, t), (samples.run(ctx, m, split, t),), "main")
                     for m, t in which)

    # The strong model is compute-bound (every thread of this process); the small weak models are
    # overhead-bound and train side by side in single-threaded workers.
    phases = [
        Phase("training the strong model", (Job("zoo", zoo.compute, (cfg.strong_model,), (strong,), "main"),)),
        Phase("training the weak models", tuple(Job("zoo", zoo.compute, (m.name,), (z[m.name],))
                                                for m in cfg.zoo if m.name != cfg.strong_model)),
        Phase("sampling the lock split", sampling("lock", lock.lock_samples(ctx).values())),
        Phase("locking", (Job("lock", lock.compute, (), (lock_run,), "ranks"),)),
        Phase("sampling the elicit split", sampling("elicit", elicit_samples)),
    ]
    return phases, lock_run, sources


def eval_jobs(ctx: Context, lock_run: Run, epochs) -> list[Job]:
    """Every zoo model without password, the lock at each of `epochs` without and with it."""
    pairs = [(zoo.run(ctx, m.name), "model", False) for m in ctx.cfg.zoo] + [
        (lock_run, f"epoch_{e}", pw) for e in epochs for pw in (False, True)]
    return [Job("eval", eval_stage.compute, p, (eval_stage.run(ctx, *p),)) for p in pairs]


def eval_rows(ctx: Context, jobs: list[Job]) -> list[dict]:
    rows = []
    for j in jobs:
        run, ckpt, pw = j.args
        res = load_results(j.runs[0])
        model, epoch = (run.name, None) if ckpt == "model" else ("locked", int(ckpt.split("_")[1]))
        rows.append({"experiment": ctx.cfg.experiment, "model": model, "lock_epoch": epoch, "attack": "none",
                     "seed": None, "password": pw, "n_test": res["n_test"], "accuracy": res["accuracy"],
                     "correct": res["correct"], "run": run.id})  # the evaluated model's run
    return rows


def attack_rows(ctx: Context, job: Job, name: str) -> list[dict]:
    """The rows of one elicitation group job (its runs in seed order)."""
    g = job.args[1]
    return [{"experiment": ctx.cfg.experiment, "model": "locked", "lock_epoch": g.epoch, "attack": name,
             "seed": s, "password": False, "n_test": res["n_test"], "accuracy": res["accuracy"],
             "correct": res["correct"], "run": r.id}
            for s, (r, res) in enumerate((r, load_results(r)) for r in job.runs)]


def plan_one(cfg, threads, plan) -> list:
    """`plan_all` of a one-lock experiment: [("", its Context, its phases)]."""
    ctx = Context(cfg, threads=threads, plan_only=True)
    return [("", ctx, plan(ctx)[0])]


def run_graph(cfg, plan, names) -> list[dict]:
    """Run a one-lock experiment: `plan(ctx)` gives (phases, group jobs, eval jobs); its rows are
    the evaluations', then each group's, labelled `names(cfg)[i]` (rank > 0 of torchrun: none)."""
    ctx = Context(cfg)
    phases, groups, evals = plan(ctx)
    if not execute(ctx, phases):
        return []
    return eval_rows(ctx, evals) + [r for name, g in zip(names(cfg), groups) for r in attack_rows(ctx, g, name)]


def execute(ctx: Context, phases: list[Phase]) -> bool:
    """Run the graph; False on a rank > 0 of a torchrun group (it only joined the lock)."""
    lock.check_sharding(ctx)  # before any work
    env = distributed.current_env()
    if env is not None and not env.is_main:
        parallel.follow(ctx, phases)
        return False
    parallel.execute(ctx, phases)
    return True
