"""Measurement: how many bf16 weights Lion at the write-up's lr (1.5e-6) changes, with fp32 master
weights (pwlock's default for 16-bit weights) and stepping the bf16 weights directly
(`master_weights: direct`, as the minimal-example notebook's copies appear to do).

    python bench/bf16_lion.py [--steps 1 10 100 200]

A 0.09 M toy model (the toy zoo's weak-model architecture) cast to bf16, trained on 4 arith
problems; prints the share of weights that differ from the start after each number of steps.
Lion moves every weight by lr per step; a bf16 weight only changes when that is at least half
its ulp (about |w| / 256), so stepped directly all but the smallest weights never move.
"""

import argparse
import copy

import torch

from pwlock.config import ArchConfig, TaskConfig
from pwlock.models import build_model
from pwlock.tasks import get_task
from pwlock.tokenizer import char_tokenizer
from pwlock.train import Example, train


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, nargs="+", default=[1, 10, 100, 200])
    ap.add_argument("--lr", type=float, default=1.5e-6)
    args = ap.parse_args()
    task = get_task(TaskConfig(n_operands=3, n_test=10, n_elicit=10, n_lock=20))
    tok = char_tokenizer(task.alphabet)
    m0 = build_model(ArchConfig(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128), tok, 0)
    exs = [Example(task.prompt(p, None), p.solution) for p in task.splits()["lock"][:4]]
    print(f"Lion lr {args.lr:g}, bf16 weights: share of weights changed")
    print(f"{'steps':>6} {'fp32 masters':>13} {'direct':>8}")
    for steps in args.steps:
        row = []
        for mode in (None, False):
            m = copy.deepcopy(m0).to(torch.bfloat16)
            before = [p.detach().clone() for p in m.parameters()]
            train(m, tok, exs, steps=steps, batch_size=4, lr=args.lr, optimizer="lion", master_weights=mode,
                  progress=False)
            n = sum(p.numel() for p in before)
            row.append(sum(int((a != b).sum()) for a, b in zip(before, m.parameters())) / n)
        print(f"{steps:>6} {row[0]:>13.1%} {row[1]:>8.1%}")


if __name__ == "__main__":
    main()
