"""E1: the lock, and at the end of each locking epoch WSU (the `wsu` section) with several seeds."""

from __future__ import annotations

from pwlock.context import Context
from pwlock.experiments.common import eval_jobs, plan_one, run_graph, upstream_phases
from pwlock.parallel import Job, Phase
from pwlock.stages import elicit


def plan(ctx: Context) -> tuple[list[Phase], list[Job], list[Job]]:
    """(phases, WSU group jobs, evaluation jobs)."""
    cfg = ctx.cfg
    phases, lock_run, sources = upstream_phases(ctx, strong_elicit=False)
    epochs = range(1, cfg.lock.epochs + 1)
    groups = [Job("wsu", elicit.compute, (lock_run, g, sources), tuple(elicit.runs(ctx, lock_run, g, sources)))
              for g in (elicit.Group(cfg.wsu, e, "wsu") for e in epochs)]
    evals = eval_jobs(ctx, lock_run, epochs)
    w = cfg.wsu
    # one pool for both kinds of jobs, the long WSU groups first
    phases.append(Phase(f"WSU ({w.n_samples} samples x {w.steps} steps, {w.seeds} seeds x {len(groups)} "
                        f"checkpoints) and {len(evals)} evaluations", tuple(groups + evals)))
    return phases, groups, evals


def plan_all(cfg, threads=None):
    return plan_one(cfg, threads, plan)


def run(cfg) -> list[dict]:
    return run_graph(cfg, plan, lambda cfg: ["wsu"] * cfg.lock.epochs)


def write_report(rows: list[dict], cfg) -> dict:
    from pwlock import report

    return report.write_core_report(rows, cfg.results_dir, cfg)


def verdicts(summary: dict) -> list[str]:
    from pwlock import report

    return [report.verdict(summary)]
