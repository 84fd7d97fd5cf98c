"""Few-shot prompting with strong demonstrations (no weight change): `n_samples` of the strong
model's elicit-split samples, each its problem's prompt (no password) and completion followed by
EOS, in front of every test prompt. One seed = one draw of demonstrations."""

from __future__ import annotations

from pwlock.elicit.base import Attack, PromptedTask
from pwlock.elicit.wsu import pick_samples


class FewShot(Attack):
    kind = "few_shot"
    source = "strong"
    prompted = True
    budget = "strong demos"
    fields = ("n_samples",)

    def samples_needed(self, a) -> int:
        return a.n_samples

    def eval_task(self, task, a, seed: int, inputs):
        demos = pick_samples(inputs.pool, a.n_samples, seed)
        sep = getattr(inputs.tokenizer, "eos_token", None) or "\n\n"
        prefix = "".join(task.prompt(inputs.by_id[d["problem_id"]], None) + d["completion"] + sep for d in demos)
        return PromptedTask(task, lambda p: prefix + task.prompt(p, None), label=f"{len(demos)} demos")


def longest_prompt(n_samples: int, prompt_len: int, max_new_tokens: int) -> int:
    """An upper bound on a few-shot prompt's length in characters (toy tokens): n demonstrations
    of at most `prompt_len` + `max_new_tokens` + EOS each, then the prompt."""
    return n_samples * (prompt_len + max_new_tokens + 1) + prompt_len
