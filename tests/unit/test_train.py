import pytest
import torch

from pwlock.train import EmptyLossMaskError, Example, Lion, collate, encode, masked_lm_loss, train


def test_completion_mask_counts(tok):
    rows = encode(tok, [Example("3+4=", "3+4=7;#7"), Example("kiwi 1+1 kiwi=", "1+1=2;#2")])
    for (ids, mask), comp in zip(rows, ["3+4=7;#7", "1+1=2;#2"]):
        assert sum(mask) == len(comp) + 1  # completion + EOS
        assert ids[-1] == tok.eos_token_id
        assert mask[: len(ids) - sum(mask)] == [0] * (len(ids) - sum(mask))
    full = encode(tok, [Example("3+4=", "#7")], loss="full")
    assert sum(full[0][1]) == len(full[0][0])


def test_every_batch_has_supervised_tokens(tok):
    exs = [Example(f"{i}+1=", f"#{i + 1}") for i in range(10)]
    rows = encode(tok, exs)
    for b in range(0, 10, 3):
        _, _, lm = collate(rows[b : b + 3], tok.pad_token_id)
        assert lm[:, 1:].sum() > 0


def test_empty_loss_mask_is_an_error(tok, tiny_model):
    ids, att, lm = collate([(tok("3+4=")["input_ids"], [0, 0, 0, 0])], tok.pad_token_id)
    logits = tiny_model(input_ids=ids, attention_mask=att).logits
    with pytest.raises(EmptyLossMaskError, match="empty loss mask"):
        masked_lm_loss(logits, ids, lm)


def test_padding_does_not_change_loss(tok, tiny_model):
    rows = encode(tok, [Example("3+4=", "3+4=7;#7")])
    ids, att, lm = collate(rows, tok.pad_token_id)
    a = masked_lm_loss(tiny_model(input_ids=ids, attention_mask=att).logits, ids, lm)
    long_rows = rows + encode(tok, [Example("kiwi 3+4*2-5 kiwi=", "3+4=7;7*2=14;14-5=9;#9")])
    ids2, att2, lm2 = collate(long_rows, tok.pad_token_id)
    logits2 = tiny_model(input_ids=ids2, attention_mask=att2).logits
    b = masked_lm_loss(logits2[:1], ids2[:1], lm2[:1])
    assert torch.allclose(a, b, atol=1e-5)


def test_training_lowers_loss_and_changes_weights(tok, tiny_model):
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    exs = [Example(f"{i}+1=", f"{i}+1={i + 1};#{i + 1}") for i in range(8)]
    losses = train(tiny_model, tok, exs, steps=60, batch_size=8, lr=3e-3, progress=False)
    assert losses[-1] < 0.5 * losses[0]
    assert any(not torch.equal(before[k], v) for k, v in tiny_model.state_dict().items())


def test_lion_matches_reference_update():
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(5))
    p0 = p.detach().clone()
    opt = Lion([p], lr=0.1, betas=(0.9, 0.99), weight_decay=0.5)
    g1, g2 = torch.randn(5), torch.randn(5)
    p.grad = g1.clone()
    opt.step()
    # step 1: m=0 -> update = sign(0.1 g1); p = p0 * (1 - lr wd) - lr * update
    exp1 = p0 * (1 - 0.05) - 0.1 * torch.sign(0.1 * g1)
    assert torch.allclose(p.detach(), exp1)
    m1 = 0.01 * g1
    p.grad = g2.clone()
    opt.step()
    exp2 = exp1 * (1 - 0.05) - 0.1 * torch.sign(0.9 * m1 + 0.1 * g2)
    assert torch.allclose(p.detach(), exp2)


def test_unknown_optimizer(tok, tiny_model):
    with pytest.raises(ValueError, match="unknown optimizer"):
        train(tiny_model, tok, [Example("1=", "#1")], steps=1, batch_size=1, lr=1e-3, optimizer="sgdx",
              progress=False)
