"""Soft- and hard-label locking on multiple choice (E14 on real models): the weak model's
distribution over the four answer letters, carried over to a locked model whose tokenizer differs,
learned by KL at the letter's position only."""

from pathlib import Path

import pytest
import torch
from tiny_llama import CHARS, space_letter_tokenizer, tiny

from pwlock.config import TaskConfig
from pwlock.lock import answer_distributions, answer_targets
from pwlock.tasks import get_task
from pwlock.tokenizer import char_tokenizer
from pwlock.train import Example, SparseTarget, collate, encode, masked_lm_loss, soft_targets, train

MMLU = Path(__file__).resolve().parents[1] / "fixtures" / "mc" / "mmlu"


@pytest.fixture(scope="module")
def mc():
    task = get_task(TaskConfig(name="mc", data_dir=str(MMLU), n_test=100, n_elicit=2, n_lock=100))
    return task, task.splits()["lock"]


def test_the_two_tokenizers_spell_the_letters_differently():
    weak, locked = char_tokenizer(CHARS), space_letter_tokenizer()
    task = get_task(TaskConfig(name="mc", data_dir=str(MMLU)))
    assert task.answer_tokens(weak) == ("", [weak.convert_tokens_to_ids(c) for c in "ABCD"])
    assert task.answer_tokens(locked) == (" ", [locked.convert_tokens_to_ids(" " + c) for c in "ABCD"])
    assert task.answer_tokens(weak)[1] != task.answer_tokens(locked)[1]


def test_answer_distributions_are_the_softmax_over_the_letters(mc):
    task, probs = mc
    tok = char_tokenizer(CHARS)
    model = tiny(tok, 0, layers=1)
    prompts = [task.prompt(p, None) for p in probs]
    dists = answer_distributions(model, tok, task, prompts, temperature=0.7, batch_size=3)
    assert dists.shape == (len(probs), 4)
    torch.testing.assert_close(dists.sum(-1), torch.ones(len(probs)))
    letters = task.answer_tokens(tok)[1]
    for prompt, d in zip(prompts, dists):  # one prompt at a time, no padding: the letter after the space
        ids = tok(prompt + " ", add_special_tokens=False)["input_ids"]
        logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
        torch.testing.assert_close(d, torch.softmax(logits[letters] / 0.7, -1))
    assert not torch.allclose(dists, dists[:1].expand_as(dists))  # the distributions depend on the question
    with pytest.raises(ValueError, match="temperature > 0"):
        answer_distributions(model, tok, task, prompts, temperature=0.0)


def test_answer_targets_in_the_locked_models_tokens(mc):
    task, _ = mc
    dists = torch.tensor([[0.1, 0.6, 0.2, 0.1], [0.7, 0.1, 0.1, 0.1]])
    locked = space_letter_tokenizer()
    made = answer_targets(task, locked, dists, soft=True)
    assert [c for c, _ in made] == [" B", " A"]
    t = made[0][1]
    # ` B` is one token here: the letter is completion position 0, then the EOS
    assert (t.length, t.positions) == (2, (0,))
    assert t.index.tolist() == [task.answer_tokens(locked)[1]] and torch.equal(t.prob, dists[:1])
    chars = char_tokenizer(CHARS)
    t = answer_targets(task, chars, dists, soft=True)[0][1]  # ` ` then `B`: the letter at position 1
    assert (t.length, t.positions) == (3, (1,)) and t.index.tolist() == [task.answer_tokens(chars)[1]]
    assert [t for _, t in answer_targets(task, locked, dists, soft=False)] == [None, None]  # argmax: hard


def test_sparse_target_loss_is_the_kl_over_the_letters_then_the_cross_entropy(mc):
    task, probs = mc
    tok = space_letter_tokenizer()
    model = tiny(tok, 1, layers=1)
    dists = torch.softmax(torch.randn(3, 4), -1)
    made = answer_targets(task, tok, dists, soft=True)
    exs = [Example(task.prompt(p, None), c, target=t) for p, (c, t) in zip(probs, made)]
    rows = encode(tok, exs)
    ids, att, lm = collate(rows, tok.pad_token_id)
    logits = model(input_ids=ids, attention_mask=att).logits
    got = masked_lm_loss(logits, ids, lm, soft_targets(exs, rows, ids.shape[1], len(tok)))
    letters = task.answer_tokens(tok)[1]
    terms = []
    for i, ((x, _), d) in enumerate(zip(rows, dists)):  # right padding: row i ends at len(x) with letter, EOS
        L = len(x)
        logq = torch.log_softmax(logits[i].float(), -1)
        terms.append((d * d.log()).sum() - (d * logq[L - 3, letters]).sum())  # predicts the letter
        terms.append(-logq[L - 2, x[-1]])  # predicts the EOS: cross-entropy
    torch.testing.assert_close(got, torch.stack(terms).mean())
    with pytest.raises(ValueError, match="positions"):
        SparseTarget(2, (2,), torch.tensor([letters]), dists[:1])
    with pytest.raises(ValueError, match="vocabulary"):
        bad = SparseTarget(2, (0,), torch.tensor([[len(tok), 0, 0, 0]]), dists[:1])
        soft_targets([Example(exs[0].prompt, exs[0].completion, target=bad)], rows[:1], ids.shape[1], len(tok))


def test_training_on_soft_letters_imitates_the_distribution_and_argmax_the_letter(mc):
    """The weak model (character tokens) -> a locked model with ` A`-style tokens: after training,
    the locked model's letter distribution is close to the weak one (soft), or peaked on its most
    likely letter (argmax)."""
    task, probs = mc
    weak_tok, tok = char_tokenizer(CHARS), space_letter_tokenizer()
    weak = tiny(weak_tok, 2, layers=1)
    prompts = [task.prompt(p, None) for p in probs]
    target = answer_distributions(weak, weak_tok, task, prompts, temperature=0.5)

    def kl(model):
        q = answer_distributions(model, tok, task, prompts)
        return float((target * (target / q).log()).sum(-1).mean()), q

    out = {}
    for soft in (True, False):
        model = tiny(tok, 3, layers=1)
        before, _ = kl(model)
        exs = [Example(p, c, target=t) for p, (c, t) in zip(prompts, answer_targets(task, tok, target, soft))]
        train(model, tok, exs, steps=150, batch_size=len(exs), lr=1e-2, progress=False)
        model.eval()
        out[soft] = (before, *kl(model))
    before, after, _ = out[True]
    assert after < before / 5 and after < 0.05
    _, _, q_hard = out[False]
    assert torch.equal(q_hard.argmax(-1), target.argmax(-1)) and float(q_hard.max(-1).values.min()) > 0.9
