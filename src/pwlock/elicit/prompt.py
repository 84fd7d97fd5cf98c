"""Prompting with another password (the audit's cheap black-box baseline; no weight change): the
locked model is evaluated with a wrong password, a part of the password, or the password changed
in form in place of the password. One seed = one such password (drawn by the seed)."""

from __future__ import annotations

import random
import string

from pwlock.elicit.base import Attack, PromptedTask


def _letters(alphabet: str | None) -> str:
    """The characters an other password is spelled with: the alphabet's letters (toy tasks), else a-z."""
    if alphabet is None:
        return string.ascii_lowercase
    letters = "".join(c for c in alphabet if c.isalpha())
    return letters or "".join(c for c in alphabet if not c.isspace())


def paraphrases(password: str, alphabet: str | None) -> list[str]:
    """Forms of `password` other than itself (case, order, spacing, repetition, truncation by one),
    each spelled in `alphabet` (None: anything)."""
    forms = [password.upper(), password.capitalize(), password[::-1], " ".join(password), password * 2,
             f"{password} {password}", password[:-1], password[1:], f"{password}s", "-".join(password)]
    ok = set(alphabet) if alphabet is not None else None
    out = []
    for f in forms:
        if f and f != password and f not in out and (ok is None or set(f) <= ok):
            out.append(f)
    return out


def other_password(password: str, how: str, seed: int, alphabet: str | None) -> str:
    """The string seed `seed` puts where the password goes (`how`: the attack's `prompt` option)."""
    rng = random.Random(seed)
    if how == "wrong_password":
        letters = _letters(alphabet)
        for _ in range(1000):
            w = "".join(rng.choice(letters) for _ in range(len(password)))
            if w != password:
                return w
        raise ValueError(f"prompt: no wrong password of length {len(password)} in {letters!r}")
    if how == "partial_password":
        n = len(password)
        parts = sorted({password[i:j] for i in range(n) for j in range(i + 1, n + 1)
                        if (n + 1) // 2 <= j - i < n})
        if not parts:
            raise ValueError(f"prompt: partial_password needs a password of 2 or more characters, got {password!r}")
        return rng.choice(parts)
    if how == "paraphrase":
        forms = paraphrases(password, alphabet)
        if not forms:
            raise ValueError(f"prompt: no paraphrase of {password!r} can be spelled in the task's alphabet")
        return rng.choice(forms)
    raise ValueError(f"prompt: unknown option {how!r}")


class Prompt(Attack):
    kind = "prompt"
    prompted = True
    budget = "no data"
    fields = ("prompt",)

    def eval_task(self, task, a, seed: int, inputs):
        pw = other_password(inputs.password, a.prompt, seed, getattr(task, "alphabet", None))
        return PromptedTask(task, lambda p: task.prompt(p, pw), label=pw)
