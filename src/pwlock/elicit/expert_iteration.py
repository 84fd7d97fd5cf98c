"""Expert iteration (an RL attack for an elicitor with no demonstrations, only a reward: the
task's scorer): for `rounds` rounds, sample `samples_per_problem` completions at
`sample_temperature` for `problems` elicit-split problems without the password, keep those the
scorer marks correct, and fine-tune on them (`steps` steps of batch `n_samples`, `lr`,
`optimizer`). As in the password-locked-models paper's expert iteration; the locked model's own
correct answers without the password are the only signal.

The results carry each round's success rate (the share of sampled completions the scorer
accepted, before that round's fine-tuning): it rises over rounds when the attack works."""

from __future__ import annotations

import random

from pwlock.elicit.base import Attack
from pwlock.sampling import generate
from pwlock.train import Example, train


class ExpertIteration(Attack):
    kind = "expert_iteration"
    budget = "reward signal"
    fields = ("rounds", "problems", "samples_per_problem", "sample_temperature", "n_samples", "steps", "lr",
              "optimizer", "loss", "weight_decay")

    def check(self, a) -> None:
        super().check(a)
        if a.sample_temperature <= 0:
            raise ValueError(f"attack {a.name!r}: expert_iteration samples: sample_temperature must be > 0")

    def apply(self, model, a, seed: int, inputs) -> dict:
        task, tok, ec = inputs.task, inputs.tokenizer, inputs.eval
        if not inputs.elicit:
            raise ValueError(f"attack {a.name!r}: expert_iteration needs elicit-split problems (task.n_elicit)")
        rng = random.Random(seed)
        success, kept_n = [], []
        for _ in range(a.rounds):
            probs = rng.sample(inputs.elicit, min(a.problems, len(inputs.elicit)))
            rows = [p for p in probs for _ in range(a.samples_per_problem)]
            prompts = [task.prompt(p, None) for p in rows]
            comps = generate(model, tok, prompts, max_new_tokens=ec.max_new_tokens, temperature=a.sample_temperature,
                             seed=rng.randrange(2**31), batch_size=ec.batch_size, max_length=ec.max_length)
            kept = [Example(pr, c) for p, pr, c in zip(rows, prompts, comps) if task.score(p, c).correct]
            success.append(len(kept) / len(rows))
            kept_n.append(len(kept))
            if kept:
                train(model, tok, kept, steps=a.steps, batch_size=min(a.n_samples, len(kept)), lr=a.lr,
                      optimizer=a.optimizer, weight_decay=a.weight_decay, loss=a.loss, seed=rng.randrange(2**31),
                      grad_clip=0.0, progress=False)
        model.eval()
        return {"round_success": success, "round_kept": kept_n}
