"""Benchmark: pwlock's training step vs a bare PyTorch loop (same model, batch, optimizer).

    python bench/train_step.py [--steps 60] [--batch 64] [--threads 2]

Both train the toy strong model's architecture (configs/toy/core.yaml) from the same random
init on the same arithmetic batches with AdamW; the bare loop is the textbook
forward / cross-entropy / backward / step on pre-built tensors. Prints tokens/s of each and the
ratio, measured in this process (alternating, best of 3 rounds).
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from pwlock.config import load_config
from pwlock.models import build_model
from pwlock.tasks import get_task
from pwlock.tokenizer import char_tokenizer
from pwlock.train import Example, collate, encode, train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--config", default="configs/toy/core.yaml")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = load_config(a.config)
    task = get_task(cfg.task)
    tok = char_tokenizer(task.alphabet)
    arch = next(m for m in cfg.zoo if m.name == cfg.strong_model).arch
    probs = task.splits()["pretrain"][: a.steps * a.batch]
    examples = [Example(task.prompt(p, None), p.solution) for p in probs]
    rows = encode(tok, examples)
    # the same batches in the same order for both (full-batch steps over consecutive slices)
    batches = [collate(rows[i * a.batch:(i + 1) * a.batch], tok.pad_token_id) for i in range(a.steps)]
    n_tokens = sum(int(att.sum()) for _, att, _ in batches)

    def bare() -> float:
        model = build_model(arch, tok, seed=0)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
        t = time.perf_counter()
        for ids, att, lm in batches:
            logits = model(input_ids=ids, attention_mask=att).logits
            ce = F.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten(), reduction="none")
            loss = (ce * lm[:, 1:].flatten()).sum() / lm[:, 1:].sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            loss.item()
        return time.perf_counter() - t

    def ours() -> float:
        model = build_model(arch, tok, seed=0)
        t = time.perf_counter()  # includes pwlock's tokenization, batching and scheduling
        train(model, tok, examples, steps=a.steps, batch_size=a.batch, lr=1e-3, progress=False)
        return time.perf_counter() - t

    bare()  # warm-up
    tb, to = min(bare() for _ in range(3)), min(ours() for _ in range(3))
    print(f"model {arch}, batch {a.batch}, {a.steps} steps, {a.threads} threads")
    print("| loop | tokens/s | ratio to bare |\n|---|---|---|")
    print(f"| bare PyTorch | {n_tokens / tb:,.0f} | 1.00 |")
    print(f"| pwlock.train | {n_tokens / to:,.0f} | {tb / to:.2f} |")


if __name__ == "__main__":
    main()
