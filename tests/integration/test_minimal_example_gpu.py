"""configs/math/minimal-example.yaml end to end on a GPU with small random Llamas (bf16 on CUDA,
`dtype: auto`), with fp32 master weights and with the 16-bit weights stepped directly
(`master_weights: direct`, the inferred precision of the notebook's copies). Slow; skipped
without CUDA. For a machine with a GPU: `pytest -m slow tests/integration/test_minimal_example_gpu.py`."""

import json
import string
from pathlib import Path

import pytest
import torch
from tiny_llama import TEMPLATE, tiny

from pwlock.cli import main
from pwlock.tokenizer import char_tokenizer

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("gpu_models")
    tok = char_tokenizer(string.printable)
    tok.chat_template = TEMPLATE
    for name, seed, layers in (("strong", 0, 4), ("weak", 1, 2)):
        tiny(tok, seed, layers=layers).save_pretrained(d / name)
        tok.save_pretrained(d / name)
    return d / "strong", d / "weak"


@pytest.mark.parametrize("precision", ["masters", "direct"])
def test_minimal_example_on_gpu(tmp_path, models, precision):
    strong, weak = models
    direct = ["lock.master_weights=direct", "wsu.master_weights=direct", "wsu.max_stack=1"]
    over = direct if precision == "direct" else []
    argv = ["run", str(ROOT / "configs/math/minimal-example.yaml"), f"zoo.0.path={strong}", f"zoo.1.path={weak}",
            f"task.data_dir={ROOT / 'tests/fixtures/math'}", "task.n_test=4", "task.n_elicit=3", "task.n_lock=4",
            "lock.epochs=2", "lock.batch_size=4", "wsu.steps=5", "eval.batch_size=8", "device=cuda",
            f"runs_dir={tmp_path / 'runs'}", f"out_dir={tmp_path / 'out'}", *over]
    assert main(argv) == 0
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert set(s) >= {"1", "2"}
    lock = next((tmp_path / "runs" / "lock").glob("*/run.json"))
    info = json.loads(lock.read_text())
    assert info["spec"]["lock"]["loss"] == "full"
    from safetensors import safe_open

    with safe_open(str(lock.parent / "epoch_2" / "model.safetensors"), "pt") as f:
        assert f.get_tensor(next(iter(f.keys()))).dtype == torch.bfloat16  # dtype auto: bf16 on CUDA
