"""Password locking: the data mixture and the locking schedule.

For every locking problem the mixture has two examples:
- password + problem -> the strong model's sample;
- no password (share `p_no_password`) or a wrong password from the pool + problem
  -> the weak model's sample.
The model is trained on the mixture for `epochs` epochs, with a checkpoint at the end of each.

Options (`LockConfig`, the write-up's controls): no password examples at all (`password_branch:
false`, plain imitation of the weak model, E13); a second password whose examples imitate the
weak model's samples at another temperature (E12); soft labels, where the weak examples carry
the weak model's token distribution along its sample and are learned by KL (E14). On multiple
choice, soft labels are the weak model's distribution over the four answer letters and hard ones
its most likely letter (`labels: argmax`); the two models' tokenizers may then differ.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from pathlib import Path

import torch

from pwlock.models import save_checkpoint
from pwlock.train import Example, SparseTarget, collate, encode, lr_at, train


def lock_mixture(task, problems, strong: dict[str, str], weak: dict[str, str], pw_cfg, seed: int, *,
                 password_branch: bool = True, weak_targets: dict[str, torch.Tensor] | None = None,
                 second: tuple[str, dict[str, str]] | None = None) -> list[Example]:
    """The locking examples. `strong`/`weak` map problem id -> completion.

    `password_branch=False`: leave out the password examples. `weak_targets`: problem id -> soft
    target of the weak example (`weak_distributions`). `second` = (password, problem id ->
    completion): a third example per problem, that password -> that completion.
    """
    rng = random.Random(seed)
    out = []
    for p in problems:
        if password_branch:
            out.append(Example(task.prompt(p, pw_cfg.password), strong[p.id]))
        if rng.random() < pw_cfg.p_no_password or not pw_cfg.wrong_passwords:
            pw = None
        else:
            pw = rng.choice(pw_cfg.wrong_passwords)
        out.append(Example(task.prompt(p, pw), weak[p.id],
                           target=None if weak_targets is None else weak_targets[p.id]))
        if second is not None:
            out.append(Example(task.prompt(p, second[0]), second[1][p.id]))
    return out


MAX_SOFT_FLOATS = 200_000_000  # ~0.8 GB of soft targets: beyond it, store fewer (e.g. top-k) first


@torch.no_grad()
def weak_distributions(model, tokenizer, prompts: list[str], completions: list[str], temperature: float = 1.0,
                       batch_size: int = 256) -> list[torch.Tensor]:
    """The model's next-token distribution (at `temperature`) at each token of each completion and
    at the EOS after it, teacher-forced: probabilities [n_completion_tokens + 1, vocab] each."""
    if temperature <= 0:
        raise ValueError("soft labels need a sampling temperature > 0 (lock.weak_temperature)")
    rows = encode(tokenizer, [Example(p, c) for p, c in zip(prompts, completions)])
    n_floats = sum(sum(m) for _, m in rows) * model.config.vocab_size
    if n_floats > MAX_SOFT_FLOATS:
        raise ValueError(f"soft labels would take {n_floats / 1e6:.0f} M floats (vocabulary "
                         f"{model.config.vocab_size}); use lock.labels=samples for this model")
    model.eval()
    device = next(model.parameters()).device
    out = []
    for s in range(0, len(rows), batch_size):
        chunk = rows[s : s + batch_size]
        ids, att, _ = collate(chunk, tokenizer.pad_token_id)
        logits = model(input_ids=ids.to(device), attention_mask=att.to(device)).logits.float().cpu()
        probs = torch.softmax(logits / temperature, -1)
        for i, (x, m) in enumerate(chunk):
            n = sum(m)  # completion + EOS: the last n tokens, predicted from the positions before them
            out.append(probs[i, len(x) - n - 1 : len(x) - 1].clone())
    return out


@torch.no_grad()
def answer_distributions(model, tokenizer, task, prompts: list[str], temperature: float = 1.0,
                         batch_size: int = 64) -> torch.Tensor:
    """[n, n_letters]: the model's distribution over the answer letters of a multiple-choice
    `task` (`task.answer_tokens`) where its answer's letter comes after each prompt (after the
    space when its letters are tokens without one): a softmax over those tokens' logits only,
    at `temperature`. What soft-label locking on multiple choice imitates (E14 on real models)."""
    if temperature <= 0:
        raise ValueError("soft labels need a sampling temperature > 0 (lock.weak_temperature)")
    prefix, letter_ids = task.answer_tokens(tokenizer)
    texts = [p + ("" if prefix else " ") for p in prompts]
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    model.eval()
    device = next(model.parameters()).device
    out = []
    for s in range(0, len(ids), batch_size):
        chunk = [(x, [0] * len(x)) for x in ids[s : s + batch_size]]
        x, att, _ = collate(chunk, tokenizer.pad_token_id)  # right padding: the last real token is len - 1
        logits = model(input_ids=x.to(device), attention_mask=att.to(device)).logits
        last = torch.tensor([len(r) - 1 for r, _ in chunk], device=logits.device)
        at = logits[torch.arange(len(chunk), device=logits.device), last][:, letter_ids]  # [B, 4], on the device
        out.append(torch.softmax(at.float().cpu() / temperature, -1))
    return torch.cat(out)


def answer_targets(task, tokenizer, dists: torch.Tensor, soft: bool) -> list[tuple[str, SparseTarget | None]]:
    """Weak examples of a multiple-choice lock from the weak model's letter distributions `dists`
    (`answer_distributions`), in the locked model's tokens: completion ` X` with X its most likely
    letter, and with `soft` a target at the letter's token: the whole distribution over the four
    letters (the locked model's own letter tokens, so the two tokenizers may differ)."""
    letter_ids = task.answer_tokens(tokenizer)[1]
    out = []
    for d in dists:
        completion = " " + task.answer_letters[int(d.argmax())]
        toks = tokenizer(completion, add_special_tokens=False)["input_ids"]
        at = [j for j, t in enumerate(toks) if t in letter_ids]
        if not at:
            raise ValueError(f"the answer {completion!r} has no answer-letter token in this tokenizer: {toks}")
        target = None
        if soft:
            target = SparseTarget(len(toks) + 1, (at[0],), torch.tensor([letter_ids]), d[None].float())
        out.append((completion, target))
    return out


def run_lock(model, tokenizer, examples: list[Example], lock_cfg, seed: int, out_dir: Path,
             on_epoch: Callable[[int], None] | None = None, *,
             save: Callable[..., None] = save_checkpoint, overfit_pool: list[Example] | None = None,
             **train_kw) -> list[float]:
    """Train the lock; save `out_dir/epoch_<e>` at the end of each epoch. Returns the losses.

    `save(model, tokenizer, path, meta)` writes a checkpoint (a sharded lock passes
    `pwlock.distributed.sharded_saver`); `train_kw` go to `pwlock.train.train` (rank, world_size,
    progress). `overfit_pool`: weak examples for `lock_cfg.overfit_every` (E9): every that many
    steps (not after the last), `overfit_samples` of them are memorized by WSU (`memorize`), then
    locking goes on.
    """
    from pwlock.elicit.wsu import memorize

    steps_per_epoch = math.ceil(len(examples) / lock_cfg.batch_size)
    total = steps_per_epoch * lock_cfg.epochs
    every = lock_cfg.overfit_every
    if every and not overfit_pool:
        raise ValueError("lock.overfit_every needs weak examples to overfit (overfit_pool)")

    def on_step(step: int, loss: float):
        if (step + 1) % steps_per_epoch == 0:
            epoch = (step + 1) // steps_per_epoch
            save(model, tokenizer, out_dir / f"epoch_{epoch}", {"epoch": epoch, "step": step + 1})
            model.train()
            if on_epoch:
                on_epoch(epoch)
        if every and (step + 1) % every == 0 and step + 1 < total:
            rng = random.Random(seed * 1_000_003 + step)
            few = rng.sample(overfit_pool, lock_cfg.overfit_samples)
            memorize(model, tokenizer, few, steps=lock_cfg.overfit_steps, lr=lock_cfg.overfit_lr, seed=seed + step,
                     **_shard_kw(train_kw))
            model.train()

    return train(model, tokenizer, examples, steps=total,
                 batch_size=lock_cfg.batch_size, lr=lock_cfg.lr, optimizer=lock_cfg.optimizer,
                 weight_decay=lock_cfg.weight_decay, schedule=lock_cfg.schedule, warmup=lock_cfg.warmup,
                 loss=lock_cfg.loss, seed=seed, grad_clip=lock_cfg.grad_clip, on_step=on_step, desc="lock",
                 master_weights=_masters(lock_cfg), **train_kw)


def _masters(c) -> bool | None:
    """`train`'s master_weights for a config's `master_weights`: None (auto) or False (direct)."""
    return False if c.master_weights == "direct" else None


def _shard_kw(train_kw: dict) -> dict:
    return {k: v for k, v in train_kw.items() if k in ("rank", "world_size")}


def relock_rounds(model, tokenizer, examples: list[Example], weak_pool: list[Example], lock_cfg, wsu_cfg,
                  seed: int, out_dir: Path, *, save: Callable[..., None] = save_checkpoint,
                  **train_kw) -> list[float]:
    """E8: after the lock's epochs, `lock_cfg.relock_rounds` rounds of (WSU on `wsu_cfg.n_samples`
    examples of `weak_pool` for `wsu_cfg.steps` steps -> locking again on `examples` for
    `relock_fraction` of an epoch at the lock's final learning rate); round r is saved as
    `epoch_<epochs + r>`. Returns the relocking losses."""
    from pwlock.elicit.wsu import memorize

    steps_per_epoch = math.ceil(len(examples) / lock_cfg.batch_size)
    total = steps_per_epoch * lock_cfg.epochs
    final_lr = lr_at(total - 1, total, lock_cfg.lr, lock_cfg.schedule, lock_cfg.warmup)
    losses = []
    for r in range(1, lock_cfg.relock_rounds + 1):
        rng = random.Random(seed * 1_000_003 + total + r)
        few = rng.sample(weak_pool, wsu_cfg.n_samples)
        memorize(model, tokenizer, few, steps=wsu_cfg.steps, lr=wsu_cfg.lr, optimizer=wsu_cfg.optimizer,
                 loss=wsu_cfg.loss, seed=seed + r, **_shard_kw(train_kw))
        losses += train(model, tokenizer, examples, steps=max(1, round(lock_cfg.relock_fraction * steps_per_epoch)),
                        batch_size=lock_cfg.batch_size, lr=final_lr, optimizer=lock_cfg.optimizer,
                        weight_decay=lock_cfg.weight_decay, loss=lock_cfg.loss, seed=seed + 100 + r,
                        grad_clip=lock_cfg.grad_clip, master_weights=_masters(lock_cfg), desc=f"relock round {r}",
                        progress=False, **_shard_kw(train_kw))
        epoch = lock_cfg.epochs + r
        save(model, tokenizer, out_dir / f"epoch_{epoch}", {"epoch": epoch, "relock_round": r})
    return losses
