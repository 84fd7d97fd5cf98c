"""Benchmark: evaluating K models of one base together (pwlock.stacked_sampling) vs one after another.

    python bench/eval_stacked.py [--k 5 16] [--n 1000] [--threads 1] [--device cpu|cuda]

The K models are the toy strong model's architecture (configs/toy/core.yaml) with random weights
plus small per-model perturbations (as K short fine-tuning runs of one checkpoint leave them).
The random model rarely emits EOS, so every prompt runs the full `--tokens`. Each way generates
greedily for the same `--n` test prompts with the same batch of prompts x models (1000, as in
`eval.batch_size`); prints new tokens per second of each way (best of 3 alternating rounds), the
speed-up, and whether the completions are identical.
"""

from __future__ import annotations

import argparse
import time

import torch

from pwlock.config import load_config
from pwlock.models import build_model
from pwlock.sampling import generate
from pwlock.stacked_sampling import generate_stacked
from pwlock.tasks import get_task
from pwlock.tokenizer import char_tokenizer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, nargs="+", default=[5, 16])
    ap.add_argument("--n", type=int, default=1000, help="test prompts")
    ap.add_argument("--tokens", type=int, default=40, help="new tokens per prompt")
    ap.add_argument("--batch", type=int, default=1000, help="prompts x models per generation batch")
    ap.add_argument("--threads", type=int, default=1, help="1: as in the worker processes of `pwlock run`")
    ap.add_argument("--config", default="configs/toy/core.yaml")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = load_config(a.config)
    task = get_task(cfg.task)
    tok = char_tokenizer(task.alphabet)
    strong = next(m for m in cfg.zoo if m.name == cfg.strong_model)
    model = build_model(strong.arch, tok, seed=0).to(a.device).eval()
    prompts = [task.prompt(p, None) for p in task.splits()["test"][: a.n]]
    where = torch.cuda.get_device_name() if a.device == "cuda" else f"{a.threads} thread(s)"
    print(f"model {strong.arch}, {where}, {len(prompts)} prompts x {a.tokens} tokens, batch {a.batch}")
    print("| K | one by one, new tokens/s | stacked, new tokens/s | speed-up | same completions |")
    print("|---|---|---|---|---|")
    g = torch.Generator().manual_seed(0)
    base = {n: p.detach().clone() for n, p in model.named_parameters()}
    for K in a.k:
        ws = [{n: p + 0.01 * p.std() * torch.randn(p.shape, generator=g).to(p.device) for n, p in base.items()}
              for _ in range(K)]

        def one_by_one(ws=ws):
            out = []
            with torch.no_grad():
                for w in ws:
                    for n, p in model.named_parameters():
                        p.copy_(w[n])
                    out.append(generate(model, tok, prompts, max_new_tokens=a.tokens, batch_size=a.batch))
                for n, p in model.named_parameters():
                    p.copy_(base[n])
            return out

        def stacked(ws=ws):
            return generate_stacked(model, ws, tok, prompts, max_new_tokens=a.tokens, batch_size=a.batch)

        def timed(f):
            if a.device == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            out = f()
            if a.device == "cuda":
                torch.cuda.synchronize()
            return time.perf_counter() - t, out

        timed(stacked)  # warm-up
        best_seq = best_st = float("inf")
        for _ in range(3):
            t, ref = timed(one_by_one)
            best_seq = min(best_seq, t)
            t, got = timed(stacked)
            best_st = min(best_st, t)
        new = sum(len(c) for out in ref for c in out)
        print(f"| {K} | {new / best_seq:,.0f} | {new / best_st:,.0f} | {best_seq / best_st:.2f}x | "
              f"{'yes' if got == ref else 'NO'} |", flush=True)


if __name__ == "__main__":
    main()
