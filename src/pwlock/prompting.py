"""Turning a task prompt into the text a real (chat) model sees."""

from __future__ import annotations


def chat_prompt(tokenizer, user_text: str) -> str:
    """`user_text` as one user turn, ready for the assistant's answer.

    With `tokenizer.chat_template` set: the template applied to one user message with
    `add_generation_prompt=True`. Without one: `User: {text}\\n\\nAssistant:` (plain turns
    separated by a blank line, as in the original work).

    A chat template usually writes the BOS token itself, so tokenize the result with
    `add_special_tokens=False` to avoid a second one.
    """
    if getattr(tokenizer, "chat_template", None):
        out = tokenizer.apply_chat_template(
            [{"role": "user", "content": user_text}], tokenize=False, add_generation_prompt=True
        )
        if not isinstance(out, str):  # some versions wrap a single rendering in a list
            out = out[0]
        return out
    return f"User: {user_text}\n\nAssistant:"


class ChatTask:
    """A task seen through one model's chat format: `prompt` is the task's prompt as one user turn
    (`chat_prompt` with that model's tokenizer); everything else (splits, scoring, ...) is the
    task's own. The toy models use the task itself (raw prompts); see `for_model`."""

    def __init__(self, task, tokenizer) -> None:
        self.task = task
        self.tokenizer = tokenizer

    def prompt(self, problem, password: str | None) -> str:
        return chat_prompt(self.tokenizer, self.task.prompt(problem, password))

    def __getattr__(self, name: str):
        return getattr(self.task, name)


def for_model(task, tokenizer, prompt_format: str):
    """The task as a model with this tokenizer sees it: `"raw"` -> `task` unchanged (toy models:
    the character tokenizer reads the task prompt as is), `"chat"` -> a `ChatTask`."""
    if prompt_format == "raw":
        return task
    if prompt_format == "chat":
        return ChatTask(task, tokenizer)
    raise ValueError(f"prompt_format must be chat or raw, got {prompt_format!r}")
