"""An attack and a task from outside the package (`module:Class` in a config), exactly as the
README shows them: its code blocks are written to modules and run on the nano organism."""

import json
import re
from pathlib import Path

import pandas as pd
from nano import NANO, ZOO

from pwlock.cli import main

ROOT = Path(__file__).resolve().parents[2]


def readme_example(name: str) -> str:
    text = (ROOT / "README.md").read_text()
    m = re.search(rf"<!-- example: {re.escape(name)} -->\n```python\n(.*?)```", text, re.S)
    assert m, f"README has no example {name}"
    code = m.group(1)
    assert len(code.splitlines()) <= 40, "the README's examples are meant to be short"
    return code


def test_readme_attack_and_task_run_end_to_end(tmp_path, monkeypatch, capsys):
    for name in ("my_attack.py", "my_task.py"):
        (tmp_path / name).write_text(readme_example(name))
    monkeypatch.syspath_prepend(str(tmp_path))  # spawned workers get the parent's sys.path
    cfg = tmp_path / "ext.yaml"
    cfg.write_text(ZOO + """
kind: attacks
attacks:
  - {name: dropout, kind: "my_attack:WeightDropout", params: {fraction: 0.05}, seeds: 2}
  - {name: wsu, kind: wsu, steps: 10, seeds: 2}
""")
    base = ["run", str(cfg), *NANO, "task.name=my_task:SortDigits", "task.n_operands=4", "task.n_pretrain=600",
            f"runs_dir={tmp_path / 'runs'}", f"out_dir={tmp_path / 'out'}"]
    # a bad option of the outside attack is refused when the config loads, with its own message
    assert main([*base, "attacks.0.params.fraction=2", "--dry-run"]) == 2
    assert "params.fraction must be in (0, 1), got 2" in capsys.readouterr().err
    assert main(base) == 0
    rows = pd.read_csv(tmp_path / "out" / "results.csv")
    drop = rows[rows.attack == "dropout"]
    # rows of models without attack name the evaluated model's run (a zoo model or the lock)
    assert all(r.startswith(("zoo/", "lock/")) for r in rows[rows.attack == "none"].run)
    assert list(drop.seed) == [0, 1] and set(rows.attack) == {"none", "dropout", "wsu"}
    assert all(r.startswith("attack/my_attack.WeightDropout-e2-s") for r in drop.run)
    infos = [json.loads((tmp_path / "runs" / r / "run.json").read_text()) for r in drop.run]
    n = [i["results"]["weights_zeroed"] for i in infos]
    assert n[0] > 0 and n[0] != n[1]  # one draw per seed
    records = (tmp_path / "runs" / drop.run.iloc[0] / "records.jsonl").read_text()
    assert '"problem_id": "sort-' in records  # the task's problems, scored by its scorer
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert "dropout" in summary["attacks"]


def test_unknown_outside_names_are_one_line_errors(capsys):
    for over, msg in (("task.name=nowhere_mod:X", "cannot import 'nowhere_mod'"),
                      ("task.name=pwlock.tasks:Nope", "module 'pwlock.tasks' has no 'Nope'"),
                      ("task.name=pwlock.config:ExperimentConfig", "not a subclass of pwlock.tasks.Task")):
        assert main(["run", str(ROOT / "configs/toy/core.yaml"), over, "--dry-run"]) == 2
        err = capsys.readouterr().err.strip()
        assert msg in err and len(err.splitlines()) == 1, err
