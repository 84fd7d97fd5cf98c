"""Benchmark: K WSU runs trained together (pwlock.stacked) vs the same K runs one after another.

    python bench/wsu_batched.py [--k 4 16] [--steps 50] [--threads 2]

The model is the toy strong model's architecture (configs/toy/core.yaml) with random weights;
each run trains on its own 2 arithmetic samples, full batch, AdamW, as WSU does. Prints the
seconds per step of each way (best of 3 alternating rounds) and the speed-up ratio, both measured
in this process.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

from pwlock.config import load_config
from pwlock.models import build_model
from pwlock.stacked import train_stacked
from pwlock.tasks import get_task
from pwlock.tokenizer import char_tokenizer
from pwlock.train import Example, train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, nargs="+", default=[4, 16])
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--config", default="configs/toy/core.yaml")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = load_config(a.config)
    task = get_task(cfg.task)
    tok = char_tokenizer(task.alphabet)
    strong = next(m for m in cfg.zoo if m.name == cfg.strong_model)
    model = build_model(strong.arch, tok, seed=0).to(a.device)
    probs = task.splits()["elicit"]
    where = torch.cuda.get_device_name() if a.device == "cuda" else f"{a.threads} threads"
    print(f"model {strong.arch}, {where}, {a.steps} steps per run, AdamW, 2 samples per run")
    print("| K | sequential s/step | stacked s/step | speed-up |")
    print("|---|---|---|---|")
    for K in a.k:
        sets = [[Example(task.prompt(p, None), p.solution) for p in probs[2 * k: 2 * k + 2]] for k in range(K)]
        train_stacked(model, tok, sets, steps=5, lr=1e-5)  # warm-up
        stacked = seq = float("inf")
        for _ in range(3):  # best of 3 rounds, alternating
            t = time.perf_counter()
            train_stacked(model, tok, sets, steps=a.steps, lr=1e-5)
            stacked = min(stacked, (time.perf_counter() - t) / a.steps)
            t = time.perf_counter()
            for exs in sets:
                train(copy.deepcopy(model), tok, exs, steps=a.steps, batch_size=2, lr=1e-5, grad_clip=0.0,
                      progress=False)
            seq = min(seq, (time.perf_counter() - t) / a.steps)
        print(f"| {K} | {seq:.3f} | {stacked:.3f} | {seq / stacked:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
