"""`kind: attacks` end to end on a nano organism: every attack kind runs, is cached, and the
identity controls (weights x 1.0, no decay) reproduce the locked model exactly."""

import json

import pandas as pd
from nano import NANO, ZOO

from pwlock.cli import main

ATTACKS = """
kind: attacks
attacks:
  - {name: wsu, kind: wsu, steps: 10, seeds: 2}
  - {name: demos, kind: demos, n_samples: 4, steps: 10, lr: 1.0e-3, seeds: 2}
  - {name: varied, kind: varied, pool: 10, steps: 10, seeds: 2}
  - {name: noise, kind: noise, scale: 0.1, seeds: 2}
  - {name: identity, kind: scale, scale: 1.0}
  - {name: no decay, kind: decay, weight_decay: 0.0}
  - {name: halved, kind: scale, scale: 0.5, epoch: 1}
  - {name: memorized, kind: wsu, n_samples: 2, steps: 400, lr: 3.0e-3, seeds: 2, until_loss: 0.3}
"""


def test_attacks_experiment(tmp_path, nano_runs):
    cfg = tmp_path / "attacks.yaml"
    cfg.write_text(ZOO + ATTACKS)
    args = ["run", str(cfg), *[a for a in NANO if not a.startswith("experiment=")], "experiment=att",
            f"runs_dir={nano_runs}", f"out_dir={tmp_path / 'out'}"]
    assert main(args) == 0
    out = tmp_path / "out"
    for f in ("results.csv", "summary.json", "att.png", "report.md"):
        assert (out / f).is_file(), f
    s = json.loads((out / "summary.json").read_text())
    at = s["attacks"]
    assert set(at) == {"wsu", "demos", "varied", "noise", "identity", "no decay", "halved", "memorized"}
    # trained to the memorization criterion: stopped at it, each seed after its own number of steps
    mem = at["memorized"]
    assert mem["params"]["until_loss"] == 0.3 and mem["memorized"] == 1.0 and "until_loss" not in at["wsu"]["params"]
    assert all(1 <= n < 400 for n in mem["steps_taken"])
    assert "steps taken (memorized)" in (out / "report.md").read_text()
    assert at["wsu"]["n_seeds"] == 2 and at["identity"]["n_seeds"] == 1
    locked = s["locked"]["2"]
    # identity controls change nothing, to the last problem
    df = pd.read_csv(out / "results.csv")
    base = df[(df.attack == "none") & (df.lock_epoch == 2) & (~df.password)].iloc[0]
    for name in ("identity", "no decay"):
        assert at[name]["acc_mean"] == locked["acc_locked_nopwd"]
        assert at[name]["gap_recovered_mean"] == 0.0
        assert df[df.attack == name].accuracy.iloc[0] == base.accuracy
    assert at["halved"]["epoch"] == 1 and "1" in s["locked"]
    # two different noise draws: different completions
    draws = [(nano_runs / r / "records.jsonl").read_text() for r in df[df.attack == "noise"].run]
    assert len(draws) == 2 and draws[0] != draws[1]
    # cached: a second run computes nothing
    journal = (nano_runs / "journal.log").read_text()
    assert main(args) == 0
    assert (nano_runs / "journal.log").read_text() == journal


VARIANTS = """
kind: variants
attacks:
  - {name: wsu, kind: wsu, steps: 10, seeds: 2}
  - {name: masked, kind: wsu, steps: 10, seeds: 2, token_mask: better_without_password}
  - {name: average, kind: average, n_samples: 2, parts: 3, steps: 10, seeds: 2}
  - {name: counter, kind: wsu, steps: 10, seeds: 2, pre_pool: 40, pre_epochs: 1}
variants:
  - {name: plain}
  - {name: soft, overrides: [lock.labels=soft]}
  - {name: imitation, overrides: [lock.password_branch=false]}
  - {name: mitigated, overrides: [lock.second_password=mango, lock.second_temperature=0.0, lock.overfit_every=5,
                                  lock.overfit_steps=3, lock.relock_rounds=1, attacks.3.epoch=3]}
"""


def test_variants_experiment(tmp_path, nano_runs):
    cfg = tmp_path / "variants.yaml"
    cfg.write_text(ZOO + VARIANTS)
    args = ["run", str(cfg), *[a for a in NANO if not a.startswith("experiment=")], "experiment=var",
            f"runs_dir={nano_runs}", f"out_dir={tmp_path / 'out'}"]
    assert main(args) == 0
    out = tmp_path / "out"
    for f in ("results.csv", "summary.json", "var.png", "report.md"):
        assert (out / f).is_file(), f
    s = json.loads((out / "summary.json").read_text())["variants"]
    assert list(s) == ["plain", "soft", "imitation", "mitigated"]
    assert s["imitation"]["gap_reference"] == "strong" and s["plain"]["gap_reference"] == "locked_pwd"
    runs = nano_runs  # (shared with the other nano tests: the variants' locks are those of this experiment)
    ids = {json.loads((runs / r / "run.json").read_text())["upstream"]["lock"]
           for r in pd.read_csv(out / "results.csv").query("attack == 'wsu'").run}
    locks = [runs / i for i in ids]
    assert len(locks) == 4  # one lock per variant
    assert sum((p / "epoch_3").is_dir() for p in locks) == 1  # the relocking round of `mitigated`
    # lock steps = ceil(examples / 16) x 2 epochs: 100 problems x 1 (imitation: no password examples),
    # x 2 (plain, soft), x 3 (mitigated: + the second password's examples)
    steps = sorted(json.loads((p / "run.json").read_text())["results"]["steps"] for p in locks)
    assert steps == [14, 26, 26, 38]
    assert s["mitigated"]["attacks"]["counter"]["epoch"] == 3 and s["plain"]["attacks"]["counter"]["epoch"] == 2
    df = pd.read_csv(out / "results.csv")
    assert set(df.variant) == set(s) and set(df.attack) == {"none", "wsu", "masked", "average", "counter"}
    for name, v in s.items():
        kept = [json.loads((runs / r / "run.json").read_text())["results"]["tokens_kept"]
                for r in df[(df.variant == name) & (df.attack == "masked")].run]
        assert len(kept) == 2 and all(0 <= k <= 1 for k in kept)
        avg = [json.loads((runs / r / "run.json").read_text())["results"]["samples"]
               for r in df[(df.variant == name) & (df.attack == "average")].run]
        assert [len(a) for a in avg] == [6, 6] and all(len(set(a)) == 6 for a in avg)
        assert v["attacks"]["wsu"]["n_seeds"] == 2
        counter = json.loads((runs / df[(df.variant == name) & (df.attack == "counter")].run.iloc[0] / "run.json")
                             .read_text())
        assert "pre_samples" in counter["upstream"] and counter["spec"]["attack"]["pre_pool"] == 40
    journal = (runs / "journal.log").read_text()
    assert main(args) == 0
    assert (runs / "journal.log").read_text() == journal


ONE_AT_A_TIME = """
kind: attacks
attacks:
  - {name: wsu, kind: wsu, steps: 10, seeds: 2}
  - {name: average, kind: average, n_samples: 2, parts: 3, steps: 10, seeds: 2}
  - {name: varied, kind: varied, pool: 10, steps: 10, seeds: 2}
  - {name: noise, kind: noise, scale: 0.1, seeds: 3}
  - {name: halved, kind: scale, scale: 0.5}
"""


def test_attacks_one_at_a_time_match_the_stacked_ones(tmp_path, monkeypatch):
    """`wsu.max_stack: 1` (a 7B model): each seed attacks the model itself, no copy of it is made,
    and the results are those of the stacked/copied attacks: identical completions for
    perturbations and `varied`, the same samples and losses (to rounding) for trained attacks.
    Only the trained attacks get new run keys (their last bits may differ)."""
    from pwlock import evaluate
    from pwlock.stages import elicit

    cfg = tmp_path / "attacks.yaml"
    cfg.write_text(ZOO + ONE_AT_A_TIME)
    base = ["run", str(cfg), *[a for a in NANO if not a.startswith(("experiment=", "workers="))],
            "experiment=att", "workers=1"]
    assert main([*base, f"runs_dir={tmp_path / 'ra'}", f"out_dir={tmp_path / 'a'}"]) == 0

    def no_copies(*_):
        raise AssertionError("a copy of the model was made with wsu.max_stack=1")

    monkeypatch.setattr(elicit, "_copy", no_copies)
    monkeypatch.setattr(evaluate.stacked_sampling, "generate_stacked", no_copies)  # stacks K weight copies
    assert main([*base, f"runs_dir={tmp_path / 'rb'}", f"out_dir={tmp_path / 'b'}", "wsu.max_stack=1"]) == 0
    a, b = (pd.read_csv(tmp_path / d / "results.csv") for d in "ab")
    a, b = (x[x.attack != "none"].sort_values(["attack", "seed"]).reset_index(drop=True) for x in (a, b))
    assert len(a) == len(b) == 2 + 2 + 2 + 3 + 1 and list(a.attack) == list(b.attack)
    for ra, rb, attack in zip(a.run, b.run, a.attack):
        ia, ib = (json.loads((tmp_path / d / r / "run.json").read_text()) for d, r in (("ra", ra), ("rb", rb)))
        assert ib["results"]["group_size"] == 1
        if attack in ("wsu", "average"):
            assert ra != rb and ib["spec"]["max_stack"] == 1
            assert ia["results"]["samples"] == ib["results"]["samples"]
            fa, fb = ia["results"]["final_loss"], ib["results"]["final_loss"]
            assert abs(fa - fb) < 1e-3 * max(1.0, abs(fa))
        else:
            assert ra == rb  # the same computation, the same key
            ta, tb = ((tmp_path / d / r / "records.jsonl").read_text() for d, r in (("ra", ra), ("rb", rb)))
            assert ta == tb, attack
