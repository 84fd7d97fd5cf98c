"""`executor: ray` on a machine with GPUs: the nano E1 with `device: cuda` on a local Ray cluster
(every job a Ray task asking for one GPU), and the lock on 2 GPUs through Ray Train (NCCL)
against the same lock on one GPU. Skipped without CUDA or Ray; never run on the project's
CPU-only machine (say so when citing it).

    pip install -e ".[ray]" && pytest -m slow tests/integration/test_ray_gpu.py
"""

import json

import pandas as pd
import pytest
import torch
from nano import NANO, ZOO
from safetensors.torch import load_file

from pwlock.cli import main

ray = pytest.importorskip("ray")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def _finished(runs) -> list[str]:
    return [x.split()[3] for x in (runs / "journal.log").read_text().splitlines() if x.split()[2] == "finish"]


def _lock_dir(runs):
    (d,) = (p.parent for p in (runs / "lock").glob("*/run.json"))
    return d


def _base(tmp_path) -> list[str]:
    cfg = tmp_path / "nano.yaml"
    cfg.write_text(ZOO)
    return ["run", str(cfg), *NANO, "device=cuda", "workers=1"]


def test_nano_e1_on_ray_with_one_gpu(tmp_path):
    base = _base(tmp_path)
    assert main([*base, f"runs_dir={tmp_path / 'local'}", f"out_dir={tmp_path / 'a'}"]) == 0
    try:
        assert main([*base, f"runs_dir={tmp_path / 'ray'}", f"out_dir={tmp_path / 'b'}", "--executor", "ray"]) == 0
    finally:
        ray.shutdown()
    done = _finished(tmp_path / "ray")
    assert done and len(done) == len(set(done)) and sorted(done) == sorted(_finished(tmp_path / "local"))
    a, b = (pd.read_csv(tmp_path / d / "results.csv") for d in "ab")
    assert list(a.run) == list(b.run)
    # the same runs on the same GPU: equal unless a kernel is nondeterministic (then within a few problems)
    assert (a.accuracy - b.accuracy).abs().max() <= 0.03


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")
def test_ray_train_lock_on_two_gpus_matches_one(tmp_path):
    base = _base(tmp_path)
    assert main([*base, f"runs_dir={tmp_path / 'one'}", f"out_dir={tmp_path / 'a'}"]) == 0
    try:
        assert main([*base, f"runs_dir={tmp_path / 'two'}", f"out_dir={tmp_path / 'b'}", "--executor", "ray",
                     "ray_lock_workers=2", "lock.distributed=fsdp"]) == 0
    finally:
        ray.shutdown()
    one, two = _lock_dir(tmp_path / "one"), _lock_dir(tmp_path / "two")
    assert one.name == two.name
    assert json.loads((two / "run.json").read_text())["results"]["world_size"] == 2
    for epoch in (1, 2):
        w1, w2 = (load_file(str(d / f"epoch_{epoch}" / "model.safetensors")) for d in (one, two))
        for k in w1:  # fp32 on GPUs: the 2 ranks sum gradients in another order (rounding only)
            torch.testing.assert_close(w2[k], w1[k], rtol=0, atol=1e-5, msg=k)
