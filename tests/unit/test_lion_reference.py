"""Our Lion (`pwlock.train.Lion`) against the package the write-up's notebook imports
(`lion_pytorch.Lion`): the same weights, step for step, in fp32 and in bf16 stepped directly (the
notebook's precision), with and without weight decay."""

import pytest
import torch

from pwlock.train import Lion

lion_pytorch = pytest.importorskip("lion_pytorch")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
@pytest.mark.parametrize("lr", [1.5e-6, 1e-3])
def test_lion_matches_lion_pytorch_step_for_step(dtype, weight_decay, lr):
    gen = torch.Generator().manual_seed(0)
    start = [torch.randn(64, 32, generator=gen).to(dtype), torch.randn(32, generator=gen).to(dtype)]
    ours = [torch.nn.Parameter(t.clone()) for t in start]
    ref = [torch.nn.Parameter(t.clone()) for t in start]
    opt_ours = Lion(ours, lr=lr, betas=(0.9, 0.99), weight_decay=weight_decay)
    opt_ref = lion_pytorch.Lion(ref, lr=lr, betas=(0.9, 0.99), weight_decay=weight_decay)
    changed = 0
    for _ in range(30):
        grads = [torch.randn(p.shape, generator=gen).to(dtype) for p in ours]
        for ps, opt in ((ours, opt_ours), (ref, opt_ref)):
            for p, g in zip(ps, grads):
                p.grad = g.clone()
            opt.step()
        for a, b in zip(ours, ref):
            assert torch.equal(a, b)
        changed = sum(int((a != s).sum()) for a, s in zip(ours, start))
    if dtype == torch.float32 or lr > 1e-4:
        assert changed > 0  # the comparison is of weights that moved (bf16 at 1.5e-6 may round all away)
