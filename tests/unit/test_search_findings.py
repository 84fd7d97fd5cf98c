"""The organism search's findings: configurations ranked by the rule of docs/organism-search.md."""

import json

from pwlock.findings import search_section
from pwlock.report import over_organisms


def _organism(gap, lo, nopwd, weak=0.4, pwd=0.95, strong=0.96):
    return {"acc_weak": weak, "acc_strong": strong,
            "locked": {"8": {"acc_locked_nopwd": nopwd, "acc_locked_pwd": pwd, "acc_upper": pwd}},
            "attacks": {"wsu": {"kind": "wsu", "epoch": 8, "gap_recovered_mean": gap,
                                "gap_recovered_ci95": [lo, gap + 0.1]}}}


def _write(results, name, organisms, seconds=300):
    d = results / name
    d.mkdir(parents=True)
    by = {str(k): o for k, o in enumerate(organisms)}
    (d / "summary_by_organism.json").write_text(json.dumps(by))
    (d / "summary.json").write_text(json.dumps(over_organisms(organisms)))
    (d / "timings.json").write_text(json.dumps({k: {"zoo": seconds, "lock": 100} for k in by}))


def test_eligible_configurations_rank_first_then_by_the_lower_end(tmp_path):
    # x3: faithful, small effect; x5: faithful, larger effect; x6: larger still but unfaithful (no pwd
    # 10 points above the weak model); x8: faithful and large but too slow (E1 > 10 minutes)
    _write(tmp_path, "x3_baseline", [_organism(g, g - 0.05, 0.42) for g in (0.05, 0.08, 0.06)])
    _write(tmp_path, "x5_shallow_lock", [_organism(g, g - 0.05, 0.43) for g in (0.30, 0.32, 0.28)])
    _write(tmp_path, "x6_lion_lock", [_organism(g, g - 0.05, 0.50) for g in (0.50, 0.52, 0.48)])
    _write(tmp_path, "x8_overtrained_strong", [_organism(g, g - 0.05, 0.41) for g in (0.6, 0.6, 0.62)], seconds=900)
    lines = search_section(tmp_path)
    table = [ln for ln in lines if ln.startswith("| ") and "`x" in ln]
    order = [ln.split("`")[1] for ln in table]
    # eligible ones first (by the lower end of the t-interval), then the others, ranked the same way
    assert order == ["x5_shallow_lock", "x3_baseline", "x8_overtrained_strong", "x6_lion_lock"]
    assert table[0].rstrip().endswith("| yes |") and table[2].rstrip().endswith("| no |")
    assert "3 of 3" in table[0] and "0 of 3" in table[3] and "18.5 min" in table[2]


def test_no_search_results_no_section(tmp_path):
    assert search_section(tmp_path) == []


def test_the_rule_applied_once_every_configuration_ran(tmp_path):
    from pwlock.findings import SEARCH

    # every configuration run; none faithful (no pwd 10 points above the weak model); x12 has the highest
    # lower end but x3 (the baseline) the higher mean: step 4 keeps the recipe
    for name, _, _ in SEARCH:
        gaps = {"x3_baseline": (0.30, 0.0, 0.30), "x12_closer_weak": (0.10, 0.11, 0.12)}.get(name, (0.0, -0.2, 0.2))
        _write(tmp_path, name, [_organism(g, g - 0.05, 0.50) for g in gaps])
    text = "\n".join(search_section(tmp_path))
    assert "Not run yet" not in text
    assert "no configuration is eligible" in text and "the first is `x12_closer_weak`" in text
    assert "the recipe stays, no configuration beat it" in text and "Step 5" in text and "not run yet" in text
    # the same with the winner's mean above the baseline's: it replaces the recipe
    for d in tmp_path.iterdir():
        for f in d.iterdir():
            f.unlink()
        d.rmdir()
    for name, _, _ in SEARCH:
        gaps = {"x3_baseline": (0.05, 0.0, 0.05), "x12_closer_weak": (0.10, 0.11, 0.12)}.get(name, (0.0, -0.2, 0.2))
        _write(tmp_path, name, [_organism(g, g - 0.05, 0.50) for g in gaps])
    assert "so it replaces the recipe" in "\n".join(search_section(tmp_path))


def test_timings_of_the_same_runs_are_kept(tmp_path, monkeypatch):
    """timings.json keeps an organism's first measurement of the same runs (a regeneration on
    another machine leaves the committed file unchanged) and takes new runs' times."""
    from types import SimpleNamespace

    from pwlock import report

    measured = {"zoo": 1.0, "runs": "aaa"}
    monkeypatch.setattr(report, "stage_seconds", lambda cfg: dict(measured))
    cfg = SimpleNamespace(organisms=[])

    def timings():
        report.write_summaries(tmp_path, {}, {"0": {}}, cfg)
        return json.loads((tmp_path / "timings.json").read_text())["0"]

    assert timings() == {"zoo": 1.0, "runs": "aaa"}
    measured["zoo"] = 2.0            # the same runs, timed again elsewhere: kept
    assert timings() == {"zoo": 1.0, "runs": "aaa"}
    measured.update(zoo=3.0, runs="bbb")  # other runs: their times
    assert timings() == {"zoo": 3.0, "runs": "bbb"}


def test_each_row_names_the_numerics_it_was_made_in(tmp_path):
    """A configuration re-run in portable numerics says so; one made before results recorded their
    config (the search's first runs) reads as fast."""
    _write(tmp_path, "x3_baseline", [_organism(g, g - 0.05, 0.42) for g in (0.05, 0.08, 0.06)])
    _write(tmp_path, "x5_shallow_lock", [_organism(g, g - 0.05, 0.43) for g in (0.30, 0.32, 0.28)])
    (tmp_path / "x5_shallow_lock" / "config.yaml").write_text("experiment: x5_shallow_lock\nnumerics: portable\n")
    rows = {ln.split("`")[1]: ln for ln in search_section(tmp_path) if ln.startswith("| ") and "`x" in ln}
    assert "| portable |" in rows["x5_shallow_lock"] and "| fast |" in rows["x3_baseline"]


def test_a_ranking_in_mixed_numerics_or_against_the_chosen_default_says_so(tmp_path):
    """Rows made in different numerics make the ranking provisional; a first place other than the
    configuration the default recipe was chosen from is named, not silently taken as the default."""
    from pwlock.findings import DEFAULT_CHOSEN, SEARCH

    def put(name, gaps, numerics="portable"):
        d = tmp_path / name
        if d.exists():
            for f in d.iterdir():
                f.unlink()
            d.rmdir()
        _write(tmp_path, name, [_organism(g, g - 0.05, 0.50) for g in gaps])
        if numerics != "fast":
            (d / "config.yaml").write_text(f"experiment: {name}\nnumerics: {numerics}\n")

    big = (0.10, 0.11, 0.12)
    for name, _, _ in SEARCH:
        gaps = {"x3_baseline": (0.05, 0.0, 0.05), "x8_overtrained_strong": big}.get(name, (0.0, -0.2, 0.2))
        put(name, gaps, "fast" if name == "x10_compose" else "portable")
    text = "\n".join(search_section(tmp_path))
    assert "the first is `x8_overtrained_strong`" in text
    assert "in 2 numerics (fast: `x10_compose`)" in text and "provisional" in text
    assert f"is `{DEFAULT_CHOSEN[0]}`'s" in text and "the rule gives `x8_overtrained_strong`" in text
    # one numerics, and the rule's first is the chosen default: neither sentence
    put("x10_compose", (0.0, -0.2, 0.2))
    put("x8_overtrained_strong", (0.0, -0.2, 0.2))
    put(DEFAULT_CHOSEN[0], big)
    text = "\n".join(search_section(tmp_path))
    assert f"the first is `{DEFAULT_CHOSEN[0]}`" in text
    assert "provisional" not in text and "has not been re-chosen" not in text
