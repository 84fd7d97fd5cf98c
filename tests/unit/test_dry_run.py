"""`pwlock run CONFIG --dry-run`: paths checked with clear errors, the planned runs (with the
same run keys as `pwlock run`, cached ones counted), and the memory estimate."""

import json
import re
from pathlib import Path

import pytest
import torch

from pwlock.cli import main
from pwlock.config import ZooModelConfig, load_config, spec_dict
from pwlock.plan import ModelShape, memory_estimate, plan_runs

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "configs/toy/core.yaml"
CORE_V1 = ROOT / "configs/toy/core_v1.yaml"  # the recipe whose ids were recorded (fast numerics, weak2)
MATH = ROOT / "tests/fixtures/math"


def plan_rows(out: str) -> dict[str, list[str]]:
    """stage -> [runs, cached, to run] from the 'planned runs' table."""
    block = out.split("planned runs")[1].split("memory,")[0]
    return {line.split()[0]: line.split()[1:4] for line in block.splitlines()[2:] if line.strip()}


def test_toy_run_keys_are_unchanged():
    """The run ids of the toy recipe of the time (configs/toy/core_v1.yaml, then core.yaml), recorded
    before the path-model options existed (tests/fixtures/toy_core_run_ids.json): cached toy runs stay valid."""
    ids = sorted(i for s in plan_runs(load_config(CORE_V1), threads=1) for i in s.ids)
    assert ids == json.loads((ROOT / "tests/fixtures/toy_core_run_ids.json").read_text())
    assert list(spec_dict(ZooModelConfig())) == ["name", "arch", "steps", "batch_size", "lr", "target_acc",
                                                 "check_every", "seed"]


def test_toy_dry_run_counts_cached_runs(capsys, tmp_path):
    from pwlock.context import Context
    from pwlock.stages import zoo

    over = [f"runs_dir={tmp_path}", "lock.epochs=2", "wsu.seeds=3"]
    assert main(["run", str(CORE), "--dry-run", *over]) == 0
    out = capsys.readouterr().out
    assert "epochs: 2" in out  # the resolved config first
    assert "zoo model 'strong': toy model" in out
    rows = plan_rows(out)
    assert rows["zoo"] == ["4", "0", "4"] and rows["lock"] == ["1", "0", "1"]
    assert rows["samples"] == ["3", "0", "3"] and rows["eval"] == ["8", "0", "8"] and rows["wsu"] == ["6", "0", "6"]
    assert rows["total"] == ["22", "0", "22"]
    # finish one zoo run: the plan counts it as cached
    zoo.run(Context(load_config(CORE, over), threads=1), "weak1").compute(lambda d: {})
    assert main(["run", str(CORE), "--dry-run", *over]) == 0
    out = capsys.readouterr().out
    rows = plan_rows(out)
    assert rows["zoo"] == ["4", "1", "3"] and rows["total"] == ["22", "1", "21"]
    assert "memory, full fine-tuning of the strong model 'strong'" in out


def math_args(tmp_path, model: str, data: str = str(MATH)) -> list[str]:
    cfg = tmp_path / "m.yaml"
    cfg.write_text(f"""
task: {{name: math, data_dir: {data}, n_test: 4, n_elicit: 3, n_lock: 4}}
zoo:
  - {{name: strong, path: {model}}}
  - {{name: weak, path: {model}}}
strong_model: strong
lock: {{weak_model: weak, epochs: 2, optimizer: lion, lr: 1.5e-6, batch_size: 4}}
wsu: {{seeds: 2, max_stack: 1}}
device: auto
""")
    return ["run", str(cfg), "--dry-run", f"runs_dir={tmp_path / 'runs'}"]


@pytest.fixture()
def hf_dir(tmp_path, tok):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, pad_token_id=tok.pad_token_id,
                      eos_token_id=tok.eos_token_id, bos_token_id=None)
    d = tmp_path / "model"
    LlamaForCausalLM(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    return d


def test_missing_model_path_is_named_with_the_layout(capsys, tmp_path):
    code = main(math_args(tmp_path, str(tmp_path / "no-model")))
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "zoo model 'strong' (zoo.0.path)" in err and str(tmp_path / "no-model") in err
    assert "Hugging Face model directory (config.json, *.safetensors" in err


def test_missing_gguf_file_and_weights(capsys, tmp_path, hf_dir):
    assert main(math_args(tmp_path, str(tmp_path / "m.gguf"))) == 2
    assert f"GGUF file not found: {tmp_path / 'm.gguf'}" in capsys.readouterr().err
    for f in hf_dir.glob("*.safetensors"):
        f.unlink()
    assert main(math_args(tmp_path, str(hf_dir))) == 2
    assert "no *.safetensors weights" in capsys.readouterr().err


def test_missing_data_dir_is_named_with_the_layout(capsys, tmp_path, hf_dir):
    code = main(math_args(tmp_path, str(hf_dir), data=str(tmp_path / "no-data")))
    err = capsys.readouterr().err
    assert code == 2 and f"data directory not found: {tmp_path / 'no-data'}" in err and "<dir>/train/<subject>" in err


def test_math_dry_run_with_path_models(capsys, tmp_path, hf_dir):
    assert main(math_args(tmp_path, str(hf_dir))) == 0
    out = capsys.readouterr().out
    assert f"zoo model 'strong': {hf_dir} (Hugging Face directory) ok" in out
    assert f"task.data_dir: {MATH} ok" in out and "test 4, elicit 3, lock 4" in out
    rows = plan_rows(out)
    assert rows["zoo"] == ["2", "0", "2"] and rows["eval"] == ["6", "0", "6"] and rows["wsu"] == ["4", "0", "4"]
    assert "0 trained here, 2 from a path" in out and "1 seed(s) trained together" in out
    assert "lock (lion, batch 4)" in out and "wsu (adamw, 1 stacked x batch 2)" in out


def test_memory_estimate_of_a_7b_model():
    """DeepSeek-Math 7B (docs/real-models.md): 6.91 B parameters; bf16 + fp32 masters + Lion."""
    shape = ModelShape(n_params=6_910_000_000, hidden=4096, layers=30, intermediate=11008, vocab=102400)
    bf16 = memory_estimate(shape, "bf16", "lion", batch=1, seq_len=1024, gradient_checkpointing=True)
    assert bf16["weights"] == pytest.approx(13.82) and bf16["gradients"] == pytest.approx(13.82)
    assert bf16["master weights"] == pytest.approx(27.64) and bf16["optimizer state"] == pytest.approx(27.64)
    # activations with checkpointing: ~0.25 GB of block inputs + one block + ~1.5 GB of logits
    assert 1.5 < bf16["activations (rough)"] < 2.5
    fp32 = memory_estimate(shape, "fp32", "adamw", batch=1, seq_len=1024, gradient_checkpointing=False)
    assert fp32["master weights"] == 0 and fp32["optimizer state"] == pytest.approx(55.28)
    assert fp32["activations (rough)"] > 5 * bf16["activations (rough)"]  # no recomputation, fp32
    two = memory_estimate(shape, "bf16", "lion", batch=1, seq_len=1024, gradient_checkpointing=True, copies=2)
    assert two["total"] == pytest.approx(2 * bf16["total"])
    with pytest.raises(ValueError, match="unknown optimizer"):
        memory_estimate(shape, "bf16", "sgd", 1, 1, True)


def test_meta_parameter_count_matches_the_real_model(hf_dir):
    from pwlock import hf

    n = hf.count_params(hf.model_config(hf_dir))
    model, _ = hf.load_pretrained(hf_dir, device="cpu")
    assert n == sum(p.numel() for p in model.parameters())
    assert all(p.device.type == "cpu" for p in model.parameters()) and torch.get_default_device().type == "cpu"


@pytest.mark.parametrize("name", ["core", "mc", "micro-smollm2"])
def test_shipped_real_configs_fail_clearly_on_placeholder_paths(capsys, name):
    code = main(["run", str(ROOT / f"configs/math/{name}.yaml"), "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2 and "zoo model" in err and ("does not exist" in err or "GGUF file not found" in err), err
    assert "expected a Hugging Face model directory" in err


@pytest.mark.parametrize("name, data, sizes", [
    ("core", MATH, ["task.n_elicit=4", "task.n_lock=8", "task.n_test=5"]),
    ("mc", ROOT / "tests/fixtures/mc/mmlu", ["task.n_elicit=4", "task.n_lock=6"]),
    ("mc_soft_labels", ROOT / "tests/fixtures/mc/mmlu", ["task.n_elicit=4", "task.n_lock=6"]),
])
def test_shipped_real_configs_validate_with_local_paths(capsys, tmp_path, hf_dir, name, data, sizes):
    over = [f"zoo.0.path={hf_dir}", f"zoo.1.path={hf_dir}", f"task.data_dir={data}", f"runs_dir={tmp_path}", *sizes]
    assert main(["run", str(ROOT / f"configs/math/{name}.yaml"), "--dry-run", *over]) == 0
    out = capsys.readouterr().out
    rows = plan_rows(out)
    epochs = 8 if name == "core" else 4
    if name == "mc_soft_labels":  # one lock per variant, each with its attacks (WSU, 5 seeds, last epoch)
        locks = re.findall(r"^\s*(.+?): lock\s+(\d+)\s+(\d+)\s+(\d+)", out, re.MULTILINE)
        assert locks == [(v, "1", "0", "1") for v in ("samples", "argmax", "soft (KL)")]
    else:
        assert rows["lock"] == ["1", "0", "1"] and rows["wsu"] == [str(5 * epochs), "0", str(5 * epochs)]
        assert "1 seed(s) trained together" in out
    assert "gradient checkpointing on" in out
    assert "wsu (lion, 1 stacked x batch 2)" in out  # the WSU job of the memory estimate (max_stack: 1)


def test_core_config_with_the_smollm2_gguf(capsys, tmp_path):
    from pwlock.hf import smollm2_gguf_path

    try:
        gguf = smollm2_gguf_path()
    except FileNotFoundError as e:
        pytest.skip(str(e))
    over = [f"zoo.0.path={gguf}", f"zoo.1.path={gguf}", f"task.data_dir={MATH}", f"runs_dir={tmp_path}",
            "task.n_elicit=4", "task.n_lock=8"]
    assert main(["run", str(ROOT / "configs/math/core.yaml"), "--dry-run", *over]) == 0
    out = capsys.readouterr().out
    assert "(GGUF file) ok" in out and "0.13 B parameters (hidden 576, 30 layers, vocabulary 49152)" in out
