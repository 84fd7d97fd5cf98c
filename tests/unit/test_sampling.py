import torch

from pwlock.config import EvalConfig
from pwlock.evaluate import evaluate
from pwlock.sampling import generate
from pwlock.train import Example, train


def _trained(tok, tiny_model, task):
    probs = task.splits()["lock"][:64]
    exs = [Example(task.prompt(p, "kiwi" if i % 2 else None), p.solution) for i, p in enumerate(probs)]
    train(tiny_model, tok, exs, steps=40, batch_size=32, lr=3e-3, progress=False)
    return tiny_model


def test_greedy_matches_no_cache_argmax(tok, tiny_model, task):
    model = _trained(tok, tiny_model, task)
    prompts = [task.prompt(p, None) for p in task.splits()["test"][:3]]
    out = generate(model, tok, prompts, max_new_tokens=12, batch_size=3)
    for prompt, comp in zip(prompts, out):
        ids = tok(prompt, add_special_tokens=False)["input_ids"]
        ref = []
        for _ in range(12):  # step-by-step without cache or padding
            nxt = int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax())
            if nxt == tok.eos_token_id:
                break
            ids.append(nxt)
            ref.append(nxt)
        assert comp == tok.decode(ref)


def test_results_do_not_depend_on_batch_size(tok, tiny_model, task):
    """Mixed prompt lengths (with/without password) force left padding inside batches."""
    model = _trained(tok, tiny_model, task)
    probs = task.splits()["test"][:40]
    prompts = [task.prompt(p, "kiwi" if i % 3 == 0 else None) for i, p in enumerate(probs)]
    ref = generate(model, tok, prompts, max_new_tokens=24, batch_size=1)
    for bs in (7, 40):
        assert generate(model, tok, prompts, max_new_tokens=24, batch_size=bs) == ref
    a = evaluate(model, tok, task, probs, None, EvalConfig(batch_size=1, max_new_tokens=24))
    b = evaluate(model, tok, task, probs, None, EvalConfig(batch_size=16, max_new_tokens=24))
    assert a == b


def test_temperature_sampling_is_seeded(tok, tiny_model, task):
    prompts = [task.prompt(p, None) for p in task.splits()["test"][:8]]
    a = generate(tiny_model, tok, prompts, max_new_tokens=10, temperature=1.0, seed=1)
    b = generate(tiny_model, tok, prompts, max_new_tokens=10, temperature=1.0, seed=1)
    c = generate(tiny_model, tok, prompts, max_new_tokens=10, temperature=1.0, seed=2)
    assert a == b and a != c
