"""Batched generation with a KV cache, greedy or with temperature.

Prompts are left-padded; position ids come from the attention mask, so a prompt gives the same
completion whatever else is in its batch. Generation stops when every sequence has emitted EOS.
"""

from __future__ import annotations

import inspect
from typing import Sequence

import torch
from tqdm.auto import tqdm


def _cache_kwarg(model) -> str:
    # transformers >= 5.2x renamed `past_key_values` to `cache`; accept both.
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _cache_of(res):
    return res.cache if getattr(res, "cache", None) is not None else res.past_key_values


@torch.no_grad()
def generate(
    model,
    tokenizer,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 64,
    temperature: float = 0.0,
    seed: int = 0,
    batch_size: int = 256,
    desc: str | None = None,
) -> list[str]:
    """Completions (EOS and everything after it removed) for `prompts`, in order."""
    model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator(device="cpu").manual_seed(seed)
    eos = tokenizer.eos_token_id
    out: list[str] = []
    starts = range(0, len(prompts), batch_size)
    for s in tqdm(starts, desc=desc, disable=desc is None or len(starts) < 2, leave=False):
        chunk = list(prompts[s : s + batch_size])
        enc = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in chunk]
        T = max(len(e) for e in enc)
        ids = torch.full((len(enc), T), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(enc), T), dtype=torch.long)
        for i, e in enumerate(enc):
            ids[i, T - len(e) :] = torch.tensor(e)
            mask[i, T - len(e) :] = 1
        ids, mask = ids.to(device), mask.to(device)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        res = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True)
        cache, logits = _cache_of(res), res.logits[:, -1]
        pos = pos[:, -1:]
        done = torch.zeros(len(enc), dtype=torch.bool, device=device)
        new_tokens = []
        for _ in range(max_new_tokens):
            if temperature > 0:
                probs = torch.softmax(logits.float() / temperature, -1).cpu()
                nxt = torch.multinomial(probs, 1, generator=gen).squeeze(1).to(device)
            else:
                nxt = logits.argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, eos), nxt)
            new_tokens.append(nxt)
            done |= nxt == eos
            if bool(done.all()):
                break
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            pos = pos + 1
            res = model(input_ids=nxt[:, None], attention_mask=mask, position_ids=pos,
                        use_cache=True, **{_cache_kwarg(model): cache})
            cache, logits = _cache_of(res), res.logits[:, -1]
        toks = torch.stack(new_tokens, 1).tolist()
        for row in toks:
            if eos in row:
                row = row[: row.index(eos)]
            out.append(tokenizer.decode(row, skip_special_tokens=True))
    return out
