"""Benchmark: the cost of `numerics: portable` against `fast`, on E1's three kinds of work.

    python bench/numerics.py [--steps 100] [--rounds 2]

Each mode runs in its own fresh process (ATen and MKL read their settings once), alternating
fast / portable for `--rounds` rounds; each process times, on one thread: training the toy
strong model (configs/toy/core.yaml's architecture, batch 128) for `--steps` steps (the zoo's
and the lock's kind of work: matmul-bound), 5 WSU runs stacked (2 samples x 50 steps:
overhead-bound), and greedy generation of 500 test prompts (evaluation). Prints seconds per
part, best of the rounds, and the ratio portable / fast.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, sys, time
from pwlock import numerics
numerics.reexec_if_needed()
numerics.apply_from_env()
import torch
torch.set_num_threads(1)
from pwlock.config import load_config
from pwlock.models import build_model
from pwlock.sampling import generate
from pwlock.stacked import train_stacked
from pwlock.tasks import get_task
from pwlock.tokenizer import char_tokenizer
from pwlock.train import Example, train

steps = int(sys.argv[1])
cfg = load_config("configs/toy/core.yaml", ["task.n_pretrain=5000"])
task = get_task(cfg.task)
tok = char_tokenizer(task.alphabet)
strong = next(m for m in cfg.zoo if m.name == cfg.strong_model)
model = build_model(strong.arch, tok, 0)
probs = task.splits()["pretrain"]
exs = [Example(task.prompt(p, None), p.solution) for p in probs]
out = {}
t = time.perf_counter()
train(model, tok, exs, steps=steps, batch_size=128, lr=1e-3, seed=0, progress=False)
out["train"] = time.perf_counter() - t
t = time.perf_counter()
train_stacked(model, tok, [exs[2 * k: 2 * k + 2] for k in range(5)], steps=50, lr=3e-5)
out["wsu"] = time.perf_counter() - t
t = time.perf_counter()
generate(model, tok, [task.prompt(p, None) for p in task.splits()["test"][:500]], max_new_tokens=40,
         temperature=0.0, batch_size=500)
out["generate"] = time.perf_counter() - t
out["provenance"] = {k: v for k, v in numerics.provenance().items()
                     if k in ("numerics", "cpu_capability", "mkl_cbwr", "libm")}
print(json.dumps(out))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    best: dict[str, dict[str, float]] = {}
    for _ in range(a.rounds):
        for mode in ("fast", "portable"):
            env = {k: v for k, v in os.environ.items() if not k.startswith("PWLOCK_NUMERICS")}
            env["PWLOCK_NUMERICS"] = mode
            res = subprocess.run([sys.executable, "-c", CHILD, str(a.steps)], env=env, capture_output=True,
                                 text=True, check=True)
            r = json.loads(res.stdout.strip().splitlines()[-1])
            print(mode, r.pop("provenance"), {k: round(v, 1) for k, v in r.items()}, flush=True)
            b = best.setdefault(mode, {})
            for k, v in r.items():
                b[k] = min(v, b.get(k, float("inf")))
    for part in best["fast"]:
        f, p = best["fast"][part], best["portable"][part]
        print(f"{part:<9} fast {f:7.1f} s  portable {p:7.1f} s  ratio {p / f:.2f}x")


if __name__ == "__main__":
    main()
