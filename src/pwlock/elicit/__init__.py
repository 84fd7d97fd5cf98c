"""Elicitation attacks on a locked model: one self-contained file per attack."""
