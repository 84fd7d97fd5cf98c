"""`pwlock run CONFIG --verify`: recompute an experiment from nothing in a temporary runs
directory and compare its per-problem answers with the committed ones (`per_problem.jsonl` of
its results directory), row by row. Nothing of the committed results or the runs cache is
touched. Differences are what a reader regenerating the results would see: another CPU (see
`numerics`), another library version, or a change of code."""

from __future__ import annotations

import tempfile
from pathlib import Path

from pwlock.config import ConfigError, with_overrides

KEYS = ("organism", "variant", "model", "lock_epoch", "attack", "seed", "password")


def compare(committed: list[dict], fresh: list[dict]) -> list[str]:
    """One line per row whose answers differ (or that only one side has); empty if identical.
    Results written before rows had an `organism` are compared without it."""
    keys = KEYS if all("organism" in r for r in committed) else KEYS[1:]
    old = {tuple(r.get(k) for k in keys): r for r in committed}
    new = {tuple(r.get(k) for k in keys): r for r in fresh}
    lines = []
    for k in [*old, *(k for k in new if k not in old)]:
        label = ", ".join(f"{n}={v}" for n, v in zip(keys, k) if v is not None)
        if k not in new or k not in old:
            lines.append(f"{label}: only in the {'committed' if k in old else 'recomputed'} results")
            continue
        a, b = old[k]["correct"], new[k]["correct"]
        if a != b:
            n = sum(x != y for x, y in zip(a, b)) + abs(len(a) - len(b))
            lines.append(f"{label}: {n} of {len(a)} answers differ (accuracy {old[k]['accuracy']:.3f} committed, "
                         f"{new[k]['accuracy']:.3f} recomputed)")
    return lines


def verify(cfg, keep: str | None = None) -> list[str]:
    """Recompute `cfg` in a temporary runs dir (or `keep`, left in place) and compare: the lines of
    `compare`. Raises ConfigError when the committed results have no per_problem.jsonl."""
    from pwlock import experiments
    from pwlock.utils import read_jsonl

    committed = Path(cfg.results_dir) / "per_problem.jsonl"
    if not committed.is_file():
        raise ConfigError(f"--verify: {committed} not found: nothing committed to compare with")
    old = read_jsonl(committed)
    with tempfile.TemporaryDirectory(prefix="pwlock-verify-") as tmp:
        root = Path(keep) if keep else Path(tmp)
        vcfg = with_overrides(cfg, [f"runs_dir={root / 'runs'}", f"out_dir={root / 'results'}"])
        experiments.KINDS[cfg.kind].write_report(experiments.run(vcfg), vcfg)
        new = read_jsonl(Path(vcfg.results_dir) / "per_problem.jsonl")
    return compare(old, new)
