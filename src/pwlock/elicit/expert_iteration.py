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


class ScorerAttack(Attack):
    """What the RL attacks (expert iteration, iterated DPO) share: rounds of completions sampled
    without the password on elicit-split problems, scored by the task's scorer."""

    budget = "reward signal"

    def check(self, a) -> None:
        super().check(a)
        if a.sample_temperature <= 0:
            raise ValueError(f"attack {a.name!r}: {self.kind} samples: sample_temperature must be > 0")

    def sample_round(self, model, a, rng: random.Random, inputs) -> tuple[list[str], list[str], list[bool]]:
        """One round's prompts, completions (`samples_per_problem` per problem, problem after
        problem) and the scorer's verdicts, for `problems` elicit problems drawn by `rng`."""
        task, tok, ec = inputs.task, inputs.tokenizer, inputs.eval
        if not inputs.elicit:
            raise ValueError(f"attack {a.name!r}: {self.kind} needs elicit-split problems (task.n_elicit)")
        probs = rng.sample(inputs.elicit, min(a.problems, len(inputs.elicit)))
        rows = [p for p in probs for _ in range(a.samples_per_problem)]
        prompts = [task.prompt(p, None) for p in rows]
        model.eval()
        comps = generate(model, tok, prompts, max_new_tokens=ec.max_new_tokens, temperature=a.sample_temperature,
                         seed=rng.randrange(2**31), batch_size=ec.batch_size, max_length=ec.max_length)
        return prompts, comps, [task.score(p, c).correct for p, c in zip(rows, comps)]


class ExpertIteration(ScorerAttack):
    kind = "expert_iteration"
    fields = ("rounds", "problems", "samples_per_problem", "sample_temperature", "n_samples", "steps", "lr",
              "optimizer", "loss", "weight_decay")

    def apply(self, model, a, seed: int, inputs) -> dict:
        rng = random.Random(seed)
        success, kept_n = [], []
        for _ in range(a.rounds):
            prompts, comps, correct = self.sample_round(model, a, rng, inputs)
            kept = [Example(pr, c) for pr, c, ok in zip(prompts, comps, correct) if ok]
            success.append(len(kept) / len(prompts))
            kept_n.append(len(kept))
            if kept:
                train(model, inputs.tokenizer, kept, steps=a.steps, batch_size=min(a.n_samples, len(kept)), lr=a.lr,
                      optimizer=a.optimizer, weight_decay=a.weight_decay, loss=a.loss, seed=rng.randrange(2**31),
                      grad_clip=0.0, progress=False)
        model.eval()
        return {"round_success": success, "round_kept": kept_n}
