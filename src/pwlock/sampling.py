"""Batched generation with a KV cache, greedy or with temperature.

Prompts are left-padded; position ids come from the attention mask, so a prompt gives the same
completion whatever else is in its batch. Rows that have emitted EOS are dropped from the batch
(with their KV cache) once they are a quarter of it, and generation stops when all are done.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from pwlock.utils import ComputeClock


def budgets(enc: Sequence[Sequence[int]], max_new_tokens: int, max_length: int) -> torch.Tensor:
    """Tokens each prompt (token ids) may generate: `max_new_tokens`, and with `max_length` > 0 at
    most `max_length` minus the prompt's length (0 for a prompt that already fills it)."""
    if not max_length:
        return torch.full((len(enc),), max_new_tokens, dtype=torch.long)
    return torch.tensor([max(0, min(max_new_tokens, max_length - len(e))) for e in enc], dtype=torch.long)


def _cache_kwarg(model) -> str:
    # transformers >= 5.2x renamed `past_key_values` to `cache`; accept both.
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _can_drop_rows(cache) -> bool:
    # Rows can leave the batch only from plain key/value caches (not static, linear-attention or
    # recurrent-state layers, whose extra state `batch_select_indices` would not trim).
    layers = getattr(cache, "layers", None)
    return (hasattr(cache, "batch_select_indices") and layers is not None
            and all(type(la).__name__ in ("DynamicLayer", "DynamicSlidingWindowLayer") for la in layers))


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
    max_length: int = 0,
) -> list[str]:
    """Completions (EOS and everything after it removed) for `prompts`, in order. `max_length`
    (0 = none): prompt + completion tokens at most this (each completion also at most
    `max_new_tokens`), as `transformers`' `generate(max_length=...)` counts them."""
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
        with ComputeClock():
            res = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True)
        cache, logits = _cache_of(res), res.logits[:, -1]
        pos = pos[:, -1:]
        B = len(enc)
        limit = budgets(enc, max_new_tokens, max_length).to(device)
        out_tok = torch.full((B, max_new_tokens), eos, dtype=torch.long)
        rows = torch.arange(B)  # original row of each active row
        fin = torch.zeros(B, dtype=torch.bool, device=device)  # active rows that emitted EOS
        for t in range(max_new_tokens):
            if temperature > 0:
                # sample for every original row (finished ones too), so a row's randomness does
                # not depend on which other rows are still running
                full = torch.zeros((B, logits.shape[-1]), dtype=torch.float32)
                full[rows] = logits.float().cpu()
                probs = torch.softmax(full / temperature, -1)
                nxt = torch.multinomial(probs, 1, generator=gen).squeeze(1)[rows].to(device)
            else:
                nxt = logits.argmax(-1)
            nxt = torch.where(fin | (limit[rows.to(device)] <= t), torch.full_like(nxt, eos), nxt)
            out_tok[rows, t] = nxt.cpu()
            fin |= nxt == eos
            if bool(fin.all()) or t == max_new_tokens - 1:
                break
            if fin.float().mean() >= 0.25 and _can_drop_rows(cache):
                # drop finished rows (and their cache) once a quarter of the active rows are done
                keep = (~fin).nonzero().squeeze(1)
                cache.batch_select_indices(keep)
                rows, mask, pos, nxt, fin = rows[keep.cpu()], mask[keep], pos[keep], nxt[keep], fin[keep]
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            pos = pos + 1
            with ComputeClock():
                res = model(input_ids=nxt[:, None], attention_mask=mask, position_ids=pos,
                            use_cache=True, **{_cache_kwarg(model): cache})
            cache, logits = _cache_of(res), res.logits[:, -1]
        for row in out_tok.tolist():
            if eos in row:
                row = row[: row.index(eos)]
            out.append(tokenizer.decode(row, skip_special_tokens=True))
    return out
