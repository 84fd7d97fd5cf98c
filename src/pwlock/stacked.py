"""K independent fine-tuning runs of one model, trained together in one batched step.

Elicitation attacks are many tiny runs from the same checkpoint (WSU: 200 steps on 2 samples,
one run per seed). Run one after another, each step is a handful of small matrix products and
the per-operation overhead dominates. Here the K runs' parameters are stacked along a leading
dimension and one step computes all K gradients with `torch.func.vmap` over
`torch.func.functional_call`; the optimizer (AdamW or Lion, both elementwise) updates the
stacked tensors, which is exactly K independent optimizers. Each run trains on its own full
batch every step (as WSU does: the n samples are the batch).

The result matches K separate calls of `pwlock.train.train` with `batch_size = len(examples)`
and `grad_clip = 0` up to float rounding (a test checks the final weights).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad_and_value, vmap
from tqdm.auto import tqdm

from pwlock.train import LOW_PRECISION, EmptyLossMaskError, Example, check_finite, collate, encode, make_optimizer
from pwlock.utils import ComputeClock


@contextmanager
def _eager_attention(model):
    # SDPA has no vmap batching rule on CPU (it falls back to a slow per-sample loop);
    # the eager attention is plain matmuls and batches well.
    cfg = model.config
    old = cfg._attn_implementation
    try:
        model.set_attn_implementation("eager")
        yield
    finally:
        model.set_attn_implementation(old)


def _loss(logits: torch.Tensor, ids: torch.Tensor, lm: torch.Tensor) -> torch.Tensor:
    # pwlock.train.masked_lm_loss without the data-dependent check (not allowed under vmap;
    # the masks are checked before training starts).
    tm = lm[:, 1:]
    ce = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), ids[:, 1:].flatten(), reduction="none")
    return (ce * tm.flatten()).sum() / tm.sum()


def train_stacked(
    model,
    tokenizer,
    example_sets: Sequence[Sequence[Example]],
    *,
    steps: int,
    lr: float,
    optimizer: str = "adamw",
    weight_decay: float = 0.0,
    loss: str = "completion",
    desc: str | None = None,
    until_loss: float = 0.0,
) -> tuple[list[dict[str, torch.Tensor]], list[list[float]]]:
    """Train K = len(example_sets) copies of `model`, copy k on all of `example_sets[k]` each step.

    `model` is not modified. Returns each copy's final parameters (name -> tensor, as in
    `model.named_parameters()`) and each copy's per-step losses.

    `until_loss` > 0: copy k stops after the first step whose loss is <= `until_loss` (that
    step's update applied, as `pwlock.train.train` does when `on_step` says stop); its weights
    stay as they are while the others go on. Its losses then end at that step.
    """
    K = len(example_sets)
    if K == 0:
        raise ValueError("train_stacked: no runs")
    batches = [collate(encode(tokenizer, list(exs), loss), tokenizer.pad_token_id) for exs in example_sets]
    for k, (_, _, lm) in enumerate(batches):
        if lm[:, 1:].sum() <= 0:
            raise EmptyLossMaskError(f"run {k}: empty loss mask (no supervised token in its examples)")
    B = {b[0].shape[0] for b in batches}
    if len(B) != 1:
        raise ValueError(f"train_stacked: every run needs the same number of examples, got {sorted(B)}")
    T = max(b[0].shape[1] for b in batches)
    # Right padding: causal attention never lets a real token see a pad, so no attention mask is
    # needed, and extra pad columns change nothing (their loss mask is 0).
    ids = torch.stack([F.pad(b[0], (0, T - b[0].shape[1]), value=tokenizer.pad_token_id) for b in batches])
    lm = torch.stack([F.pad(b[2], (0, T - b[2].shape[1]), value=0.0) for b in batches])
    device = next(model.parameters()).device
    ids, lm = ids.to(device), lm.to(device)

    names = [n for n, p in model.named_parameters() if p.requires_grad]
    frozen = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}
    buffers = dict(model.named_buffers())
    dtypes = [p.dtype for n, p in model.named_parameters() if p.requires_grad]
    # The optimizer steps fp32 masters of low-precision weights (see pwlock.train.MasterWeights);
    # the forward and backward passes run in the model's dtype. fp32 models: no copy, as before.
    stacked = [p.detach().unsqueeze(0).repeat(K, *([1] * p.dim())) for n, p in model.named_parameters()
               if p.requires_grad]
    stacked = [p.float() if p.dtype in LOW_PRECISION else p for p in stacked]
    for p in stacked:
        p.requires_grad_(True)
    opt = make_optimizer(optimizer, stacked, lr, weight_decay)

    def loss_of(params: tuple, ids_k, lm_k):
        state = {**dict(zip(names, params)), **frozen, **buffers}
        logits = functional_call(model, state, (ids_k,), {"use_cache": False}).logits
        return _loss(logits, ids_k, lm_k)

    step_fn = vmap(grad_and_value(loss_of), in_dims=(0, 0, 0))
    losses: list[list[float]] = [[] for _ in range(K)]
    was_training = model.training
    model.train()
    done = torch.zeros(K, dtype=torch.bool, device=device)  # copies that met `until_loss`: frozen
    with _eager_attention(model):
        for step in tqdm(range(steps), desc=desc, disable=desc is None, leave=False, mininterval=1.0):
            with ComputeClock():
                grads, values = step_fn(tuple(p.detach().to(dt) for p, dt in zip(stacked, dtypes)), ids, lm)
                live = values[~done]  # (copies that met `until_loss` are frozen)
                if not bool(torch.isfinite(live).all()):
                    k = int((~done).nonzero()[int((~torch.isfinite(live)).nonzero()[0])])
                    check_finite(float(values[k]), step, steps, f"{desc or 'stacked training'} (copy {k} of {K})")
                for p, g in zip(stacked, grads):
                    p.grad = g.to(p.dtype)
                kept = [p.detach()[done].clone() for p in stacked] if bool(done.any()) else None
                opt.step()
                if kept is not None:  # runs that met `until_loss` keep their weights
                    with torch.no_grad():
                        for p, f in zip(stacked, kept):
                            p[done] = f
                values = values.tolist()
            for k, v in enumerate(values):
                if not done[k]:
                    losses[k].append(v)
            if until_loss > 0:
                done |= torch.tensor([v <= until_loss for v in values], device=device)
                if bool(done.all()):
                    break
    model.train(was_training)
    finals = [{n: p[k].detach().to(dt).clone() for n, p, dt in zip(names, stacked, dtypes)} for k in range(K)]
    return finals, losses
