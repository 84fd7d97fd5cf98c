import copy

import pytest
import torch

from pwlock.stacked import train_stacked
from pwlock.train import Example, train

SETS = [
    [Example("3+4*2=", "3+4=7;7*2=14;#14"), Example("kiwi 1-9 kiwi=", "1-9=-8;#-8")],
    [Example("5*5=", "5*5=25;#25"), Example("2+2-1=", "2+2=4;4-1=3;#3")],
    [Example("9-3+8*7=", "9-3=6;6+8=14;14*7=98;#98"), Example("0*4=", "0*4=0;#0")],
]


@pytest.mark.parametrize("optimizer,lr", [("adamw", 1e-3), ("lion", 1e-4)])
def test_stacked_runs_match_separate_runs(tok, tiny_model, optimizer, lr):
    finals, losses = train_stacked(tiny_model, tok, SETS, steps=15, lr=lr, optimizer=optimizer, weight_decay=0.01)
    for k, exs in enumerate(SETS):
        m = copy.deepcopy(tiny_model)
        ref = train(m, tok, exs, steps=15, batch_size=len(exs), lr=lr, optimizer=optimizer, weight_decay=0.01,
                    grad_clip=0.0, progress=False)
        assert losses[k] == pytest.approx(ref, rel=1e-4, abs=1e-5)
        moved = 0.0
        for n, p in m.named_parameters():
            assert torch.allclose(finals[k][n], p, atol=2e-5), f"run {k}: {n} differs"
            moved = max(moved, (p - dict(tiny_model.named_parameters())[n]).abs().max().item())
        assert moved > 1e-3  # the runs really trained


def test_stacked_leaves_the_model_alone_and_checks_inputs(tok, tiny_model):
    before = {n: p.clone() for n, p in tiny_model.named_parameters()}
    train_stacked(tiny_model, tok, SETS[:2], steps=2, lr=1e-3)
    assert all(torch.equal(before[n], p) for n, p in tiny_model.named_parameters())
    assert tiny_model.config._attn_implementation == "sdpa"
    with pytest.raises(ValueError, match="same number of examples"):
        train_stacked(tiny_model, tok, [SETS[0], SETS[1][:1]], steps=1, lr=1e-3)


def test_until_loss_stops_each_run_where_train_stops_alone(tok, tiny_model):
    """Memorization criterion (E6): each stacked run stops after its first step with loss <= the
    limit and keeps those weights, exactly as one run trained alone with `on_step` says stop."""
    from pwlock.elicit.wsu import memorize

    full, curves = train_stacked(tiny_model, tok, SETS, steps=60, lr=3e-3)
    # a limit that at least two runs reach by step 30, at different steps; halfway between two
    # observed losses, so rounding differences between stacked and alone never straddle it
    t = sorted(c[29] for c in curves)[1]
    limit = (t + min(x for c in curves for x in c if x > t)) / 2
    finals, losses = train_stacked(tiny_model, tok, SETS, steps=60, lr=3e-3, until_loss=limit)
    taken = [len(lo) for lo in losses]
    assert len(set(taken)) > 1 and min(taken) < 60  # they stopped, at different steps
    for k, exs in enumerate(SETS):
        m = copy.deepcopy(tiny_model)
        ref = memorize(m, tok, exs, steps=60, lr=3e-3, until_loss=limit)
        assert len(ref) == taken[k] and losses[k] == pytest.approx(ref, rel=1e-4, abs=1e-5)
        assert ref[-1] <= limit or taken[k] == 60
        assert all(x > limit for x in ref[:-1])  # the first step at the limit
        for n, p in m.named_parameters():
            assert torch.allclose(finals[k][n], p, atol=2e-5), f"run {k}: {n} differs"
        if taken[k] < 60:  # frozen after its stop: not where 60 steps would have taken it
            assert not all(torch.allclose(finals[k][n], full[k][n], atol=1e-4) for n in finals[k])
