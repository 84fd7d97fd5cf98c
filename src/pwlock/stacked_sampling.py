"""Generation with K models that share an architecture (and usually a base), in one batch.

Elicitation runs end with K fine-tuned copies of one lock checkpoint (a WSU group: one per
seed), each evaluated on the same prompts. Run one after another, that is K times the per-step
overhead of a forward pass; here the K models' weights are stacked along a leading dimension
and every layer is one batched matrix product over the K models (`torch.bmm`), with a KV cache
per model. The forward pass is written out for the Llama family (RoPE, RMSNorm, SwiGLU, grouped
query attention, tied or untied head) — the toy organism and most real models; for other
architectures `supports` is False and callers evaluate the models one by one.

Prompts are left-padded and positions come from the attention mask, as in `pwlock.sampling`;
a batch row leaves the batch (with its cache) once it has emitted EOS in all K models. The
logits match `transformers`' forward within float rounding (a test checks that, and that the
completions equal `pwlock.sampling.generate` of each model on its own).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from pwlock.sampling import budgets
from pwlock.utils import ComputeClock


def supports(model) -> bool:
    """Whether `generate_stacked` can run copies of `model` (a plain Llama-family model)."""
    c = model.config
    rope = getattr(c, "rope_parameters", None) or {}
    return (getattr(c, "model_type", None) == "llama" and not getattr(c, "attention_bias", False)
            and not getattr(c, "mlp_bias", False) and getattr(c, "hidden_act", None) == "silu"
            and rope.get("rope_type", "default") == "default" and hasattr(model, "model")
            and hasattr(model.model, "rotary_emb"))


def stack_weights(model, overrides: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """name -> [K, ...]: model k's weights are `model`'s with `overrides[k]` (name -> tensor) in place."""
    own = dict(model.named_parameters())
    for k, o in enumerate(overrides):
        bad = set(o) - set(own)
        if bad:
            raise KeyError(f"model {k}: weights {sorted(bad)[:3]} are not parameters of the base model")
    return {n: torch.stack([o.get(n, p).detach().to(p.device, p.dtype) for o in overrides])
            for n, p in own.items()}


def _rms(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    # x [K, N, H], w [K, H]; as LlamaRMSNorm (statistics in float32)
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return w[:, None, :] * h.to(x.dtype)


def _lin(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    # x [K, N, in], w [K, out, in] -> [K, N, out]
    return torch.einsum("kni,koi->kno", x, w)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class _Stacked:
    """The forward pass of K Llama models with stacked weights and a KV cache."""

    def __init__(self, model, weights: dict[str, torch.Tensor]):
        c = model.config
        self.model, self.w = model, weights
        self.K = next(iter(weights.values())).shape[0]
        self.L, self.nh = c.num_hidden_layers, c.num_attention_heads
        self.nkv = c.num_key_value_heads or self.nh
        self.hd = getattr(c, "head_dim", None) or c.hidden_size // self.nh
        self.eps = c.rms_norm_eps
        self.head = weights.get("lm_head.weight", weights["model.embed_tokens.weight"])
        # keys/values [K, B, n_kv_heads, T, head_dim] per layer
        self.cache: list[tuple[torch.Tensor, torch.Tensor]] = []

    def select(self, keep: torch.Tensor) -> None:
        self.cache = [(k[:, keep], v[:, keep]) for k, v in self.cache]

    def _store(self, i: int, k: torch.Tensor, v: torch.Tensor):
        if len(self.cache) > i:
            k = torch.cat([self.cache[i][0], k], dim=3)
            v = torch.cat([self.cache[i][1], v], dim=3)
            self.cache[i] = (k, v)
        else:
            self.cache.append((k, v))
        return k, v

    def __call__(self, ids: torch.Tensor, pos: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """ids [K, B, T] (new tokens), pos [B, T], mask [B, T_total] (1 = real token) -> last logits [K, B, V]."""
        K, B, T = ids.shape
        w, nh, nkv, hd = self.w, self.nh, self.nkv, self.hd
        emb = w["model.embed_tokens.weight"]
        x = emb[torch.arange(K, device=ids.device)[:, None, None], ids].reshape(K, B * T, -1)
        cos, sin = self.model.model.rotary_emb(x, pos)  # [B, T, hd]
        cos, sin = cos[None, :, None].to(x.dtype), sin[None, :, None].to(x.dtype)  # [1, B, 1, T, hd]
        Tk = mask.shape[1]
        # query i (at column Tk - T + i) sees real keys up to itself; pad queries see themselves only,
        # so no row of the softmax is empty (their outputs are never used)
        q_col = torch.arange(Tk - T, Tk, device=ids.device)
        k_col = torch.arange(Tk, device=ids.device)
        allowed = (k_col[None, :] <= q_col[:, None])[None] & mask[:, None, :].bool()
        allowed |= (k_col[None, :] == q_col[:, None])[None]
        attn_mask = allowed[None, :, None].expand(K, B, 1, T, Tk).reshape(K * B, 1, T, Tk)
        for i in range(self.L):
            p = f"model.layers.{i}."
            h = _rms(x, w[p + "input_layernorm.weight"], self.eps)
            q = _lin(h, w[p + "self_attn.q_proj.weight"]).view(K, B, T, nh, hd).transpose(2, 3)
            k = _lin(h, w[p + "self_attn.k_proj.weight"]).view(K, B, T, nkv, hd).transpose(2, 3)
            v = _lin(h, w[p + "self_attn.v_proj.weight"]).view(K, B, T, nkv, hd).transpose(2, 3)
            q = q * cos + _rotate_half(q) * sin
            k = k * cos + _rotate_half(k) * sin
            k, v = self._store(i, k, v)
            if nkv != nh:
                k = k.repeat_interleave(nh // nkv, dim=2)
                v = v.repeat_interleave(nh // nkv, dim=2)
            o = F.scaled_dot_product_attention(q.reshape(K * B, nh, T, hd), k.reshape(K * B, nh, Tk, hd),
                                               v.reshape(K * B, nh, Tk, hd), attn_mask=attn_mask,
                                               scale=hd ** -0.5)
            o = o.view(K, B, nh, T, hd).transpose(2, 3).reshape(K, B * T, nh * hd)
            x = x + _lin(o, w[p + "self_attn.o_proj.weight"])
            h = _rms(x, w[p + "post_attention_layernorm.weight"], self.eps)
            g = _lin(h, w[p + "mlp.gate_proj.weight"])
            x = x + _lin(F.silu(g) * _lin(h, w[p + "mlp.up_proj.weight"]), w[p + "mlp.down_proj.weight"])
        last = x.view(K, B, T, -1)[:, :, -1]
        last = _rms(last, w["model.norm.weight"], self.eps)
        return _lin(last, self.head)  # [K, B, V]


@torch.no_grad()
def generate_stacked(
    model,
    overrides: Sequence[Mapping[str, torch.Tensor]],
    tokenizer,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 64,
    temperature: float = 0.0,
    seeds: Sequence[int] | None = None,
    batch_size: int = 256,
    desc: str | None = None,
    max_length: int = 0,
) -> list[list[str]]:
    """Completions of K models for the same `prompts`: out[k][i] is model k's completion of prompt i.

    Model k is `model` with the weights `overrides[k]` (name -> tensor; missing names keep the
    base weights). `batch_size` counts prompts x models, so memory is that of one model's
    generation with the same batch size. Temperature sampling draws model k's tokens from its
    own generator seeded `seeds[k]`, row by row as `pwlock.sampling.generate` does, so each
    model's samples match that function's with `batch_size // K` prompts per batch.
    """
    if not supports(model):
        raise NotImplementedError(f"generate_stacked: {type(model).__name__} "
                                  f"({getattr(model.config, 'model_type', '?')}) is not a plain Llama model")
    K = len(overrides)
    if K == 0:
        return []
    if temperature > 0 and (seeds is None or len(seeds) != K):
        raise ValueError("generate_stacked: temperature sampling needs one seed per model")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    weights = stack_weights(model, overrides)
    gens = [torch.Generator(device="cpu").manual_seed(s) for s in seeds] if temperature > 0 else []
    eos = tokenizer.eos_token_id
    out: list[list[str]] = [[] for _ in range(K)]
    rows_per = max(1, batch_size // K)
    starts = range(0, len(prompts), rows_per)
    for s in tqdm(starts, desc=desc, disable=desc is None or len(starts) < 2, leave=False):
        enc = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts[s : s + rows_per]]
        T = max(len(e) for e in enc)
        B = len(enc)
        ids = torch.full((B, T), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((B, T), dtype=torch.long)
        for i, e in enumerate(enc):
            ids[i, T - len(e) :] = torch.tensor(e)
            mask[i, T - len(e) :] = 1
        ids, mask = ids.to(device), mask.to(device)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        net = _Stacked(model, weights)
        with ComputeClock():
            logits = net(ids[None].expand(K, B, T), pos, mask)
        pos = pos[:, -1:]
        limit = budgets(enc, max_new_tokens, max_length).to(device)
        out_tok = torch.full((K, B, max_new_tokens), eos, dtype=torch.long)
        rows = torch.arange(B)  # original row of each active row
        fin = torch.zeros((K, B), dtype=torch.bool, device=device)
        for t in range(max_new_tokens):
            if temperature > 0:
                nxt = torch.empty((K, len(rows)), dtype=torch.long)
                for k in range(K):
                    full = torch.zeros((B, logits.shape[-1]), dtype=torch.float32)
                    full[rows] = logits[k].float().cpu()
                    probs = torch.softmax(full / temperature, -1)
                    nxt[k] = torch.multinomial(probs, 1, generator=gens[k]).squeeze(1)[rows]
                nxt = nxt.to(device)
            else:
                nxt = logits.argmax(-1)
            nxt = torch.where(fin | (limit[rows.to(device)] <= t)[None], torch.full_like(nxt, eos), nxt)
            out_tok[:, rows, t] = nxt.cpu()
            fin |= nxt == eos
            if bool(fin.all()) or t == max_new_tokens - 1:
                break
            done = fin.all(0)
            if done.float().mean() >= 0.25:
                keep = (~done).nonzero().squeeze(1)
                net.select(keep)
                rows, mask, pos, nxt, fin = rows[keep.cpu()], mask[keep], pos[keep], nxt[:, keep], fin[:, keep]
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            pos = pos + 1
            with ComputeClock():
                logits = net(nxt[:, :, None], pos, mask)
        for k in range(K):
            for row in out_tok[k].tolist():
                if eos in row:
                    row = row[: row.index(eos)]
                out[k].append(tokenizer.decode(row, skip_special_tokens=True))
    model.train(was_training)
    return out
