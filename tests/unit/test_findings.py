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


def test_e6_is_judged_on_the_memorized_runs_when_there_are_any(tmp_path):
    d = tmp_path / "results" / "n_samples"
    d.mkdir(parents=True)
    fixed = {"n=2": _attack("wsu", 0.3, 0.1, 0.5, steps=200),
             "n=64": _attack("wsu", 0.25, 0.1, 0.4, n_samples=64, steps=200)}  # fixed steps: inconclusive

    def row(attacks):  # the table row's verdict and the section's measurement
        (d / "summary.json").write_text(json.dumps({"attacks": attacks}))
        text = write_findings(tmp_path / "results", tmp_path / "findings.md")
        section = text.split("## E6")[1].split("## ")[0]
        return next(line for line in text.splitlines() if line.startswith("| E6")) + section

    assert "| not reproduced |" in row(fixed)
    mem = {"n=2 mem": {**_attack("wsu", 0.3, 0.1, 0.5, steps=800, until_loss=0.02), "steps_taken": [40, 60],
                       "memorized": 1.0},
           "n=64 mem": {**_attack("wsu", 0.0, -0.1, 0.1, n_samples=64, steps=800, until_loss=0.02),
                        "steps_taken": [300, 800], "memorized": 0.5}}
    r = row({**fixed, **mem})
    assert "| reproduced |" in r and "trained until the per-token loss is <= 0.02" in r
    assert "n=2 mem: +30.0% (95% CI +10.0% to +50.0%) after 50 steps" in r and "550 steps (50% of runs memorized)" in r


def test_e1_is_pooled_over_the_organisms_that_were_run(tmp_path):
    """results/core and results/core-seed1 with per-problem answers: the E1 row leads with the
    verdict pooled over both organisms (hierarchical bootstrap), then each organism's."""
    import numpy as np

    from pwlock.report import summarize_core, write_results_csv

    rng = np.random.default_rng(0)
    n = 400

    def bits(p, base=None):
        x = rng.random(n) < p
        return "".join("1" if v else "0" for v in (x if base is None else (x | base)))

    for name, gain in (("core", 0.35), ("core-seed1", 0.3)):
        locked = rng.random(n) < 0.3
        rows = [{"experiment": name, "model": m, "lock_epoch": None, "attack": "none", "seed": None, "password": False,
                 "n_test": n, "accuracy": p, "correct": bits(p), "run": f"zoo/{m}"} for m, p in (("strong", .9), ("weak", .3))]
        rows += [{"experiment": name, "model": "locked", "lock_epoch": 1, "attack": "none", "seed": None, "password": pw,
                  "n_test": n, "accuracy": 0.0, "correct": c, "run": "lock"}
                 for pw, c in ((False, "".join("1" if v else "0" for v in locked)), (True, bits(0.9)))]
        rows += [{"experiment": name, "model": "locked", "lock_epoch": 1, "attack": "wsu", "seed": s, "password": False,
                  "n_test": n, "accuracy": 0.0, "correct": bits(gain, locked), "run": f"wsu/{s}"} for s in range(3)]
        for r in rows:
            r["accuracy"] = r["correct"].count("1") / n
        d = tmp_path / "results" / name
        df = write_results_csv(rows, d)
        (d / "summary.json").write_text(json.dumps(summarize_core(df, "weak", "strong")))
    text = write_findings(tmp_path / "results", tmp_path / "findings.md")
    row = next(line for line in text.splitlines() if line.startswith("| E1 "))
    assert "| pooled over 2 organisms: reproduced; per organism: reproduced (all 2 seeds) |" in row
    assert "**pooled over 2 organisms** (last lock epoch" in text.split("## E1")[1]
    # an organism without per-problem answers (results from before the file existed): no pooled verdict
    (tmp_path / "results" / "core-seed1" / "per_problem.jsonl").unlink()
    row = next(x for x in write_findings(tmp_path / "results", tmp_path / "f.md").splitlines() if x.startswith("| E1 "))
    assert "pooled" not in row
