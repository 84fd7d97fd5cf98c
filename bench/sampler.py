"""Benchmark: pwlock's batched sampler vs `transformers`' `model.generate` (same prompts, lengths).

    python bench/sampler.py [--n 1000] [--batch 1000] [--threads 2] [--model DIR]

Greedy decoding of `--n` arithmetic test prompts with at most 40 new tokens, stopping at EOS,
left padding, KV cache in both. Uses a trained toy checkpoint if `--model` is given (real
completions of varied length), else the strong architecture with random weights. Prints new
tokens/s of each (best of 3) and the ratio, and checks that the completions are identical.
"""

from __future__ import annotations

import argparse
import time

import torch

from pwlock.config import load_config
from pwlock.models import build_model, load_checkpoint
from pwlock.sampling import generate
from pwlock.tasks import get_task
from pwlock.tokenizer import char_tokenizer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--max-new", type=int, default=40)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--model", default=None, help="a pwlock checkpoint directory (e.g. runs/zoo/strong-*/model)")
    ap.add_argument("--config", default="configs/toy/core.yaml")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = load_config(a.config)
    task = get_task(cfg.task)
    if a.model:
        model, tok, _ = load_checkpoint(a.model)
    else:
        tok = char_tokenizer(task.alphabet)
        model = build_model(next(m for m in cfg.zoo if m.name == cfg.strong_model).arch, tok, seed=0).eval()
    prompts = [task.prompt(p, None) for p in task.splits()["test"][: a.n]]

    def ours():
        return generate(model, tok, prompts, max_new_tokens=a.max_new, batch_size=a.batch)

    @torch.no_grad()
    def hf():
        out = []
        for s in range(0, len(prompts), a.batch):
            enc = tok(prompts[s:s + a.batch], return_tensors="pt", padding=True, add_special_tokens=False)
            gen = model.generate(**enc, max_new_tokens=a.max_new, do_sample=False, eos_token_id=tok.eos_token_id,
                                 pad_token_id=tok.pad_token_id)
            out += tok.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        return out

    def timed(fn):
        best, res = float("inf"), None
        for _ in range(3):
            t = time.perf_counter()
            res = fn()
            best = min(best, time.perf_counter() - t)
        return best, res

    t_hf, c_hf = timed(hf)
    t_ours, c_ours = timed(ours)
    n_new = sum(len(tok(c, add_special_tokens=False)["input_ids"]) + 1 for c in c_ours)  # + EOS
    same = sum(x == y for x, y in zip(c_ours, c_hf))
    print(f"{len(prompts)} prompts, batch {a.batch}, <= {a.max_new} new tokens, {a.threads} threads, "
          f"{'trained ' + a.model if a.model else 'random weights'}")
    print("| sampler | new tokens/s | ratio to generate |\n|---|---|---|")
    print(f"| transformers generate | {n_new / t_hf:,.0f} | 1.00 |")
    print(f"| pwlock.sampling | {n_new / t_ours:,.0f} | {t_hf / t_ours:.2f} |")
    print(f"identical completions: {same}/{len(prompts)}")


if __name__ == "__main__":
    main()
