"""Benchmark: E1 on the toy organism end to end, from nothing: wall time, peak memory, and the
share of the time spent in model compute.

    python bench/e1_time.py [--config configs/toy/core.yaml] [--runs-dir /tmp/pwlock-bench-runs] [k=v ...]

Runs `pwlock run` in a fresh runs directory (deleted first), then reads the run.json of every
run it computed: `timings.compute_seconds` is the time inside model calls (forward, backward,
optimizer step, generation steps), the rest of a run's seconds is overhead (data, tokenizing,
scoring, files). Runs in worker processes overlap in time, so the per-stage sums can exceed
the wall time.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/toy/core.yaml")
    ap.add_argument("--runs-dir", default="/tmp/pwlock-bench-runs")
    ap.add_argument("--out-dir", default="/tmp/pwlock-bench-out")
    ap.add_argument("--since", type=float, default=None,
                    help="do not run: summarize the runs of --runs-dir started after this Unix time")
    ap.add_argument("overrides", nargs="*")
    a = ap.parse_args()
    runs = Path(a.runs_dir)
    if a.since is None:
        shutil.rmtree(runs, ignore_errors=True)
        cmd = [sys.executable, "-m", "pwlock.cli", "run", a.config, *a.overrides, f"runs_dir={runs}",
               f"out_dir={a.out_dir}"]
        t = time.perf_counter()
        subprocess.run(cmd, check=True)
        wall = time.perf_counter() - t
        peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    by_stage = defaultdict(lambda: [0, 0.0, 0.0])
    starts, ends = [], []
    for f in runs.rglob("run.json"):
        info = json.loads(f.read_text())
        if a.since is not None and info["timings"]["started"] < a.since:
            continue
        starts.append(info["timings"]["started"])
        ends.append(info["timings"]["started"] + info["timings"]["seconds"])
        res = info["results"] if isinstance(info["results"], dict) else {}
        # a group of runs trained and evaluated together (WSU seeds, attacks): its share of the time
        size = max(1, res.get("group_size", 1))
        shared = (res.get("group_train_seconds", 0.0) + res.get("group_eval_seconds", 0.0)) / size
        shared_compute = res.get("group_compute_seconds", res.get("group_train_seconds", 0.0)) / size
        s = by_stage[info["stage"]]
        s[0] += 1
        s[1] += info["timings"]["seconds"] + shared
        s[2] += info["timings"].get("compute_seconds", 0.0) + shared_compute
    if a.since is None:
        print(f"E1 ({a.config} {' '.join(a.overrides)}): wall {wall / 60:.1f} min, peak RSS of one process "
              f"{peak_gib:.2f} GiB")
    else:
        print(f"runs of {runs} started after {a.since:.0f}: first start to last finish "
              f"{(max(ends) - min(starts)) / 60:.1f} min")
    print("| stage | runs | run seconds (sum) | model compute seconds (sum) | compute share |")
    print("|---|---|---|---|---|")
    tot = [0, 0.0, 0.0]
    for stage, (n, sec, comp) in sorted(by_stage.items()):
        tot = [tot[0] + n, tot[1] + sec, tot[2] + comp]
        print(f"| {stage} | {n} | {sec:.0f} | {comp:.0f} | {comp / max(sec, 1e-9):.0%} |")
    print(f"| all | {tot[0]} | {tot[1]:.0f} | {tot[2]:.0f} | {tot[2] / max(tot[1], 1e-9):.0%} |")


if __name__ == "__main__":
    main()
