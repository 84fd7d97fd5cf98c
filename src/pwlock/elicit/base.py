"""What every attack of the registry has: the interface `pwlock.stages.elicit` calls.

An attack maps (a locked model, its `AttackConfig`, a seed) to an attacked model. It is one of
two shapes:
- **trained** (`trains = True`: wsu, demos, average): it names, per seed, the sample sets it
  memorizes (`sample_sets`); the stage trains every set with WSU's training
  (`pwlock.elicit.wsu`: all the seeds' sets stacked in one model, or one at a time in place) and
  the seed's model is the mean of its sets' trained weights (one set: the trained weights);
- **applied** (`trains = False`: noise, scale, decay, varied, ...): `apply` changes the model in
  place for one seed and returns extra results.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

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


class Attack:
    kind: str = ""
    source: str | None = None    # "weak" | "strong": whose elicit-split samples it trains on
    trains: bool = False
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

    def copies(self, a: AttackConfig, max_stack: int) -> int:
        """Models trained at once (the memory estimate of the dry run; 0: nothing is trained)."""
        if not self.trains:
            return 0
        return 1 if max_stack == 1 else min(max_stack or a.seeds, a.seeds) * self.sets_per_seed(a)

    def sets_per_seed(self, a: AttackConfig) -> int:
        return 1
