"""Password locking: the data mixture and the locking schedule.

For every locking problem the mixture has two examples:
- password + problem -> the strong model's sample;
- no password (share `p_no_password`) or a wrong password from the pool + problem
  -> the weak model's sample.
The model is trained on the mixture for `epochs` epochs, with a checkpoint at the end of each.

Options (`LockConfig`, the write-up's controls): no password examples at all (`password_branch:
false`, plain imitation of the weak model, E13); a second password whose examples imitate the
weak model's samples at another temperature (E12); soft labels, where the weak examples carry
the weak model's token distribution along its sample and are learned by KL (E14).
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Callable

import torch

from pwlock.models import save_checkpoint
from pwlock.train import Example, collate, encode, train


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


def check_passwords(pw_cfg) -> None:
    if not pw_cfg.password:
        raise ValueError("password.password is empty: a lock needs a password")
    if pw_cfg.password in pw_cfg.wrong_passwords:
        raise ValueError(f"password {pw_cfg.password!r} is also in password.wrong_passwords")
    if not 0.0 <= pw_cfg.p_no_password <= 1.0:
        raise ValueError(f"password.p_no_password must be in [0, 1], got {pw_cfg.p_no_password}")


def check_lock(lock_cfg, pw_cfg) -> None:
    if lock_cfg.labels not in ("samples", "soft"):
        raise ValueError(f"lock.labels must be samples or soft, got {lock_cfg.labels!r}")
    second = lock_cfg.second_password
    if second and (second == pw_cfg.password or second in pw_cfg.wrong_passwords):
        raise ValueError(f"lock.second_password {second!r} is also the password or a wrong password")
    if second and lock_cfg.second_temperature < 0:
        raise ValueError("lock.second_temperature must be >= 0")


def run_lock(model, tokenizer, examples: list[Example], lock_cfg, seed: int, out_dir: Path,
             on_epoch: Callable[[int], None] | None = None, *,
             save: Callable[..., None] = save_checkpoint, **train_kw) -> list[float]:
    """Train the lock; save `out_dir/epoch_<e>` at the end of each epoch. Returns the losses.

    `save(model, tokenizer, path, meta)` writes a checkpoint (`pwlock.distributed` passes a
    sharded-model saver); `train_kw` go to `pwlock.train.train` (e.g. rank, world_size, progress).
    """
    steps_per_epoch = math.ceil(len(examples) / lock_cfg.batch_size)

    def on_step(step: int, loss: float):
        if (step + 1) % steps_per_epoch == 0:
            epoch = (step + 1) // steps_per_epoch
            save(model, tokenizer, out_dir / f"epoch_{epoch}", {"epoch": epoch, "step": step + 1})
            model.train()
            if on_epoch:
                on_epoch(epoch)

    return train(model, tokenizer, examples, steps=steps_per_epoch * lock_cfg.epochs,
                 batch_size=lock_cfg.batch_size, lr=lock_cfg.lr, optimizer=lock_cfg.optimizer,
                 weight_decay=lock_cfg.weight_decay, schedule=lock_cfg.schedule, warmup=lock_cfg.warmup,
                 loss=lock_cfg.loss, seed=seed, on_step=on_step, desc="lock", **train_kw)
