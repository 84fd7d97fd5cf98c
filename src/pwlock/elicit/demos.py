"""SFT on n strong demonstrations (E15, the usual elicitation baseline): WSU's training on the
strong model's greedy samples of the elicit split instead of the weak model's."""

from __future__ import annotations

from pwlock.elicit.wsu import WSU


class Demos(WSU):
    kind = "demos"
    source = "strong"
    budget = "strong demos"
