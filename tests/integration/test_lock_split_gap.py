"""scripts/lock_split_gap.py on the nano organism: its test-split rows are the accuracies the
experiment itself recorded, and a config whose runs are not computed is a one-line error."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
from nano import NANO, ZOO

from pwlock.cli import main

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts/lock_split_gap.py"


def _script(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)


def test_lock_split_gap_agrees_with_the_experiment(tmp_path, nano_runs):
    cfg = tmp_path / "e1.yaml"
    cfg.write_text(ZOO)
    over = [*NANO, f"runs_dir={nano_runs}"]
    missing = _script(cfg, *over[:-1], f"runs_dir={tmp_path / 'empty'}")
    assert missing.returncode == 2 and "is not computed" in missing.stderr and len(missing.stderr.splitlines()) == 1
    assert main(["run", str(cfg), *over, f"out_dir={tmp_path / 'out'}"]) == 0
    r = _script(cfg, *over, "--n", 100)
    assert r.returncode == 0, r.stderr
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in r.stdout.splitlines()
            if line.startswith("| 0 |")]
    assert [row[1] for row in rows] == ["lock", "test"]
    test = dict(zip(["organism", "split", "strong", "pwd", "d_pwd", "weak", "nopwd", "d_nopwd"], rows[1]))
    df = pd.read_csv(tmp_path / "out" / "results.csv")
    last = df[(df.model == "locked") & (df.lock_epoch == df.lock_epoch.max()) & (df.attack == "none")]
    assert float(test["pwd"]) == round(float(last[last.password].accuracy.iloc[0]), 3)
    assert float(test["nopwd"]) == round(float(last[~last.password].accuracy.iloc[0]), 3)
    for model, col in (("strong", "strong"), ("weak", "weak")):
        assert float(test[col]) == round(float(df[df.model == model].accuracy.iloc[0]), 3)
