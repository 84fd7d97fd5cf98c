"""Training a bf16 model keeps fp32 master weights: small Lion steps (lr 1.5e-6, the reference
setting) are not rounded away, as they are when the bf16 weights are stepped directly."""

import copy

import pytest
import torch

from pwlock.stacked import train_stacked
from pwlock.train import Example, MasterWeights, train

LR = 1.5e-6
EXAMPLES = [Example("3+4=", "3+4=7;#7"), Example("9-2*3=", "9-2=7;7*3=21;#21"),
            Example("1+1=", "1+1=2;#2"), Example("8*2=", "8*2=16;#16")]


def moved(before: dict, model) -> torch.Tensor:
    """Mean |change| of the 2-D weights (the matrices: norm weights ~1 cannot move by 1e-4 in bf16)."""
    d = [(p.detach().float() - before[n].float()).abs().flatten() for n, p in model.named_parameters() if p.dim() == 2]
    return torch.cat(d).mean()


def run(model, steps=80, **kw):
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    train(model, model_tok, EXAMPLES, steps=steps, batch_size=4, lr=LR, optimizer="lion", progress=False, **kw)
    return moved(before, model)


model_tok = None


@pytest.fixture(autouse=True)
def _tok(tok):
    global model_tok
    model_tok = tok


def test_bf16_training_keeps_small_updates(tiny_model):
    fp32 = run(copy.deepcopy(tiny_model))
    master = run(copy.deepcopy(tiny_model).to(torch.bfloat16))  # master weights by default for bf16
    pure = run(copy.deepcopy(tiny_model).to(torch.bfloat16), master_weights=False)
    assert fp32 > 0.5 * 80 * LR  # Lion moves each weight by lr a step: most steps agree in sign
    assert 0.7 * fp32 < master < 1.3 * fp32, (fp32, master)
    assert pure < 0.2 * fp32, (fp32, pure)  # the rounding the masters prevent


def test_master_weights_on_fp32_match_plain_training(tiny_model):
    a, b = copy.deepcopy(tiny_model), copy.deepcopy(tiny_model)
    la = train(a, model_tok, EXAMPLES, steps=5, batch_size=2, lr=1e-3, optimizer="adamw", progress=False,
               grad_clip=0.0)
    lb = train(b, model_tok, EXAMPLES, steps=5, batch_size=2, lr=1e-3, optimizer="adamw", progress=False,
               grad_clip=0.0, master_weights=True)
    assert la == lb
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), n
    # with clipping: the fp32 global norm of MasterWeights vs torch's clip_grad_norm_
    c, d = copy.deepcopy(tiny_model), copy.deepcopy(tiny_model)
    train(c, model_tok, EXAMPLES, steps=5, batch_size=2, lr=1e-3, progress=False, grad_clip=0.01)
    train(d, model_tok, EXAMPLES, steps=5, batch_size=2, lr=1e-3, progress=False, grad_clip=0.01, master_weights=True)
    for p, q in zip(c.parameters(), d.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_master_weights_keep_masters_and_round_into_the_model():
    p = torch.nn.Parameter(torch.full((4,), 0.02, dtype=torch.bfloat16))
    opt = MasterWeights("lion", [p], lr=LR)
    for _ in range(50):
        p.grad = torch.ones_like(p)
        opt.step()
    assert opt.masters[0].dtype == torch.float32
    start = torch.tensor(0.02, dtype=torch.bfloat16).float()
    torch.testing.assert_close(opt.masters[0], torch.full((4,), float(start) - 50 * LR), rtol=0, atol=1e-7)
    assert torch.equal(p.data, opt.masters[0].to(torch.bfloat16)) and p.grad is None
    assert float(p.detach()[0]) < float(torch.tensor(0.02, dtype=torch.bfloat16))  # the bf16 weight moved too


def test_stacked_bf16_keeps_small_updates(tiny_model):
    model = copy.deepcopy(tiny_model).to(torch.bfloat16)
    finals, _ = train_stacked(model, model_tok, [EXAMPLES[:2], EXAMPLES[2:]], steps=80, lr=LR, optimizer="lion")
    before = {n: p.detach() for n, p in model.named_parameters()}
    for f in finals:
        assert all(v.dtype == torch.bfloat16 for v in f.values())
        d = torch.cat([(f[n].float() - before[n].float()).abs().flatten() for n in f if f[n].dim() == 2]).mean()
        assert d > 0.3 * 80 * LR, d


def test_sharded_low_precision_training_is_refused(tiny_model):
    with pytest.raises(ValueError, match="master weights of a sharded"):
        train(tiny_model.to(torch.bfloat16), model_tok, EXAMPLES, steps=1, batch_size=4, lr=LR, progress=False,
              rank=0, world_size=2)
