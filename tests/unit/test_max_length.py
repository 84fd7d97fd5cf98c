"""`eval.max_length`: prompt + completion at most max_length tokens (the notebook's
`generate(max_length=1024)`), in plain and stacked generation, and in the run keys only when set."""


from pwlock.sampling import budgets, generate
from pwlock.stacked_sampling import generate_stacked


def _long_answers(model, tok):
    """`model` trained to answer every prompt with the same 16 characters (then EOS)."""
    from pwlock.train import Example, train

    exs = [Example(p, "abcdefghijklmnop") for p in ("1+2=", "3*4=", "5-6=", "7+8*9=", "kiwi 1+1=", "22+3=")]
    train(model, tok, exs, steps=150, batch_size=6, lr=1e-2, progress=False)
    return model.eval()


def test_budgets():
    enc = [[1] * 3, [1] * 8, [1] * 12]
    assert budgets(enc, 10, 0).tolist() == [10, 10, 10]
    assert budgets(enc, 10, 12).tolist() == [9, 4, 0]
    assert budgets(enc, 5, 12).tolist() == [5, 4, 0]


def test_max_length_counts_the_prompt(tiny_model, tok):
    model = _long_answers(tiny_model, tok)
    prompts = ["1+2=", "12+34*5=", "kiwi 3+4*2="]
    free = generate(model, tok, prompts, max_new_tokens=12)
    assert free == ["abcdefghijkl"] * 3  # the toy tokenizer: one character per token
    capped = generate(model, tok, prompts, max_new_tokens=12, max_length=14)
    assert [len(c) for c in capped] == [10, 6, 3]
    assert all(f.startswith(c) for f, c in zip(free, capped))  # the same tokens, cut at the cap
    assert generate(model, tok, ["x" * 14], max_new_tokens=12, max_length=14) == [""]
    w = {n: p.detach().clone() for n, p in model.named_parameters()}
    stacked = generate_stacked(model, [w, w], tok, prompts, max_new_tokens=12, max_length=14)
    assert stacked == [capped, capped]


def test_max_length_is_in_run_keys_only_when_set():
    from pwlock.config import load_config
    from pwlock.plan import planned_run_ids

    base = planned_run_ids(load_config("configs/toy/core.yaml", ["lock.epochs=1", "wsu.seeds=1"]))
    same = planned_run_ids(load_config("configs/toy/core.yaml", ["lock.epochs=1", "wsu.seeds=1", "eval.max_length=0"]))
    other = planned_run_ids(load_config("configs/toy/core.yaml", ["lock.epochs=1", "wsu.seeds=1",
                                                                  "eval.max_length=60"]))
    flat = lambda ids: {i for v in ids.values() for i in (v if isinstance(v, list) else [v])}  # noqa: E731
    assert base == same
    # what is generated changes (samples, evaluations, WSU's evaluation) and what trains on samples (the lock);
    # the zoo (trained on the pretrain split, no generation with the cap) keeps its runs
    assert {i.split("/")[0] for i in flat(base) - flat(other)} == {"samples", "lock", "eval", "wsu"}
    assert {i.split("/")[0] for i in flat(base) & flat(other)} == {"zoo"}
