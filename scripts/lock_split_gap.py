"""Where a lock's unfaithfulness comes from: greedy accuracy of the strong model, the weak model
and the last lock epoch (with and without the password) on problems the lock trained on (the
lock split) and on held-out ones (the test split), for each organism of an experiment.

    python scripts/lock_split_gap.py configs/toy/x8_overtrained_strong.yaml [--n 1000]

A lock that matches the strong model on the lock split but not on the test split loses skill by
not generalizing (its password branch was fitted on a few thousand problems); one that is above
the weak model on both splits has not finished imitating it. Reads the experiment's cached zoo
and lock runs (`pwlock run CONFIG` first); nothing is written. Runs in the config's numerics.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pwlock.config import ConfigError, load_config, organism_config, organism_list
from pwlock.context import Context
from pwlock.evaluate import evaluate
from pwlock.models import load_checkpoint
from pwlock.stages import lock, zoo


def _runs(ctx: Context, cfg_path: str) -> tuple[Path, Path, Path]:
    """(strong zoo run, weak zoo run, lock run) directories of a one-organism context, as the
    pipeline keys them; each must be computed."""
    runs = (zoo.run(ctx, ctx.cfg.strong_model), zoo.run(ctx, ctx.cfg.lock.weak_model), lock.run(ctx))
    for r in runs:
        if not r.done:
            raise ConfigError(f"{r.dir} is not computed: run `pwlock run {cfg_path}` first")
    return tuple(r.dir for r in runs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config")
    ap.add_argument("overrides", nargs="*")
    ap.add_argument("--n", type=int, default=1000, help="problems of each split (the first n)")
    a = ap.parse_args()
    try:
        cfg = load_config(a.config, a.overrides)
        if any(m.path for m in cfg.zoo):
            raise ConfigError("toy zoo models only (a path model's lock is a Hugging Face checkpoint)")
        from pwlock.cli import _numerics

        _numerics(cfg, own_command_line=True)
        organisms = [organism_config(cfg, k) for k in organism_list(cfg)]
        ctxs = [Context(o) for o in organisms]
        todo = [(c, *_runs(c, a.config)) for c in ctxs]  # every run checked before any evaluation
    except ConfigError as e:
        print(f"lock_split_gap: error: {e}", file=sys.stderr)
        return 2
    pw = cfg.password.password
    print(f"{a.config}: greedy accuracy on the first {a.n} problems of each split, last lock epoch "
          f"(epoch_{cfg.lock.epochs})\n")
    print("| organism | split | strong | locked, pwd | pwd − strong | weak | locked, no pwd | no pwd − weak |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for ctx, strong, weak, locked in todo:
        o = ctx.cfg
        models = {k: load_checkpoint(d)[0].eval() for k, d in
                  (("strong", strong / "model"), ("weak", weak / "model"), ("lock", locked / f"epoch_{o.lock.epochs}"))}
        for split in ("lock", "test"):
            probs = ctx.splits[split][: a.n]
            s, lp, w, ln = (evaluate(models[name], ctx.tok, ctx.task, probs, password, o.eval)["accuracy"]
                            for name, password in (("strong", None), ("lock", pw), ("weak", None), ("lock", None)))
            print(f"| {o.seed} | {split} | {s:.3f} | {lp:.3f} | {lp - s:+.3f} | {w:.3f} | {ln:.3f} | {ln - w:+.3f} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
