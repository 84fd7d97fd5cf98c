"""FSDP2 on one GPU (an NCCL group of one rank): the same losses as the plain model, mixed
precision trains, a gathered checkpoint reloads; `load_pretrained` picks bf16 on CUDA.
Skipped without CUDA (multi-rank equality is checked on CPU by test_distributed.py)."""

import os
import socket

import pytest
import torch

from pwlock.config import ArchConfig
from pwlock.models import build_model, load_checkpoint
from pwlock.train import Example, masked_lm_loss, sharded_lm_loss, train

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

ARCH = ArchConfig(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128)
EXAMPLES = [Example(f"{a}+{b}=", f"{a}+{b}={a + b};#{a + b}") for a in range(10) for b in range(10)]


@pytest.fixture()
def nccl_group():
    import torch.distributed as dist

    from pwlock.distributed import DistEnv

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
    dev = torch.device("cuda", 0)
    torch.cuda.set_device(dev)
    dist.init_process_group("nccl", device_id=dev)
    yield DistEnv(0, 1, 0, dev)
    dist.destroy_process_group()
    for k in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK"):
        os.environ.pop(k, None)


def _train(model, tok):
    return train(model, tok, EXAMPLES, steps=20, batch_size=16, lr=1e-3, optimizer="lion", progress=False)


def test_fsdp2_one_gpu(tmp_path, tok, nccl_group):
    from pwlock.distributed import full_state_dict, save_sharded_checkpoint, shard_model

    env = nccl_group
    plain = build_model(ARCH, tok, seed=0).to(env.device)
    ref = _train(plain, tok)
    sharded = shard_model(build_model(ARCH, tok, seed=0), env, "fsdp")
    assert {type(p).__name__ for p in sharded.parameters()} == {"DTensor"}
    got = _train(sharded, tok)
    assert got == pytest.approx(ref, rel=1e-4) and got[-1] < got[0]

    mixed = shard_model(build_model(ARCH, tok, seed=0), env, "fsdp", param_dtype=torch.bfloat16,
                        reduce_dtype=torch.float32)
    losses = _train(mixed, tok)
    assert next(mixed.parameters()).dtype == torch.float32 and losses[-1] < losses[0]

    x = torch.tensor([tok("3+4=7;#7", add_special_tokens=False)["input_ids"]] * 2, device=env.device)
    lm = torch.ones_like(x, dtype=torch.float32)
    lm[:, :4] = 0
    with torch.no_grad():
        logits = plain(input_ids=x).logits
    loss, to_backward = sharded_lm_loss(logits, x, lm, 1)
    torch.testing.assert_close(loss, masked_lm_loss(logits, x, lm))
    torch.testing.assert_close(to_backward, loss)

    state = full_state_dict(sharded)
    save_sharded_checkpoint(sharded, tok, tmp_path / "ck", env, {"gpu": True})
    loaded, _, meta = load_checkpoint(tmp_path / "ck")
    assert meta["gpu"]
    for k, v in loaded.state_dict().items():
        torch.testing.assert_close(v, state[k].cpu(), rtol=0, atol=0, msg=k)


def test_load_pretrained_bf16_on_cuda(tmp_path, tok):
    from pwlock.hf import load_pretrained
    from pwlock.sampling import generate

    build_model(ARCH, tok, seed=0).save_pretrained(tmp_path / "hf")
    tok.save_pretrained(tmp_path / "hf")
    model, tok2 = load_pretrained(tmp_path / "hf")
    p = next(model.parameters())
    assert p.is_cuda and p.dtype == torch.bfloat16
    assert dict(model.named_buffers())["model.rotary_emb.inv_freq"].dtype == torch.float32
    assert len(generate(model, tok2, ["3+4=", "1*2-3="], max_new_tokens=8)) == 2
