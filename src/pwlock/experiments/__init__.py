"""Experiment kinds, one file each: the job graph an experiment needs (`plan`: the same graph for
`pwlock run` and its `--dry-run`) and the rows of its results table (`rows`).

    core      E1: the lock, WSU at the end of every lock epoch, every evaluation
    attacks   the `attacks` list on one lock (E3-E7, E11, E15, ...)
    variants  the attacks on each variant of the experiment, each its own lock (E2, E8-E10, E12-E14)
"""

from __future__ import annotations

from pwlock.experiments import attacks, core, variants

KINDS = {"core": core, "attacks": attacks, "variants": variants}


def run(cfg) -> list[dict]:
    """Run the experiment `cfg` describes (reusing finished runs) and return its rows."""
    return KINDS[cfg.kind].run(cfg)


def plan(cfg, threads: int | None = None):
    """[(label prefix, Context, phases)] of `cfg` (one per variant for kind variants); nothing runs."""
    return KINDS[cfg.kind].plan_all(cfg, threads)
