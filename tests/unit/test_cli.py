from pathlib import Path

from pwlock.cli import main

CORE = str(Path(__file__).resolve().parents[2] / "configs/toy/core.yaml")


def test_bad_override_exits_nonzero_with_message(capsys):
    assert main(["run", CORE, "lock.epoch=3"]) == 2
    err = capsys.readouterr().err
    assert "unknown config key 'lock.epoch'" in err and "did you mean 'lock.epochs'" in err


def test_missing_config(capsys, tmp_path):
    assert main(["run", str(tmp_path / "nope.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_dry_run_prints_resolved_config(capsys):
    assert main(["run", CORE, "--dry-run", "lock.epochs=3"]) == 0
    out = capsys.readouterr().out
    assert "epochs: 3" in out and "weak_model: weak3" in out


def test_unknown_zoo_model(capsys, tmp_path):
    out = tmp_path / "o"
    assert main(["run", CORE, "lock.weak_model=nobody", f"runs_dir={tmp_path}",
                 f"out_dir={out}"]) == 2
    assert "lock.weak_model='nobody' is not a zoo model" in capsys.readouterr().err
