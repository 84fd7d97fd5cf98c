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
