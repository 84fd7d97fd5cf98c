"""A locking run sharded across 2 CPU processes (torchrun, gloo, FSDP2) equals the single-process
run: same per-step losses, same final weights."""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from pwlock.config import ArchConfig, TaskConfig
from pwlock.models import build_model, save_checkpoint
from pwlock.tasks import get_task

CONFIG = """
task: {n_operands: 3, n_test: 10, n_elicit: 10, n_lock: 24, n_pretrain: 100}
password: {position: start}
lock: {epochs: 2, batch_size: 12, lr: 0.001, warmup: 2, optimizer: adamw}
"""


def _write_inputs(tmp_path, tok):
    cfg = tmp_path / "lock.yaml"
    cfg.write_text(CONFIG)
    task = get_task(TaskConfig(n_operands=3, n_test=10, n_elicit=10, n_lock=24, n_pretrain=100))
    strong, weak = [], []
    for p in task.splits()["lock"]:
        strong.append({"problem_id": p.id, "completion": p.solution})
        # a "weak" answer: the first step only, of varied length, so ranks hold different token counts
        weak.append({"problem_id": p.id, "completion": p.solution.split(";")[0] + f";#{len(p.id) % 7}"})
    for name, rows in (("strong", strong), ("weak", weak)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    arch = ArchConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, max_positions=64)
    save_checkpoint(build_model(arch, tok, seed=0), tok, tmp_path / "start")
    return cfg


def _lock(tmp_path, cfg, out, launcher, strategy="fsdp"):
    args = [str(cfg), "--model", str(tmp_path / "start"), "--strong-samples", str(tmp_path / "strong.jsonl"),
            "--weak-samples", str(tmp_path / "weak.jsonl"), "--out", str(out), "--prompt-format", "raw",
            "--device", "cpu", "--strategy", strategy, "--no-progress", "seed=3"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, *launcher, "-m", "pwlock.distributed", *args], env=env,
                         capture_output=True, text=True, timeout=240, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads((out / "losses.json").read_text())


TORCHRUN = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]


@pytest.fixture(scope="module")
def single(tmp_path_factory, tok):
    d = tmp_path_factory.mktemp("lock")
    cfg = _write_inputs(d, tok)
    return d, cfg, _lock(d, cfg, d / "single", [])


@pytest.mark.parametrize("strategy", ["fsdp", "ddp"])
def test_two_processes_match_one(single, strategy):
    d, cfg, losses = single
    out = d / f"sharded-{strategy}"
    sharded = _lock(d, cfg, out, TORCHRUN, strategy)
    assert len(losses) == len(sharded) == 8  # 48 examples / 12 per batch x 2 epochs
    assert losses[-1] < losses[0]
    for a, b in zip(losses, sharded):
        assert b == pytest.approx(a, rel=1e-4)
    for epoch in (1, 2):
        w1 = load_file(str(d / "single" / f"epoch_{epoch}" / "model.safetensors"))
        w2 = load_file(str(out / f"epoch_{epoch}" / "model.safetensors"))
        assert w1.keys() == w2.keys()
        for k in w1:
            torch.testing.assert_close(w2[k], w1[k], rtol=1e-4, atol=1e-5, msg=k)
    info = json.loads((out / "lock.json").read_text())
    assert info["world_size"] == 2 and info["strategy"] == strategy


def test_missing_samples_is_a_one_line_error(tmp_path, capsys):
    from pwlock.distributed import main

    cfg = tmp_path / "lock.yaml"
    cfg.write_text(CONFIG)
    rc = main([str(cfg), "--model", str(tmp_path / "m"), "--strong-samples", str(tmp_path / "s.jsonl"),
               "--weak-samples", str(tmp_path / "w.jsonl"), "--out", str(tmp_path / "out"), "--device", "cpu"])
    assert rc == 2
    assert "samples file not found" in capsys.readouterr().err
