"""The lock stage sharded across 2 CPU processes (`torchrun ... -m pwlock.cli run`, gloo): the
same cached lock run as one process, with every lock option, its checkpoints equal to 1e-6, and
the experiment goes on from it on rank 0 (WSU and evaluation read that lock run).

The gradients of 2 ranks are summed in another order than one process sums them: float rounding,
which Adam turns into steps of up to ~lr on parameters whose gradient is near 0; hence the
moderate learning rates here (at lr 1e-3 the weights differ by ~4e-6 after 8 steps)."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

CONFIG = """
experiment: dist
workers: 1
threads: 1
task: {n_operands: 3, n_test: 20, n_elicit: 10, n_lock: 24, n_pretrain: 400}
eval: {max_new_tokens: 24, batch_size: 50}
zoo:
  - {name: strong, arch: {hidden_size: 32, num_layers: 2, num_heads: 2, intermediate_size: 64},
     steps: 40, batch_size: 32, lr: 0.005}
  - {name: weak, arch: {hidden_size: 32, num_layers: 1, num_heads: 2, intermediate_size: 64},
     steps: 20, batch_size: 32, lr: 0.005}
password: {position: start}
lock: {weak_model: weak, epochs: 2, batch_size: 12, lr: 0.0005, warmup: 2,
       password_branch: false, second_password: mango, second_temperature: 0.0,
       overfit_every: 3, overfit_samples: 2, overfit_steps: 3, overfit_lr: 3.0e-5}
wsu: {seeds: 1, steps: 2}
"""

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]


def _run(tmp_path, name, launcher, *over):
    cfg = tmp_path / "dist.yaml"
    cfg.write_text(CONFIG)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [*launcher, "-m", "pwlock.cli", "run", str(cfg), f"runs_dir={tmp_path / name}",
           f"out_dir={tmp_path / ('out-' + name)}", *over]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    lock_dirs = list((tmp_path / name / "lock").glob("*/run.json"))
    assert len(lock_dirs) == 1
    return lock_dirs[0].parent, pd.read_csv(tmp_path / f"out-{name}" / "results.csv")


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    d = tmp_path_factory.mktemp("dist")
    return d, _run(d, "single", [sys.executable])


@pytest.mark.parametrize("strategy", ["fsdp", pytest.param("ddp", marks=pytest.mark.slow)])
def test_sharded_lock_stage_matches_one_process(single, strategy):
    d, (lock1, rows1) = single
    lock2, rows2 = _run(d, strategy, TORCHRUN, f"lock.distributed={strategy}")
    _check_same_lock(lock1, rows1, lock2, rows2, strategy)


@pytest.mark.slow
def test_ray_train_lock_matches_one_process(single):
    """`executor: ray` with `ray_lock_workers: 2`: the lock on 2 Ray Train workers (gloo, a local
    Ray cluster on this machine's CPUs) is the same run as one process's, to 1e-6."""
    pytest.importorskip("ray.train")
    d, (lock1, rows1) = single
    lock2, rows2 = _run(d, "ray-train", [sys.executable], "executor=ray", "ray_lock_workers=2",
                        "lock.distributed=fsdp")
    _check_same_lock(lock1, rows1, lock2, rows2, "fsdp")


@pytest.mark.slow
def test_ray_train_lock_in_portable_numerics(tmp_path):
    """The Ray Train workers start with portable numerics' variables: the sharded lock's run.json
    records ATen's baseline kernels (a lock keyed portable is never computed in fast mode)."""
    pytest.importorskip("ray.train")
    lock, _ = _run(tmp_path, "ray-train-portable", [sys.executable], "executor=ray", "ray_lock_workers=2",
                   "numerics=portable")
    info = json.loads((lock / "run.json").read_text())
    assert info["results"]["world_size"] == 2 and info["spec"]["numerics"] == "portable"
    assert info["numerics"]["numerics"] == "portable" and info["numerics"]["cpu_capability"] == "DEFAULT"


def _check_same_lock(lock1, rows1, lock2, rows2, strategy):
    assert lock1.name == lock2.name  # the same run key: how it was sharded is not part of it
    info = json.loads((lock2 / "run.json").read_text())
    assert info["results"]["world_size"] == 2 and info["results"]["distributed"] == strategy
    l1, l2 = (json.loads((x / "losses.json").read_text()) for x in (lock1, lock2))
    assert len(l1) == len(l2) == 8 and l2 == pytest.approx(l1, rel=1e-5)  # 48 examples / 12 x 2 epochs
    for epoch in (1, 2):
        w1 = load_file(str(lock1 / f"epoch_{epoch}" / "model.safetensors"))
        w2 = load_file(str(lock2 / f"epoch_{epoch}" / "model.safetensors"))
        assert w1.keys() == w2.keys()
        for k in w1:
            torch.testing.assert_close(w2[k], w1[k], rtol=0, atol=1e-6, msg=k)
    # rank 0 went on: every row of the experiment, read from the sharded lock run
    assert list(rows2.columns) == list(rows1.columns) and len(rows2) == len(rows1)
    assert all(r.startswith(("wsu/", "zoo/", "lock/")) for r in rows2.run)
    assert set(rows2[rows2.model == "locked"].run) - set(rows2[rows2.attack == "wsu"].run) == {f"lock/{lock2.name}"}


@pytest.mark.slow
def test_lora_lock_sharded_matches_one_process(tmp_path):
    """A LoRA lock (adapters on q_proj and v_proj, kept as well as merged) sharded with FSDP2 on 2
    processes: every rank gathers, rank 0 merges into an unsharded copy and writes the same
    checkpoints as one process, to 1e-6."""
    pytest.importorskip("peft")
    lora = ["lock.lora.r=2", "lock.lora.target_modules=[q_proj, v_proj]", "lock.lora_keep=adapter", "lock.lr=0.005"]
    lock1, rows1 = _run(tmp_path, "single-lora", [sys.executable], *lora)
    lock2, rows2 = _run(tmp_path, "fsdp-lora", TORCHRUN, "lock.distributed=fsdp", *lora)
    _check_same_lock(lock1, rows1, lock2, rows2, "fsdp")
    for epoch in (1, 2):
        a1, a2 = (load_file(str(x / f"epoch_{epoch}" / "adapter" / "adapter_model.safetensors"))
                  for x in (lock1, lock2))
        assert a1.keys() == a2.keys() and a1
        for k in a1:
            torch.testing.assert_close(a2[k], a1[k], rtol=0, atol=1e-6, msg=k)
