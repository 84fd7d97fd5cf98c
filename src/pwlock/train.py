"""The one training loop: supervised fine-tuning with a loss mask, AdamW or Lion.

Everything that trains in pwlock (the zoo, locking, every elicitation attack) calls `train`.
Examples are (prompt, completion) text pairs; the completion gets the EOS token appended.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from pwlock.utils import ComputeClock


@dataclass(frozen=True)
class SparseTarget:
    """Soft labels at some completion positions, each over a few token ids: at completion position
    `positions[j]` (0 = the first completion token, n = the EOS after n tokens) the target puts
    probability `prob[j, i]` on token `index[j, i]` and 0 elsewhere (e.g. the four answer letters
    of a multiple-choice question). Other positions keep the cross-entropy with their token.
    `length`: the completion's tokens + EOS, as `encode` makes them."""
    length: int
    positions: tuple[int, ...]
    index: torch.Tensor  # [len(positions), K] long
    prob: torch.Tensor  # [len(positions), K] float, rows summing to 1

    def __post_init__(self):
        if any(not 0 <= j < self.length for j in self.positions) or list(self.positions) != sorted(set(self.positions)):
            raise ValueError(f"SparseTarget: positions {self.positions} are not increasing positions of a "
                             f"completion of {self.length} tokens (with its EOS)")
        if self.index.shape != self.prob.shape or self.index.shape[0] != len(self.positions):
            raise ValueError(f"SparseTarget: index {tuple(self.index.shape)} and prob {tuple(self.prob.shape)} "
                             f"must both be [{len(self.positions)} positions, K]")


@dataclass(frozen=True)
class Example:
    prompt: str
    completion: str
    # soft labels: the distribution to imitate at each completion token (and the EOS after it),
    # probabilities [n_completion_tokens + 1, vocab], or a `SparseTarget` (some positions, a few
    # token ids each); the loss there is KL(target || model)
    target: torch.Tensor | SparseTarget | None = field(default=None, compare=False, repr=False)
    # which completion tokens (and the EOS after it) are trained on, 0/1 each; None = all
    keep: tuple[int, ...] | None = field(default=None, compare=False, repr=False)


class EmptyLossMaskError(ValueError):
    """A batch has no supervised token: training on it would silently do nothing."""


class TrainingDivergedError(ValueError):
    """A training loss is not finite (NaN or infinite): the run stops and nothing is stored.
    The run (`pwlock.runs.Run.compute`) or attack group that trained adds its name."""


def check_finite(loss: float, step: int, steps: int, desc: str | None) -> None:
    if not math.isfinite(loss):
        raise TrainingDivergedError(f"{desc or 'training'}: loss {loss} at step {step + 1} of {steps} (training "
                                    f"diverged; lower the learning rate)")


# ---------------------------------------------------------------------------------------------
# Optimizers


class Lion(torch.optim.Optimizer):
    """Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"), Algorithm 2.

    update = sign(beta1 * m + (1 - beta1) * g); p -= lr * (update + wd * p);
    m = beta2 * m + (1 - beta2) * g.
    """

    def __init__(self, params, lr: float = 1e-4, betas=(0.9, 0.99), weight_decay: float = 0.0):
        if lr <= 0:
            raise ValueError(f"Lion: lr must be > 0, got {lr}")
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "exp_avg" not in state:
                    state["exp_avg"] = torch.zeros_like(p)
                m = state["exp_avg"]
                p.mul_(1 - group["lr"] * group["weight_decay"])
                update = m.mul(b1).add_(p.grad, alpha=1 - b1).sign_()
                p.add_(update, alpha=-group["lr"])
                m.mul_(b2).add_(p.grad, alpha=1 - b2)
        return loss


LOW_PRECISION = (torch.bfloat16, torch.float16)


class MasterWeights:
    """The optimizer steps fp32 master copies of low-precision (bf16/fp16) parameters.

    Why: Lion moves every weight by exactly lr per step; at lr 1.5e-6 that is below half a bf16
    unit in the last place for any |w| > 2^-11, so a pure-bf16 step rounds ~98% of the updates
    away (docs/real-models.md). The masters accumulate the small steps; the model's bf16 weights
    are the masters rounded after each step.

    One inner optimizer per tensor, stepped one tensor at a time: only one fp32 gradient exists
    at once (memory: bf16 weights and grads + fp32 masters + the optimizer's fp32 state).
    Gradient clipping uses the global norm computed in fp32.
    """

    def __init__(self, name: str, params: list[torch.Tensor], lr: float, weight_decay: float = 0.0):
        self.params = list(params)
        self.masters = [p.detach().float().clone() for p in self.params]
        self.opts = [make_optimizer(name, [m], lr, weight_decay) for m in self.masters]
        self.param_groups = [g for o in self.opts for g in o.param_groups]  # the lr schedule sets these

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, grad_clip: float = 0.0) -> None:
        coef = None
        if grad_clip:
            norms = [p.grad.float().norm() for p in self.params if p.grad is not None]
            total = torch.linalg.vector_norm(torch.stack(norms)) if norms else torch.tensor(0.0)
            coef = (grad_clip / (total + 1e-6)).clamp(max=1.0)  # as torch.nn.utils.clip_grad_norm_
        for p, m, opt in zip(self.params, self.masters, self.opts):
            if p.grad is None:
                continue
            m.grad = p.grad.float() if coef is None else p.grad.float() * coef
            p.grad = None
            opt.step()
            m.grad = None
            p.copy_(m)


def wants_master_weights(params: list[torch.Tensor], master_weights: bool | None = None) -> bool:
    """Whether `params` train through fp32 master copies: `master_weights` as given, or (None)
    whenever a parameter is bf16/fp16. The one place that decides it (`train`, `optimizer_for`)."""
    return any(p.dtype in LOW_PRECISION for p in params) if master_weights is None else master_weights


def optimizer_for(params: list[torch.Tensor], name: str, lr: float, weight_decay: float = 0.0,
                  master_weights: bool | None = None):
    """The optimizer `train` steps `params` with: fp32 `MasterWeights` when `wants_master_weights`,
    else the plain optimizer. Its `step` takes no argument in the second case;
    `MasterWeights.step(grad_clip)` clips itself."""
    return (MasterWeights(name, params, lr, weight_decay) if wants_master_weights(params, master_weights)
            else make_optimizer(name, params, lr, weight_decay))


def make_optimizer(name: str, params, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    if name == "adamw":
        # fused: one kernel for all tensors (the per-tensor loop dominates small models on CPU)
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    if name == "lion":
        return Lion(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; use 'adamw' or 'lion'")


# ---------------------------------------------------------------------------------------------
# Data


def encode(tokenizer, examples: Sequence[Example], loss: str = "completion") -> list[tuple[list[int], list[int]]]:
    """Token ids and a 0/1 loss mask per example. `loss`: 'completion' or 'full'."""
    if loss not in ("completion", "full"):
        raise ValueError(f"unknown loss {loss!r}; use 'completion' or 'full'")
    # One batched call per side: the Rust tokenizer is far faster on lists than one by one.
    P = tokenizer([ex.prompt for ex in examples], add_special_tokens=False)["input_ids"]
    C = tokenizer([ex.completion for ex in examples], add_special_tokens=False)["input_ids"]
    out = []
    for ex, p, c in zip(examples, P, C):
        c = [*c, tokenizer.eos_token_id]
        keep = [1] * len(c)
        if ex.keep is not None:
            if len(ex.keep) != len(c):
                raise ValueError(f"Example.keep has {len(ex.keep)} entries for {len(c)} completion tokens + EOS")
            keep = [int(bool(k)) for k in ex.keep]
        mask = ([1] * len(p) if loss == "full" else [0] * len(p)) + keep
        out.append((p + c, mask))
    return out


def collate(rows: Sequence[tuple[list[int], list[int]]], pad_id: int):
    """Right-pad a batch: input_ids, attention_mask and loss_mask of shape [B, T]."""
    T = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    att = torch.zeros((len(rows), T), dtype=torch.long)
    lm = torch.zeros((len(rows), T), dtype=torch.float32)
    for i, (x, m) in enumerate(rows):
        ids[i, : len(x)] = torch.tensor(x)
        att[i, : len(x)] = 1
        lm[i, : len(x)] = torch.tensor(m, dtype=torch.float32)
    return ids, att, lm


def masked_lm_loss(logits: torch.Tensor, input_ids: torch.Tensor, loss_mask: torch.Tensor,
                   soft: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Mean next-token cross-entropy over supervised tokens. logits [B, T, V].

    `soft` = (where [B, T-1] bool, index [P, K] long, prob [P, K]) with P = where.sum(): at the
    (shifted) positions `where`, in row-major order, the loss is KL(prob || model) over the token
    ids `index` instead of the cross-entropy with the next token (`soft_targets`)."""
    target_mask = loss_mask[:, 1:]
    n = target_mask.sum()
    if n <= 0:
        raise EmptyLossMaskError("empty loss mask: no supervised token in this batch (check the completions)")
    ce = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), input_ids[:, 1:].flatten(), reduction="none")
    if soft is not None:
        where, index, prob = soft
        logq = F.log_softmax(logits[:, :-1][where].float(), -1).gather(1, index)
        kl = (torch.xlogy(prob, prob) - prob * logq).sum(-1)
        full = torch.zeros(where.shape, dtype=kl.dtype, device=kl.device).index_put((where,), kl)
        ce = torch.where(where, full, ce.view_as(full)).flatten()
    return (ce * target_mask.flatten()).sum() / n


def soft_targets(examples: Sequence[Example], rows, T: int, vocab: int):
    """`masked_lm_loss`'s `soft` for a batch of `examples` (their `encode` rows), padded to T, or
    None when no example has a target."""
    if all(ex.target is None for ex in examples):
        return None
    where = torch.zeros((len(examples), T - 1), dtype=torch.bool)
    parts = []  # (row, positions in the row, index, prob) in row order
    for i, (ex, (ids, _m)) in enumerate(zip(examples, rows)):
        t = ex.target
        if t is None:
            continue
        n = t.length if isinstance(t, SparseTarget) else t.shape[0]  # completion tokens + EOS: the last n
        start = len(ids) - n - 1  # the logits at this position predict the first completion token
        if isinstance(t, SparseTarget):
            if t.index.numel() and not 0 <= int(t.index.min()) <= int(t.index.max()) < vocab:
                raise ValueError(f"soft target token ids outside the model's vocabulary of {vocab}")
            pos, index, prob = list(t.positions), t.index, t.prob
        else:
            if t.shape[1] != vocab:
                raise ValueError(f"soft target over {t.shape[1]} tokens but the model has {vocab}")
            pos, index, prob = list(range(n)), torch.arange(vocab).expand(n, vocab), t
        if start < 0:
            raise ValueError(f"soft target of {n} tokens for a sequence of {len(ids)}")
        where[i, [start + j for j in pos]] = True
        parts.append((index, prob))
    K = max(ix.shape[1] for ix, _ in parts)
    # pad the token lists to K entries (token 0 with probability 0 adds nothing to the KL)
    index = torch.cat([F.pad(ix, (0, K - ix.shape[1])) for ix, _ in parts])
    prob = torch.cat([F.pad(pr.float(), (0, K - pr.shape[1])) for _, pr in parts])
    return where, index, prob


def sharded_lm_loss(logits: torch.Tensor, input_ids: torch.Tensor, loss_mask: torch.Tensor,
                    world_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`masked_lm_loss` of a global batch split across `world_size` data-parallel processes.

    Each process holds its rows of the batch. Returns (loss, to_backward): `loss` is the mean
    over every supervised token of the global batch (the same number on every rank, detached);
    `to_backward` is this rank's token sum divided by the global token count, times
    `world_size` because DDP and FSDP average gradients over ranks. The sum over ranks of the
    gradients thus equals the single-process gradient, whatever the per-rank token counts.
    """
    import torch.distributed as dist

    target_mask = loss_mask[:, 1:]
    ce = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), input_ids[:, 1:].flatten(), reduction="none")
    local = (ce * target_mask.flatten()).sum()
    # float64: the all-reduced sums must match a single process's to well below 1e-6
    stats = torch.stack([local.detach().double(), target_mask.sum().double()])
    dist.all_reduce(stats)
    n = stats[1]
    if n <= 0:
        raise EmptyLossMaskError("empty loss mask: no supervised token in this batch (check the completions)")
    return (stats[0] / n).float(), local * (world_size / n.item())


def lr_at(step: int, total: int, peak: float, schedule: str, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    if schedule == "constant":
        return peak
    if schedule == "cosine":
        t = (step - warmup) / max(1, total - warmup)
        return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))
    raise ValueError(f"unknown schedule {schedule!r}")


# ---------------------------------------------------------------------------------------------
# The loop


def train(
    model,
    tokenizer,
    examples: Sequence[Example],
    *,
    steps: int,
    batch_size: int,
    lr: float,
    optimizer: str = "adamw",
    weight_decay: float = 0.0,
    schedule: str = "constant",
    warmup: int = 0,
    loss: str = "completion",
    seed: int = 0,
    grad_clip: float = 1.0,
    on_step: Callable[[int, float], bool | None] | None = None,
    desc: str = "train",
    progress: bool = True,
    rank: int = 0,
    world_size: int = 1,
    master_weights: bool | None = None,
) -> list[float]:
    """Train `model` in place for `steps` steps and return the loss of each step.

    Batches walk through `examples` in a seeded shuffled order, epoch after epoch (a batch
    never straddles two epochs, so `len(examples) / batch_size` steps is exactly one epoch
    when it divides). `on_step(step, loss)` is called after each step; returning True stops.

    Data parallel (`world_size` > 1, inside torch.distributed with the model wrapped by FSDP2 or
    DDP, see `pwlock.distributed`): every rank walks the same global batches (same seed) and
    trains on rows `rank::world_size` of each; the returned losses are those of the global batch,
    equal to a single process's (see `sharded_lm_loss`). `on_step` runs on every rank.

    `master_weights`: step fp32 master copies of the parameters (`MasterWeights`). None (default):
    whenever a trained parameter is bf16 or fp16, so small updates are never rounded away; False
    trains the low-precision weights directly (only if you know the updates survive rounding).
    """
    if not examples:
        raise ValueError("train: no examples")
    rows = encode(tokenizer, examples, loss)
    if not 0 <= rank < world_size:
        raise ValueError(f"train: rank {rank} not in [0, world_size={world_size})")
    if world_size > 1 and min(batch_size, len(rows)) < world_size:
        raise ValueError(f"train: a batch of {min(batch_size, len(rows))} rows cannot be split across "
                         f"{world_size} processes (each needs at least one row)")
    has_targets = any(ex.target is not None for ex in examples)
    if has_targets and world_size > 1:
        raise NotImplementedError("soft targets (lock.labels=soft) are not supported with several processes yet")
    rng = random.Random(seed)
    torch.manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    master_weights = wants_master_weights(params, master_weights)
    if master_weights and world_size > 1:
        raise ValueError("train: fp32 master weights of a sharded low-precision model are not supported; load "
                         "the model in fp32 and compute in bf16 with FSDP mixed precision (--dtype fp32 "
                         "--param-dtype bf16)")
    opt = optimizer_for(params, optimizer, lr, weight_decay, master_weights)
    device = next(model.parameters()).device
    model.train()
    losses: list[float] = []
    order: list[int] = []
    bar = tqdm(range(steps), desc=desc, disable=not progress, leave=False, mininterval=1.0)
    for step in bar:
        if len(order) < min(batch_size, len(rows)):
            order = list(range(len(rows)))
            rng.shuffle(order)
        idx, order = order[:batch_size], order[batch_size:]
        idx = idx[rank::world_size]  # this rank's rows of the global batch (all of them when alone)
        ids, att, lm = (t.to(device) for t in collate([rows[i] for i in idx], tokenizer.pad_token_id))
        soft = soft_targets([examples[i] for i in idx], [rows[i] for i in idx], ids.shape[1],
                            model.config.vocab_size) if has_targets else None
        if soft is not None:
            soft = tuple(t.to(device) for t in soft)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, lr, schedule, warmup)
        with ComputeClock():
            logits = model(input_ids=ids, attention_mask=att).logits
            if world_size == 1:
                loss_t = to_backward = masked_lm_loss(logits, ids, lm, soft)
            else:
                loss_t, to_backward = sharded_lm_loss(logits, ids, lm, world_size)
            losses.append(loss_t.item())
            check_finite(losses[-1], step, steps, desc)  # (the same on every rank: the global batch's loss)
            opt.zero_grad(set_to_none=True)
            to_backward.backward()
            if master_weights:
                opt.step(grad_clip)
            else:
                if grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                opt.step()
        if step % 10 == 0:
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
        if on_step is not None and on_step(step, losses[-1]):
            break
    model.eval()
    return losses
