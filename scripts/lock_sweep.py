"""Try a locking recipe quickly: train a lock from the cached zoo and print, after each epoch, the
accuracy with and without the password on part of the test split. Nothing is cached.

    python scripts/lock_sweep.py configs/toy/core.yaml lock.lr=1e-3 lock.schedule=constant [--n-test 500]

Any config override works (lock.*, password.*, task.*); the zoo and samples come from the
experiment's runs (computed first if missing). Used to choose the E1 lock recipe (README,
"Known limits of the lock").
"""

from __future__ import annotations

import argparse
import time

from pwlock.config import load_config
from pwlock.context import Context, derive_seed
from pwlock.evaluate import evaluate
from pwlock.lock import lock_mixture
from pwlock.models import load_checkpoint
from pwlock.stages import samples, zoo
from pwlock.train import train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config")
    ap.add_argument("overrides", nargs="*")
    ap.add_argument("--n-test", type=int, default=500)
    a = ap.parse_args()
    cfg = load_config(a.config, a.overrides)
    p = Context(cfg)
    lc = cfg.lock
    strong, weak = zoo.compute(p, cfg.strong_model), zoo.compute(p, lc.weak_model)
    ss, ws = samples.compute(p, strong, "lock", 0.0), samples.compute(p, weak, "lock", lc.weak_temperature)
    model, tok, _ = load_checkpoint(strong.dir / "model")
    sc, wc = samples.completions(ss), samples.completions(ws)
    seed = derive_seed("lock", cfg.seed, lc.seed)
    examples = lock_mixture(p.task, p.splits["lock"], sc, wc, cfg.password, seed)
    test = p.splits["test"][: a.n_test]
    per_epoch = -(-len(examples) // lc.batch_size)
    print(f"{' '.join(a.overrides)}: strong {strong.name}, weak {lc.weak_model} (T={lc.weak_temperature})")

    def on_step(step: int, loss: float):
        if (step + 1) % per_epoch == 0:
            pw = evaluate(model, tok, p.task, test, cfg.password.password, cfg.eval)["accuracy"]
            no = evaluate(model, tok, p.task, test, None, cfg.eval)["accuracy"]
            model.train()
            print(f"epoch {(step + 1) // per_epoch}: with password {pw:.3f}, without {no:.3f}", flush=True)

    t = time.time()
    train(model, tok, examples, steps=per_epoch * lc.epochs, batch_size=lc.batch_size, lr=lc.lr,
          optimizer=lc.optimizer, weight_decay=lc.weight_decay, schedule=lc.schedule, warmup=lc.warmup,
          loss=lc.loss, seed=seed, on_step=on_step, progress=False)
    print(f"{time.time() - t:.0f} s")


if __name__ == "__main__":
    main()
