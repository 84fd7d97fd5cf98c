"""Every bad input of docs/errors.md: a clear one-line error naming the problem, exit code != 0,
and nothing already finished lost. One test per row of the table."""

import errno
import json
import os
import shutil
from pathlib import Path

import pytest

from pwlock import runs as runs_mod
from pwlock.cli import main
from pwlock.runs import Run

ROOT = Path(__file__).resolve().parents[2]
CORE = str(ROOT / "configs/toy/core.yaml")
MATH_FIXTURE = ROOT / "tests/fixtures/math"


def run_cli(capsys, *args) -> tuple[int, str]:
    code = main(["run", *map(str, args)])
    err = capsys.readouterr().err.strip()
    return code, err


def test_misspelled_key(capsys):
    code, err = run_cli(capsys, CORE, "wsu.step=10", "--dry-run")
    assert code == 2 and "unknown config key 'wsu.step'" in err and "did you mean 'wsu.steps'" in err
    assert len(err.splitlines()) == 1


def test_unknown_key_in_yaml(capsys, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(Path(CORE).read_text().replace("lock:\n", "lock:\n  epohcs: 3\n", 1))
    code, err = run_cli(capsys, cfg, "--dry-run")
    assert code == 2 and "epohcs" in err and "did you mean 'lock.epochs'" in err


def test_wrong_type(capsys):
    code, err = run_cli(capsys, CORE, "lock.epochs=many", "--dry-run")
    assert code == 2 and "lock.epochs" in err and "int" in err


def test_unreadable_yaml(capsys, tmp_path):
    cfg = tmp_path / "broken.yaml"
    cfg.write_text("lock: {epochs: [1, 2\n")
    code, err = run_cli(capsys, cfg)
    assert code == 2 and "cannot parse YAML" in err and str(cfg) in err


def test_missing_data_dir(capsys, tmp_path):
    code, err = run_cli(capsys, CORE, "task.name=math", f"task.data_dir={tmp_path / 'nowhere'}",
                        f"runs_dir={tmp_path / 'runs'}")
    assert code == 2 and str(tmp_path / "nowhere") in err
    assert not (tmp_path / "runs").exists()  # nothing started


def test_empty_task_split(capsys, tmp_path):
    code, err = run_cli(capsys, CORE, "task.n_elicit=0", f"runs_dir={tmp_path}")
    assert code == 2 and "task split 'elicit' is empty" in err and "task.n_elicit" in err


def test_problem_without_answer(capsys, tmp_path):
    data = tmp_path / "math"
    shutil.copytree(MATH_FIXTURE, data)
    victim = sorted((data / "test").rglob("*.json"))[0]
    row = json.loads(victim.read_text())
    row["solution"] = "The answer is obvious."
    victim.write_text(json.dumps(row))
    code, err = run_cli(capsys, CORE, "task.name=math", f"task.data_dir={data}", f"runs_dir={tmp_path / 'r'}")
    assert code == 2 and "no \\boxed{} answer" in err and victim.stem in err


def test_empty_loss_mask(tok, tiny_model):
    from pwlock.train import EmptyLossMaskError, collate, masked_lm_loss

    ids, att, lm = collate([(tok("3+4=")["input_ids"], [0, 0, 0, 0])], tok.pad_token_id)
    with pytest.raises(EmptyLossMaskError, match="empty loss mask"):
        masked_lm_loss(tiny_model(input_ids=ids, attention_mask=att).logits, ids, lm)


def _finished_run(tmp_path, name="m", text="hello") -> Run:
    run = Run(tmp_path, "eval", name, {"a": 1})

    def fn(d):
        (d / "out.txt").write_text(text)
        return {"value": 1}

    run.compute(fn)
    return run


def test_corrupt_run_output_is_recomputed(tmp_path, monkeypatch):
    run = _finished_run(tmp_path)
    (run.dir / "out.txt").write_text("hellO")  # bit rot, an editor, a half-copied disk
    monkeypatch.setattr(runs_mod, "_VERIFIED", set())  # as a new process would see it
    with pytest.warns(UserWarning, match="out.txt changed since the run finished"):
        assert not run.done
    calls = []
    assert run.compute(lambda d: calls.append(1) or ((d / "out.txt").write_text("hello") and {"value": 1}))
    assert calls == [1] and run.done and (run.dir / "out.txt").read_text() == "hello"


def test_missing_run_output_is_recomputed(tmp_path, monkeypatch):
    run = _finished_run(tmp_path)
    (run.dir / "out.txt").unlink()
    monkeypatch.setattr(runs_mod, "_VERIFIED", set())
    with pytest.warns(UserWarning, match="missing out.txt"):
        assert not run.done


def test_corrupt_checkpoint(tmp_path, tiny_model, tok):
    from pwlock.models import CheckpointError, load_checkpoint, save_checkpoint

    save_checkpoint(tiny_model, tok, tmp_path / "ck")
    w = tmp_path / "ck" / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[len(data) // 2] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=f"corrupt checkpoint at {tmp_path / 'ck'}"):
        load_checkpoint(tmp_path / "ck")


def test_disk_full_during_a_write(capsys, tmp_path, monkeypatch):
    """ENOSPC while a run writes: exit 1, a message naming the file, no partial file, the
    finished run untouched and still valid."""
    done = _finished_run(tmp_path / "runs", "done")
    before = (done.dir / "run.json").read_text()

    def fake_core(cfg):
        def fn(d):
            from pwlock.utils import atomic_write_text

            def full(fd):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

            monkeypatch.setattr(os, "fsync", full)
            atomic_write_text(d / "records.jsonl", "x" * 1000)
            return {}

        Run(tmp_path / "runs", "eval", "new", {"b": 2}).compute(fn)

    monkeypatch.setattr("pwlock.experiments.core.run", fake_core)
    code, err = run_cli(capsys, CORE, f"runs_dir={tmp_path / 'runs'}", f"out_dir={tmp_path / 'out'}")
    assert code == 1 and "No space left on device" in err and "records.jsonl" in err
    new_dirs = list((tmp_path / "runs" / "eval").glob("new-*"))
    assert new_dirs and sorted(f.name for f in new_dirs[0].iterdir()) == ["spec.json"]  # no partial file
    assert not (new_dirs[0] / "run.json").exists()  # not marked finished
    assert (done.dir / "run.json").read_text() == before and done.done


def test_yaml_is_read_with_the_safe_loader(capsys, tmp_path):
    cfg = tmp_path / "evil.yaml"
    cfg.write_text("experiment: !!python/object/apply:os.system ['touch pwned']\n")
    code, err = run_cli(capsys, cfg, "--dry-run")
    assert code == 2 and "cannot parse YAML" in err and not (tmp_path / "pwned").exists()


def test_missing_model_path(tmp_path):
    from pwlock.hf import load_pretrained

    with pytest.raises((FileNotFoundError, ValueError), match=str(tmp_path / "no-model")):
        load_pretrained(tmp_path / "no-model", device="cpu")


def test_missing_model_path_in_a_config(capsys, tmp_path):
    math_core = ROOT / "configs/math/core.yaml"
    for extra in ([], ["--dry-run"]):  # checked before any work, with or without --dry-run
        code, err = run_cli(capsys, math_core, f"zoo.0.path={tmp_path / 'nowhere'}", f"task.data_dir={MATH_FIXTURE}",
                            f"runs_dir={tmp_path / 'runs'}", f"out_dir={tmp_path / 'out'}", *extra)
        assert code == 2 and len(err.splitlines()) == 1, err
        assert f"zoo model 'deepseek-math-7b-rl' (zoo.0.path) path {tmp_path / 'nowhere'} does not exist" in err
        assert "expected a Hugging Face model directory" in err
    assert not (tmp_path / "runs").exists()


def test_path_option_on_a_toy_model(capsys):
    code, err = run_cli(capsys, CORE, "zoo.1.dtype=bf16", "--dry-run")
    assert code == 2 and "zoo model 'weak1': dtype only apply to a model loaded from `path`" in err
