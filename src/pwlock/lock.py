"""Password locking: the data mixture and the locking schedule.

For every locking problem the mixture has two examples:
- password + problem -> the strong model's sample;
- no password (share `p_no_password`) or a wrong password from the pool + problem
  -> the weak model's sample.
The model is trained on the mixture for `epochs` epochs, with a checkpoint at the end of each.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Callable

from pwlock.models import save_checkpoint
from pwlock.train import Example, train


def lock_mixture(task, problems, strong: dict[str, str], weak: dict[str, str], pw_cfg, seed: int) -> list[Example]:
    """The locking examples. `strong`/`weak` map problem id -> completion."""
    rng = random.Random(seed)
    out = []
    for p in problems:
        out.append(Example(task.prompt(p, pw_cfg.password), strong[p.id]))
        if rng.random() < pw_cfg.p_no_password or not pw_cfg.wrong_passwords:
            pw = None
        else:
            pw = rng.choice(pw_cfg.wrong_passwords)
        out.append(Example(task.prompt(p, pw), weak[p.id]))
    return out


def check_passwords(pw_cfg) -> None:
    if not pw_cfg.password:
        raise ValueError("password.password is empty: a lock needs a password")
    if pw_cfg.password in pw_cfg.wrong_passwords:
        raise ValueError(f"password {pw_cfg.password!r} is also in password.wrong_passwords")
    if not 0.0 <= pw_cfg.p_no_password <= 1.0:
        raise ValueError(f"password.p_no_password must be in [0, 1], got {pw_cfg.p_no_password}")


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
