"""Evaluation: greedy accuracy on the test split, with or without the password.

Writes one record per problem (prompt, completion, extracted answer, correct) so every number
in a report can be traced back to the completions behind it.
"""

from __future__ import annotations

from pathlib import Path

from pwlock.sampling import generate
from pwlock.utils import write_jsonl


def evaluate(model, tokenizer, task, problems, password: str | None, eval_cfg, out: Path | None = None,
             desc: str | None = None) -> dict:
    """Greedy accuracy of `model` on `problems`; records go to `out` (JSONL) if given."""
    prompts = [task.prompt(p, password) for p in problems]
    comps = generate(model, tokenizer, prompts, max_new_tokens=eval_cfg.max_new_tokens,
                     temperature=0.0, batch_size=eval_cfg.batch_size, desc=desc)
    records = []
    for p, prompt, c in zip(problems, prompts, comps):
        s = task.score(p, c)
        records.append({"problem_id": p.id, "prompt": prompt, "completion": c,
                        "extracted": s.extracted, "answer": p.answer, "correct": bool(s.correct)})
    if out is not None:
        write_jsonl(out, records)
    n = len(records)
    return {"n_test": n, "accuracy": sum(r["correct"] for r in records) / max(n, 1),
            "correct": "".join("1" if r["correct"] else "0" for r in records)}
