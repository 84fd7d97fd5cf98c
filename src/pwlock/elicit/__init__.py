"""Elicitation attacks: a registry, one file per attack (its checks, the fields it reads, and its
`apply` or its sample sets; see `pwlock.elicit.base`). WSU (`wsu.py`) is one attack among them
and the only WSU code. An attack from outside the package is named in a config as
`kind: module:Class` (a subclass of `pwlock.elicit.Attack`; README, "Your own attack").

Adding an attack to the package: a file `pwlock/elicit/<kind>.py` defining an `Attack` subclass
with `kind = "<kind>"`, and its kind in `KINDS`.
"""

from __future__ import annotations

import importlib

from pwlock.elicit.base import BUDGETS, Attack, Inputs

KINDS = ("wsu", "demos", "varied", "noise", "scale", "decay", "average", "expert_iteration", "iterated_dpo", "prompt",
         "few_shot")


def _attack_class(kind: str) -> type[Attack]:
    """The `Attack` subclass of kind `kind` defined in `pwlock/elicit/<kind>.py`."""
    module = importlib.import_module(f"pwlock.elicit.{kind}")
    found = [c for c in vars(module).values()
             if isinstance(c, type) and issubclass(c, Attack) and c.kind == kind and c.__module__ == module.__name__]
    if len(found) != 1:
        raise ImportError(f"pwlock/elicit/{kind}.py must define one Attack subclass with kind = {kind!r}")
    return found[0]


ATTACKS: dict[str, type[Attack]] = {kind: _attack_class(kind) for kind in KINDS}


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


__all__ = ["ATTACKS", "BUDGETS", "KINDS", "Attack", "Inputs", "get_attack"]
