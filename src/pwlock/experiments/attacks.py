"""Several elicitation attacks (`attacks`) on one lock, each with its seeds (E3-E7, E11, E15)."""

from __future__ import annotations

from pwlock.config import attack_epoch
from pwlock.context import Context
from pwlock.experiments.common import eval_jobs, plan_one, run_graph, upstream_phases
from pwlock.parallel import Job, Phase
from pwlock.stages import elicit


def plan(ctx: Context) -> tuple[list[Phase], list[Job], list[Job]]:
    cfg = ctx.cfg
    phases, lock_run, sources = upstream_phases(ctx, strong_elicit=True)
    groups = [Job("attack", elicit.compute, (lock_run, g, sources), tuple(elicit.runs(ctx, lock_run, g, sources)))
              for g in (elicit.Group(a, attack_epoch(cfg, a)) for a in cfg.attacks)]
    evals = eval_jobs(ctx, lock_run, sorted({j.args[1].epoch for j in groups}))
    phases.append(Phase(f"{len(groups)} attacks and {len(evals)} evaluations", tuple(groups + evals)))
    return phases, groups, evals


def plan_all(cfg, threads=None):
    return plan_one(cfg, threads, plan)


def run(cfg) -> list[dict]:
    return run_graph(cfg, plan, lambda cfg: [a.name for a in cfg.attacks])


def write_report(rows: list[dict], cfg) -> dict:
    from pwlock import report

    return report.write_attacks_report(rows, cfg.results_dir, cfg)


def verdicts(summary: dict) -> list[str]:
    from pwlock import report

    return [report.attack_verdict(name, s) for name, s in summary["attacks"].items()]
