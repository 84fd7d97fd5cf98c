"""Experiment kinds, one file each: the job graph an experiment needs (`plan`: the same graph for
`pwlock run` and its `--dry-run`) and the rows of its results table (`rows`).

    core      E1: the lock, WSU at the end of every lock epoch, every evaluation
    attacks   the `attacks` list on one lock (E3-E7, E11, E15, ...)
    variants  the attacks on each variant of the experiment, each its own lock (E2, E8-E10, E12-E14)
    audit     the attacks battery on the lock and an unlocked control: a report card (`pwlock audit`)

Any kind runs over several organisms (`organisms: [0, 1, 2]`): organism k is the experiment with
`seed=k`, run after the one before; every row carries its `organism`.
"""

from __future__ import annotations

from pwlock.config import organism_config, organism_list
from pwlock.experiments import attacks, audit, core, variants

KINDS = {"core": core, "attacks": attacks, "variants": variants, "audit": audit}


def run(cfg) -> list[dict]:
    """Run the experiment `cfg` describes on each of its organisms (reusing finished runs) and
    return its rows, each with its `organism`."""
    from pwlock.context import log

    ks = organism_list(cfg)
    rows = []
    for i, k in enumerate(ks):
        if len(ks) > 1:
            log(f"organism {k} ({i + 1} of {len(ks)}): seed={k}")
        rows += [{"organism": k, **r} for r in KINDS[cfg.kind].run(organism_config(cfg, k))]
    return rows


def plan(cfg, threads: int | None = None):
    """[(label prefix, Context, phases)] of `cfg` (one per organism and variant); nothing runs."""
    ks = organism_list(cfg)
    out = []
    for k in ks:
        pre = f"organism {k}: " if len(ks) > 1 else ""
        out += [(pre + p, ctx, phases) for p, ctx, phases in KINDS[cfg.kind].plan_all(organism_config(cfg, k), threads)]
    return out
