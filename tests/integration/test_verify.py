"""`pwlock run CONFIG --verify`: the experiment recomputed from nothing elsewhere gives the same
per-problem answers as the committed results; a changed answer is found and named."""

import json

import pytest
from nano import NANO, ZOO

from pwlock.cli import main
from pwlock.verify import compare


def test_compare_names_the_rows_that_differ():
    row = {"variant": None, "model": "locked", "lock_epoch": 2, "attack": "wsu", "seed": 1, "password": False,
           "accuracy": 0.5, "correct": "0101"}
    assert compare([row], [dict(row)]) == []
    lines = compare([row], [{**row, "correct": "0111", "accuracy": 0.75}])
    assert lines == ["model=locked, lock_epoch=2, attack=wsu, seed=1, password=False: 1 of 4 answers differ "
                     "(accuracy 0.500 committed, 0.750 recomputed)"]
    assert compare([row], [])[0].endswith("only in the committed results")


@pytest.mark.slow  # two nano E1 runs, ~1.5 min
def test_verify_recomputes_and_compares(tmp_path, capsys):
    cfg = tmp_path / "nano.yaml"
    cfg.write_text(ZOO)
    args = ["run", str(cfg), *NANO, "lock.epochs=1", "wsu.seeds=1", f"runs_dir={tmp_path / 'runs'}",
            f"out_dir={tmp_path / 'out'}"]
    assert main(args) == 0
    capsys.readouterr()
    journal = (tmp_path / "runs" / "journal.log").read_text()
    assert main([*args, "--verify", f"--verify-dir={tmp_path / 'again'}"]) == 0
    assert "verified: every answer" in capsys.readouterr().out
    assert (tmp_path / "runs" / "journal.log").read_text() == journal  # the cache was not used...
    assert journal.count(" start ") == (tmp_path / "again" / "runs" / "journal.log").read_text().count(" start ")
    f = tmp_path / "out" / "per_problem.jsonl"
    rows = [json.loads(x) for x in f.read_text().splitlines()]
    c = rows[-1]["correct"]
    rows[-1]["correct"] = ("1" if c[0] == "0" else "0") + c[1:]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main([*args, "--verify"]) == 3
    out = capsys.readouterr().out
    assert "1 row(s) of" in out and "attack=wsu, seed=0, password=False: 1 of 100 answers differ" in out
