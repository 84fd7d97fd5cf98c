"""`pwlock run` on the multiple-choice fixture with two path models whose tokenizers differ:
soft-label locking (the weak model's distribution over the answer letters) and hard labels (its
most likely letter) run through the pipeline; argmax labels on a free-form task are an error."""

import json
from pathlib import Path

import pytest
from tiny_llama import CHARS, space_letter_tokenizer, tiny

from pwlock.cli import main
from pwlock.models import save_checkpoint
from pwlock.tokenizer import char_tokenizer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("mc-models")
    strong_tok = space_letter_tokenizer()
    tiny(strong_tok, 0, layers=1).save_pretrained(d / "strong")
    strong_tok.save_pretrained(d / "strong")
    weak_tok = char_tokenizer(CHARS)
    save_checkpoint(tiny(weak_tok, 1, layers=1), weak_tok, d / "weak", {"source": "test"})
    return d / "strong", d / "weak"


def args(tmp_path, models, task, *over):
    strong, weak = models
    cfg = tmp_path / "mc.yaml"
    cfg.write_text(f"""
experiment: mcmicro
task: {task}
zoo:
  - {{name: strong, path: {strong}}}
  - {{name: weak, path: {weak}}}
strong_model: strong
password: {{password: open sesame, wrong_passwords: [closed door]}}
lock: {{weak_model: weak, epochs: 1, optimizer: lion, lr: 1.0e-4, batch_size: 4, warmup: 0}}
wsu: {{n_samples: 2, steps: 2, lr: 1.0e-4, optimizer: lion, seeds: 1}}
eval: {{batch_size: 8, max_new_tokens: 3}}
""")
    return ["run", str(cfg), f"runs_dir={tmp_path / 'runs'}", f"out_dir={tmp_path / 'out'}", *over]


MC = f"{{name: mc, data_dir: {FIXTURES / 'mc' / 'mmlu'}, n_test: 4, n_elicit: 2, n_lock: 4}}"


def test_soft_and_argmax_labels_on_multiple_choice(tmp_path, models):
    runs = tmp_path / "runs"
    for labels in ("soft", "argmax"):
        assert main(args(tmp_path, models, MC, f"lock.labels={labels}")) == 0
    locks = {json.loads((p / "run.json").read_text())["spec"]["lock"]["labels"]: p
             for p in (runs / "lock").iterdir() if p.is_dir()}
    assert set(locks) == {"soft", "argmax"}
    for d in locks.values():
        letters = json.loads((d / "weak_letters.json").read_text())
        assert len(letters) == 4 and all(len(v) == 4 and abs(sum(v) - 1) < 1e-4 for v in letters.values())
        info = json.loads((d / "run.json").read_text())
        assert "weak_model" in info["upstream"] and info["results"]["steps"] == 2  # 8 examples / 4
    # the same weak model, the same letters: both locks saw the same distributions
    assert (locks["soft"] / "weak_letters.json").read_text() == (locks["argmax"] / "weak_letters.json").read_text()
    assert (tmp_path / "out" / "results.csv").is_file()


def test_argmax_labels_need_multiple_choice(tmp_path, models, capsys):
    math = f"{{name: math, data_dir: {FIXTURES / 'math'}, n_test: 4, n_elicit: 2, n_lock: 4}}"
    assert main(args(tmp_path, models, math, "lock.labels=argmax", "--dry-run")) == 2
    assert "lock.labels=argmax needs a multiple-choice task (mc)" in capsys.readouterr().err
