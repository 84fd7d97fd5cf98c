"""docs/findings.md from results/: every seed's directory is read, a verdict follows its rule."""

import json

from pwlock.findings import write_findings


def _attack(kind, mean, lo, hi, **params):
    return {"kind": kind, "epoch": 8, "n_seeds": 5, "acc_mean": 0.5, "gap_recovered_mean": mean,
            "gap_recovered_ci95": [lo, hi], "best_seed_gap_recovered": hi,
            "params": {"n_samples": 2, "token_mask": "none", **params}}


def test_seed1_only_results_are_reported_with_their_verdict(tmp_path):
    d = tmp_path / "results" / "token_mask-seed1"
    d.mkdir(parents=True)
    (d / "summary.json").write_text(json.dumps({"attacks": {
        "wsu": _attack("wsu", 0.3, 0.1, 0.5),
        "masked": _attack("wsu", 0.05, -0.05, 0.15, token_mask="better_without_password")}}))
    text = write_findings(tmp_path / "results", tmp_path / "findings.md")
    row = next(line for line in text.splitlines() if line.startswith("| E11"))
    assert "reproduced (seed 1 only)" in row
    assert "token_mask-seed1/report.md" in text
    assert next(line for line in text.splitlines() if line.startswith("| E7")).endswith("missing) |")
    # the masked CI reaching above WSU's mean: not "reproduced"
    (d / "summary.json").write_text(json.dumps({"attacks": {
        "wsu": _attack("wsu", 0.3, 0.1, 0.5),
        "masked": _attack("wsu", 0.25, 0.1, 0.4, token_mask="better_without_password")}}))
    row = next(x for x in write_findings(tmp_path / "results", tmp_path / "f.md").splitlines() if x.startswith("| E11"))
    assert "inconclusive" in row
