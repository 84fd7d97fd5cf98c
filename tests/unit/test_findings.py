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


def _core_summary(last_epoch_gaps: dict[int, tuple[float, float, float]]) -> dict:
    return {str(e): {"acc_locked_nopwd": 0.4, "acc_locked_pwd": 0.9, "acc_weak": 0.4, "acc_strong": 0.95,
                     "acc_unlocked_mean": 0.45, "gap_recovered_mean": m, "gap_recovered_ci95": [lo, hi]}
            for e, (m, lo, hi) in last_epoch_gaps.items()}


def test_e1_verdict_over_organisms_counts_each_organism_once(tmp_path):
    """results/e01_organisms and results/e01_organisms-seed<k> (one organism each): the E1 row leads
    with the mean over organisms of the
    gap recovered at each one's last lock epoch and a t-interval over organisms; each organism's own
    verdict follows."""
    res = tmp_path / "results"

    def write(name, summary):
        (res / name).mkdir(parents=True, exist_ok=True)
        (res / name / "summary.json").write_text(json.dumps(summary))

    def e1():
        text = write_findings(res, tmp_path / "findings.md")
        return next(x for x in text.splitlines() if x.startswith("| E1 ")), text.split("## E1")[1].split("## ")[0]

    # epoch 1 is ignored (not the last); epoch 2 gaps: 0.10, 0.20 (each CI above 0)
    write("e01_organisms", _core_summary({1: (-0.5, -0.6, -0.4), 2: (0.10, 0.02, 0.18)}))
    write("e01_organisms-seed1", _core_summary({1: (-0.5, -0.6, -0.4), 2: (0.20, 0.10, 0.30)}))
    row, _ = e1()
    assert "organisms" not in row  # two organisms: too few for an interval over organisms
    write("e01_organisms-seed2", _core_summary({1: (0.9, 0.8, 1.0), 2: (0.15, -0.05, 0.35)}))
    row, section = e1()
    # mean 0.15, sd 0.05, t(0.975, 2) = 4.303: 0.15 +- 0.1242
    assert "| over 3 organisms: reproduced; per organism: mixed: seed 0: reproduced; seed 1: reproduced; " \
           "seed 2: inconclusive |" in row
    assert "**mean over 3 organisms** (last lock epoch; 95% t-interval over organisms, each organism one value): " \
           "gap recovered +15.0% (+2.6% to +27.4%)" in section
    # organisms that disagree: each CI excludes zero, the interval over organisms does not
    write("e01_organisms-seed2", _core_summary({2: (-0.25, -0.35, -0.15)}))
    row, _ = e1()
    assert row.startswith("| E1 | core result | over 3 organisms: inconclusive; per organism: mixed:")


def test_model_size_lists_the_sizes_that_unlock(tmp_path):
    d = tmp_path / "results" / "model_size"
    d.mkdir(parents=True)

    def variant(acc_strong, mean, lo, hi):
        return {"acc_weak": 0.4, "acc_strong": acc_strong,
                "locked": {"8": {"acc_locked_nopwd": 0.45, "acc_locked_pwd": 0.9}},
                "attacks": {"wsu": _attack("wsu", mean, lo, hi)}}

    (d / "summary.json").write_text(json.dumps({"variants": {
        "0.17 M": variant(0.81, -0.02, -0.1, 0.06), "0.66 M (E1)": variant(0.97, 0.07, -0.01, 0.15),
        "2.2 M": variant(0.98, 0.2, 0.1, 0.3)}}))
    text = write_findings(tmp_path / "results", tmp_path / "findings.md")
    assert "| X2 | model size (exploration) | exploration: CI above 0 for 2.2 M |" in text
    assert "0.17 M (strong model 0.810; lock: no pwd 0.450, pwd 0.900): WSU -2.0%" in text


def test_each_section_says_what_made_its_results(tmp_path):
    """results/<name>/config.yaml (written by `pwlock run`) gives the recipe, numerics and organisms;
    a directory without one was made with the old recipe, and says so."""
    from pwlock.cli import write_config
    from pwlock.config import load_config

    res = tmp_path / "results"
    cfg = load_config("configs/toy/e01_organisms.yaml", [f"out_dir={res / 'e01_organisms'}"])
    (res / "e01_organisms").mkdir(parents=True)
    (res / "e01_organisms" / "summary.json").write_text(json.dumps(_core_summary({2: (0.1, 0.0, 0.2)})))
    write_config(cfg)
    (res / "e01_organisms" / "summary_by_organism.json").write_text("{}")  # a directory over organisms
    (res / "noise").mkdir()
    (res / "noise" / "summary.json").write_text(json.dumps({"attacks": {"wsu": _attack("wsu", 0.1, 0.0, 0.2)}}))
    text = write_findings(res, tmp_path / "findings.md")
    assert "- E1: the lock imitates weak3; portable numerics; 5 organisms (0, 1, 2, 3, 4)" in text
    assert "- E3: the old recipe (configs/toy/core_v1.yaml" in text
    assert "**Made with:** noise: the old recipe" in text.split("## E3")[1]
    e1 = text.split("## E1 —")[1].split("\n## ")[0]
    assert "**Measured:** **seed 0** only" not in e1 and "**Measured:** " in e1  # not "seed 0" for 5 organisms
    assert "**Measured:** **seed 0** only" in text.split("## E3 —")[1].split("\n## ")[0]


def test_results_config_loads_back_and_leaves_out_later_fields_at_their_default(tmp_path):
    """config.yaml loads back as the config it records; a field added since 0.1 at its default (e.g.
    lock.lora_keep) is not in it, so adding one to pwlock does not change what a rerun writes."""
    from pwlock.cli import write_config
    from pwlock.config import load_config

    cfg = load_config("configs/toy/e03_noise.yaml", [f"out_dir={tmp_path / 'noise'}"])
    (tmp_path / "noise").mkdir()
    write_config(cfg)
    text = (tmp_path / "noise" / "config.yaml").read_text()
    assert "lora_keep" not in text and "ray_lock_workers" not in text and "numerics: portable" in text
    assert load_config(tmp_path / "noise" / "config.yaml") == cfg


def test_pretrained_lm_e1_needs_a_separated_lock(tmp_path):
    d = tmp_path / "results" / "smollm2_e1"
    d.mkdir(parents=True)

    def summary(nopwd, pwd, separated, lo, hi):
        wsu = {**_attack("wsu", (lo + hi) / 2, lo, hi), "epoch": 3, "lock_separated": separated,
               "acc_unlocked_ci95": [0.4, 0.6]}
        return {"acc_weak": 0.58, "acc_strong": 0.94, "locked": {"3": {"acc_locked_nopwd": nopwd,
                "acc_locked_pwd": pwd}}, "attacks": {"wsu": wsu}}

    def row():
        text = write_findings(tmp_path / "results", tmp_path / "findings.md")
        return next(line for line in text.splitlines() if line.startswith("| X3"))

    (d / "summary.json").write_text(json.dumps(summary(0.75, 0.74, False, 0.5, 2.0)))
    assert "inconclusive: the lock did not separate (password gap -0.010 < 0.1)" in row()
    (d / "summary.json").write_text(json.dumps(summary(0.6, 0.9, True, 0.05, 0.3)))
    assert row().endswith("| reproduced |")
    (d / "summary.json").write_text(json.dumps(summary(0.6, 0.9, True, -0.3, -0.05)))
    assert row().endswith("| not reproduced |")


def test_pretrained_lm_with_two_wsu_settings_names_those_that_unlock(tmp_path):
    d = tmp_path / "results" / "smollm2_e1_lock8"
    d.mkdir(parents=True)
    wsu = {n: {**_attack("wsu", m, lo, hi), "epoch": 8, "lock_separated": True, "acc_unlocked_ci95": [0.6, 0.7]}
           for n, m, lo, hi in [("wsu adamw", 0.2, 0.1, 0.3), ("wsu lion", 0.0, -0.1, 0.1)]}
    (d / "summary.json").write_text(json.dumps({"acc_weak": 0.58, "acc_strong": 0.94, "locked": {
        "8": {"acc_locked_nopwd": 0.6, "acc_locked_pwd": 0.9}}, "attacks": wsu}))
    text = write_findings(tmp_path / "results", tmp_path / "findings.md")
    assert next(x for x in text.splitlines() if x.startswith("| X4")).endswith("| reproduced with wsu adamw |")


def test_report_readme_refreshes_both_blocks_from_results_only(tmp_path, capsys):
    """`pwlock report --readme`: E1's block and the audit card from results/*/summary.json, no run; a
    missing summary is named before the README is touched."""
    import shutil
    from pathlib import Path

    from pwlock.cli import main

    repo = Path(__file__).resolve().parents[2]
    results = tmp_path / "results"
    for name in ("core", "audit"):
        (results / name).mkdir(parents=True)
        shutil.copy(repo / "results" / name / "summary.json", results / name / "summary.json")
    readme = tmp_path / "README.md"
    old = ("intro\n<!-- core-results:start -->\nold E1\n<!-- core-results:end -->\nmiddle\n"
           "<!-- audit-card:start -->\nold card\n<!-- audit-card:end -->\nend\n")
    readme.write_text(old)
    assert main(["report", "--readme", str(readme), "--results", str(results)]) == 0
    text = readme.read_text()
    assert "old E1" not in text and "old card" not in text and text.startswith("intro\n") and text.endswith("end\n")
    assert f"]({results.as_posix()}/core/core.png)" in text and "| budget | attack |" in text
    assert not (tmp_path / "docs").exists()  # without --all, findings are not written
    # the same blocks as the committed README's (they come from the same summaries)
    committed = (repo / "README.md").read_text()
    card = text.split("<!-- audit-card:start -->")[1].split("<!-- audit-card:end -->")[0]
    assert card.replace(results.as_posix(), "results") in committed
    (results / "audit" / "summary.json").unlink()
    readme.write_text(old)
    assert main(["report", "--readme", str(readme), "--results", str(results)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "audit/summary.json not found" in err, err
    assert readme.read_text() == old
