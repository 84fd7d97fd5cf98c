"""Organisms as an axis: organism k of an experiment is its `seed=k` run (the same cached runs),
rows carry their organism, summaries are over organisms with a t-interval."""

import json
import math

import pandas as pd
import pytest
from nano import NANO, ZOO

from pwlock.cli import main
from pwlock.config import ConfigError, load_config
from pwlock.report import over_organisms


def _journal_starts(runs):
    return [line for line in (runs / "journal.log").read_text().splitlines() if " start " in line]


def test_organisms_are_seed_runs_and_summaries_are_over_organisms(tmp_path):
    cfg = tmp_path / "nano.yaml"
    cfg.write_text(ZOO)
    runs = tmp_path / "runs"
    common = ["run", str(cfg), *NANO, f"runs_dir={runs}"]
    assert main([*common, "organisms=[0, 1]", f"out_dir={tmp_path / 'both'}"]) == 0
    df = pd.read_csv(tmp_path / "both" / "results.csv")
    assert list(df.columns[:1]) == ["organism"] and sorted(df.organism.unique()) == [0, 1]
    n_started = len(_journal_starts(runs))

    # organism 1 alone is `seed=1`: every run is reused, the rows are the same
    assert main([*common, "seed=1", f"out_dir={tmp_path / 'one'}"]) == 0
    assert len(_journal_starts(runs)) == n_started
    one = pd.read_csv(tmp_path / "one" / "results.csv")
    assert (one.organism == 1).all()
    pd.testing.assert_frame_equal(one.reset_index(drop=True),
                                  df[df.organism == 1].reset_index(drop=True), check_dtype=False)

    by = json.loads((tmp_path / "both" / "summary_by_organism.json").read_text())
    s = json.loads((tmp_path / "both" / "summary.json").read_text())
    assert sorted(by) == ["0", "1"]
    last = s["2"]
    per = [by[k]["2"]["gap_recovered_mean"] for k in ("0", "1")]
    assert last["n_organisms"] == 2 and last["gap_recovered_organisms"] == pytest.approx(per)
    assert last["gap_recovered_mean"] == pytest.approx(sum(per) / 2)
    assert last["acc_weak"] == pytest.approx((by["0"]["2"]["acc_weak"] + by["1"]["2"]["acc_weak"]) / 2)
    report = (tmp_path / "both" / "report.md").read_text()
    assert "t-interval over 2 organisms" in report and "| organism 1 |" in report


def test_over_organisms_t_interval():
    entries = [{"gap_recovered_mean": g, "gap_recovered_ci95": [g - 0.1, g + 0.1], "n_seeds": 5,
                "acc_seeds": [g], "p_gap_le_0": 0.5} for g in (0.1, 0.2, 0.3)]
    o = over_organisms(entries)
    half = 4.302652729911275 * 0.1 / math.sqrt(3)  # t(0.975, 2 df) x sd / sqrt(n)
    assert o["gap_recovered_mean"] == pytest.approx(0.2)
    assert o["gap_recovered_ci95"] == pytest.approx([0.2 - half, 0.2 + half])
    assert o["organisms_ci_above_zero"] == 2 and o["n_organisms"] == 3 and o["n_seeds"] == 5
    assert o["acc_seeds"] == [0.1, 0.2, 0.3] and "p_gap_le_0" not in o


@pytest.mark.parametrize("overrides, needle", [
    (["organisms=[0, 0]"], "lists an organism twice"),
    (["organisms=[0, 1]", "seed=2"], "give one of them"),
    (["organisms=[-1]"], "organisms"),
])
def test_organisms_bad_input(overrides, needle):
    with pytest.raises(ConfigError, match=needle):
        load_config("configs/toy/core.yaml", overrides)
