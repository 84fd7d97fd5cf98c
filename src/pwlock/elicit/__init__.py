"""Elicitation attacks: a registry, one file per attack (its checks, the fields it reads, and its
`apply` or its sample sets; see `pwlock.elicit.base`). WSU (`wsu.py`) is one attack among them
and the only WSU code. An attack from outside the package is named in a config as
`kind: module:Class` (a subclass of `pwlock.elicit.Attack`; README, "Your own attack").

Adding an attack to the package: one file here and one line in `ATTACKS`.
"""

from __future__ import annotations

from pwlock.elicit.average import Average
from pwlock.elicit.base import Attack, Inputs
from pwlock.elicit.decay import Decay
from pwlock.elicit.demos import Demos
from pwlock.elicit.noise import Noise
from pwlock.elicit.scale import Scale
from pwlock.elicit.varied import Varied
from pwlock.elicit.wsu import WSU

ATTACKS: dict[str, type[Attack]] = {c.kind: c for c in (WSU, Demos, Varied, Noise, Scale, Decay, Average)}


def get_attack(kind: str) -> Attack:
    """The attack of kind `kind`: one of `ATTACKS`, or `module:Class` from outside the package."""
    if ":" in kind:
        from pwlock.utils import import_object

        cls = import_object(kind, what="attack kind")
        if not (isinstance(cls, type) and issubclass(cls, Attack)):
            raise ValueError(f"attack kind {kind!r} is not a subclass of pwlock.elicit.Attack")
        return cls()
    if kind not in ATTACKS:
        raise ValueError(f"unknown attack kind {kind!r}; use one of {', '.join(ATTACKS)} (or module:Class)")
    return ATTACKS[kind]()


__all__ = ["ATTACKS", "Attack", "Inputs", "get_attack"]
