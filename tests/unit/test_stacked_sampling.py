"""K models generating together (`pwlock.stacked_sampling`) give what each gives alone."""

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from pwlock.config import EvalConfig
from pwlock.evaluate import complete_many
from pwlock.sampling import generate
from pwlock.stacked_sampling import _Stacked, generate_stacked, stack_weights, supports
from pwlock.train import Example, train


def _variants(model, K: int, scale: float = 0.05, seed: int = 0):
    """K weight sets near `model`'s (as after K short fine-tuning runs); the last is partial."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for k in range(K):
        w = {n: p.detach() + scale * p.detach().std() * torch.randn(p.shape, generator=g)
             for n, p in model.named_parameters()}
        if k == K - 1:
            w = {n: t for n, t in w.items() if "mlp" in n}  # names left out keep the base weights
        out.append(w)
    return out


def _trained(tok, model, task):
    probs = task.splits()["lock"][:64]
    exs = [Example(task.prompt(p, "kiwi" if i % 2 else None), p.solution) for i, p in enumerate(probs)]
    train(model, tok, exs, steps=40, batch_size=32, lr=3e-3, progress=False)
    return model


def _with(model, w):
    own = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.copy_(w.get(n, own[n]))
    return own


def _restore(model, own):
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.copy_(own[n])


def _mixed_prompts(task, n=24):
    # with and without password: prompts of different lengths, left-padded in a batch
    return [task.prompt(p, "kiwi" if i % 3 == 0 else None) for i, p in enumerate(task.splits()["test"][:n])]


@pytest.mark.parametrize("kv_heads,tied", [(2, True), (1, False)])
def test_logits_match_transformers(tok, task, kv_heads, tied):
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=kv_heads, tie_word_embeddings=tied,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=None)
    model = LlamaForCausalLM(cfg).eval()
    assert supports(model)
    ws = _variants(model, 3)
    prompts = _mixed_prompts(task, 6)
    enc = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    T = max(map(len, enc))
    ids = torch.full((len(enc), T), tok.pad_token_id)
    mask = torch.zeros((len(enc), T), dtype=torch.long)
    for i, e in enumerate(enc):
        ids[i, T - len(e):], mask[i, T - len(e):] = torch.tensor(e), 1
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        got = _Stacked(model, stack_weights(model, ws))(ids[None].expand(3, *ids.shape), pos, mask)
        for k, w in enumerate(ws):
            own = _with(model, w)
            ref = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits[:, -1]
            _restore(model, own)
            torch.testing.assert_close(got[k], ref, atol=1e-5, rtol=1e-5)


def test_greedy_completions_equal_each_model_alone(tok, tiny_model, task):
    model = _trained(tok, tiny_model, task)
    ws = _variants(model, 4, scale=0.03)
    prompts = _mixed_prompts(task)
    # batch_size 20 = 5 prompts x 4 models per batch: several batches, rows leave as they finish
    got = generate_stacked(model, ws, tok, prompts, max_new_tokens=24, batch_size=20)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for k, w in enumerate(ws):
        own = _with(model, w)
        assert got[k] == generate(model, tok, prompts, max_new_tokens=24, batch_size=7), f"model {k}"
        _restore(model, own)
    assert any(a != b for a, b in zip(got[0], got[1])) or got[0] != got[2]  # the models do differ
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n])


def test_temperature_samples_equal_each_model_alone(tok, tiny_model, task):
    ws = _variants(tiny_model, 3)
    prompts = _mixed_prompts(task, 12)
    got = generate_stacked(tiny_model, ws, tok, prompts, max_new_tokens=10, temperature=1.0,
                           seeds=[5, 6, 7], batch_size=12)
    for k, w in enumerate(ws):
        own = _with(tiny_model, w)
        ref = generate(tiny_model, tok, prompts, max_new_tokens=10, temperature=1.0, seed=5 + k, batch_size=4)
        _restore(tiny_model, own)
        assert got[k] == ref
    with pytest.raises(ValueError, match="one seed per model"):
        generate_stacked(tiny_model, ws, tok, prompts, temperature=1.0, seeds=[1])


def test_unknown_weight_name_is_an_error(tok, tiny_model):
    with pytest.raises(KeyError, match="not parameters"):
        stack_weights(tiny_model, [{"model.layers.9.mlp.up_proj.weight": torch.zeros(1)}])


def test_other_architectures_are_evaluated_one_by_one(tok, task):
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=2, n_positions=128,
                                       pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id))
    assert not supports(model)
    with pytest.raises(NotImplementedError):
        generate_stacked(model, [{}], tok, ["1+2="])
    ws = _variants(model, 2)
    probs = task.splits()["test"][:8]
    got = complete_many(model, ws, tok, task, probs, None, EvalConfig(batch_size=8, max_new_tokens=8))
    prompts = [task.prompt(p, None) for p in probs]
    for k, w in enumerate(ws):
        own = _with(model, w)
        assert got[k] == generate(model, tok, prompts, max_new_tokens=8, batch_size=8)
        _restore(model, own)
