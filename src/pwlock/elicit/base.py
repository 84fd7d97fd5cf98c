"""What every attack of the registry has: the interface `pwlock.stages.elicit` calls.

An attack maps (a locked model, its `AttackConfig`, a seed) to an attacked model. It is one of
two shapes:
- **trained** (`trains = True`: wsu, demos, average): it names, per seed, the sample sets it
  memorizes (`sample_sets`); the stage trains every set with WSU's training
  (`pwlock.elicit.wsu`: all the seeds' sets stacked in one model, or one at a time in place) and
  the seed's model is the mean of its sets' trained weights (one set: the trained weights);
- **applied** (`trains = False`: noise, scale, decay, varied, expert_iteration, ...): `apply`
  changes the model in place for one seed and returns extra results;
- **prompted** (`prompted = True`: prompt, few_shot): no weight change; `eval_task` gives the
  task whose prompts the seed is evaluated with (another password, demonstrations in front).

`budget` says what the elicitor needs (the audit's report card groups attacks by it): no data,
weak samples, strong demonstrations, or a reward signal (the task's scorer).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from pwlock.config import AttackConfig

# fields every attack understands; the others belong to the attacks listing them in `fields`
COMMON = ("name", "kind", "seeds", "epoch", "pre_pool", "pre_epochs")


@dataclass
class Inputs:
    """What an applied attack may use besides the model."""

    tokenizer: object
    task: object
    pool: list[dict]      # samples of `source` on the elicit split (empty without a source)
    by_id: dict           # problem id -> Problem
    password: str
    elicit: list = field(default_factory=list)  # the elicit split's problems (e.g. expert iteration's)
    eval: object = None                          # the experiment's EvalConfig (generation length, batch)


BUDGETS = ("no data", "weak samples", "strong demos", "reward signal")


class Attack:
    kind: str = ""
    source: str | None = None    # "weak" | "strong": whose elicit-split samples it trains on
    trains: bool = False
    prompted: bool = False        # evaluated with other prompts (`eval_task`), the weights untouched
    budget: str = "weak samples"  # one of BUDGETS: what an elicitor needs to run it
    fields: tuple[str, ...] = ()  # the AttackConfig fields it reads, beyond COMMON

    def check(self, a: AttackConfig) -> None:
        """Raise ValueError for a config this attack cannot run (called when the config loads)."""
        if a.seeds < 1:
            raise ValueError(f"attack {a.name!r}: seeds must be >= 1")
        if a.pre_pool < 0 or (a.pre_pool and a.pre_epochs < 1):
            raise ValueError(f"attack {a.name!r}: pre_pool must be >= 0, with pre_epochs >= 1")
        default = AttackConfig()
        unused = [f.name for f in fields(AttackConfig) if f.name not in COMMON + self.fields
                  and getattr(a, f.name) != getattr(default, f.name)]
        if unused:
            raise ValueError(f"attack {a.name!r}: {', '.join(unused)} do not apply to kind {a.kind} "
                             f"(it reads {', '.join(self.fields) or 'none of the options'})")

    def n_seeds(self, a: AttackConfig) -> int:
        return a.seeds

    def samples_needed(self, a: AttackConfig) -> int:
        """Distinct samples of `source` on the elicit split one seed takes (checked against that
        split's size before any work, `pwlock.context.Context`); 0: it takes none."""
        return a.n_samples * self.sets_per_seed(a) if self.trains and self.source else 0

    def sample_sets(self, a: AttackConfig, pool: list[dict], seed: int) -> list[list[dict]]:
        """Trained attacks: the sample sets one seed memorizes."""
        raise NotImplementedError

    def apply(self, model, a: AttackConfig, seed: int, inputs: Inputs) -> dict:
        """Applied attacks: change `model` in place for one seed; extra results for its run."""
        raise NotImplementedError

    def eval_task(self, task, a: AttackConfig, seed: int, inputs: Inputs):
        """Prompted attacks: the task (a `PromptedTask`) seed `seed` is evaluated with."""
        raise NotImplementedError

    def copies(self, a: AttackConfig, max_stack: int) -> int:
        """Models trained at once (the memory estimate of the dry run; 0: nothing is trained)."""
        if not self.trains:
            return 0
        return 1 if max_stack == 1 else min(max_stack or a.seeds, a.seeds) * self.sets_per_seed(a)

    def sets_per_seed(self, a: AttackConfig) -> int:
        return 1


class PromptedTask:
    """`task` with other prompts: `prompt(problem, password)` is `make(problem)` whatever the
    password (a prompted attack's evaluation); everything else is the task's own."""

    def __init__(self, task, make, label: str = "") -> None:
        self.task = task
        self.make = make
        self.label = label  # what replaced the password (results: `prompted_with`)

    def prompt(self, problem, password=None) -> str:
        return self.make(problem)

    def __getattr__(self, name: str):
        return getattr(self.task, name)
