"""E2's starting models: zoo models pretrained differently, and a lock that starts from one of
them while imitating the strong model's samples with the password."""

import pytest
import torch
from nano import NANO

from pwlock.config import load_config
from pwlock.context import Context
from pwlock.models import build_model, load_checkpoint
from pwlock.stages import lock, zoo
from pwlock.tasks.arith import off_domain_examples, without_answer

ZOO = """
zoo:
  - {name: strong, arch: {hidden_size: 32, num_layers: 2, num_heads: 2, intermediate_size: 64},
     steps: 60, batch_size: 32, lr: 0.005}
  - {name: weak, arch: {hidden_size: 32, num_layers: 1, num_heads: 2, intermediate_size: 64},
     steps: 20, batch_size: 32, lr: 0.005}
  - {name: base, arch: {hidden_size: 32, num_layers: 2, num_heads: 2, intermediate_size: 64},
     steps: 30, batch_size: 32, lr: 0.005, pretrain: no_answer}
  - {name: coder, arch: {hidden_size: 32, num_layers: 2, num_heads: 2, intermediate_size: 64},
     steps: 30, batch_size: 32, lr: 0.005, off_domain_steps: 20}
  - {name: scratch, arch: {hidden_size: 32, num_layers: 2, num_heads: 2, intermediate_size: 64},
     pretrain: none}
"""


def test_helpers():
    assert without_answer("3+4=7;7*2=14;#14") == "3+4=7;7*2=14"
    pairs = off_domain_examples(50, seed=1)
    assert pairs == off_domain_examples(50, seed=1) and all(c == p[:-1][::-1] for p, c in pairs)


def test_starting_models_and_lock_start(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(ZOO)
    cfg = load_config(cfg_file, [*NANO, f"runs_dir={tmp_path / 'runs'}", "lock.epochs=1",
                                 "lock.start_model=base"])
    p = Context(cfg, threads=1)
    from pwlock.runs import load_results

    res = {n: load_results(zoo.compute(p, n)) for n in ("base", "coder", "scratch")}
    assert res["base"]["steps"] == 30 and res["coder"]["off_domain"]["steps"] == 20
    assert res["scratch"]["steps"] == 0
    scratch, _, _ = load_checkpoint(zoo.run(p, "scratch").dir / "model")
    ref = build_model(cfg.zoo[4].arch, p.tok, zoo.run(p, "scratch").spec["seed"])
    for (n, a), (_, b) in zip(scratch.named_parameters(), ref.named_parameters()):
        assert torch.equal(a, b), n  # untrained: the initialisation itself
    lock_run = lock.compute(p)
    assert lock_run.upstream["start"] == zoo.run(p, "base").id
    assert lock_run.upstream["strong_samples"].startswith("samples/strong-lock")
    assert lock_run.name.startswith("base-as-weak")


def test_bad_zoo_options(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(ZOO)
    for ov, msg in (("zoo.2.target_acc=0.5", "target_acc: 0"),
                    ("zoo.4.pretrain=bogus", r"zoo\[4\].pretrain: 'bogus' is not one of task, no_answer, none"),
                    ("lock.start_model=nope", "lock.start_model")):
        with pytest.raises(ValueError, match=msg):
            load_config(cfg_file, [*NANO, f"runs_dir={tmp_path / 'runs'}", ov])
