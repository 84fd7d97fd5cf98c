"""The audit's report card: the worst case per budget is chosen on one split of the test problems
and reported on the other (unbiased on pure noise, where the same-split max is biased upwards);
the prompting attacks' other passwords; the audit's config rules."""

import numpy as np
import pytest

from pwlock.config import ConfigError, load_config
from pwlock.elicit.prompt import other_password, paraphrases
from pwlock.report import split_problems, worst_case

ALPHABET = "0123456789+-*=;# abcdefghijklmnopqrstuvwxyz|"


def _pure_noise(rng, n=400, attacks=40, seeds=5):
    """A lock (30% without, 90% with the password) and `attacks` attacks that only flip answers at
    random, keeping the no-password accuracy's expectation: every true gap recovered is 0."""
    lnp = (rng.random(n) < 0.3).astype(np.uint8)
    lpw = (rng.random(n) < 0.9).astype(np.uint8)
    out = {}
    for a in range(attacks):
        u = np.repeat(lnp[None], seeds, 0)
        r = rng.random((seeds, n))
        flipped = np.where(u == 1, r >= 0.2, r < 0.3 * 0.2 / 0.7).astype(np.uint8)
        out[f"attack{a}"] = flipped
    return lnp, lpw, out


def test_split_problems_is_a_seeded_partition():
    sel, rep = split_problems(101, 0.5, 3)
    assert len(sel) == 50 and len(rep) == 51 and not set(sel) & set(rep) and len(set(sel) | set(rep)) == 101
    assert np.array_equal(split_problems(101, 0.5, 3)[0], sel)
    assert not np.array_equal(split_problems(101, 0.5, 4)[0], sel)
    assert len(split_problems(3, 0.01, 0)[0]) == 1 and len(split_problems(3, 0.99, 0)[1]) == 1


def test_worst_case_on_pure_noise_includes_zero_and_the_same_split_max_is_biased():
    split, same = [], []
    for k in range(20):
        lnp, lpw, attacked = _pure_noise(np.random.default_rng(k))
        sel, rep = split_problems(len(lnp), 0.5, 0)
        w = worst_case(lnp, lpw, attacked, sel, rep)
        lo, hi = w["gap_recovered_ci95"]
        assert lo <= 0 <= hi, (k, w["attack"], lo, hi)  # the reported worst case: no effect, as is true
        assert w["attack"] in attacked and w["n_selection"] == 200 and w["n_report"] == 200
        split.append(w["gap_recovered_mean"])
        every = np.arange(len(lnp))
        same.append(worst_case(lnp, lpw, attacked, every, every)["gap_recovered_mean"])
    # chosen and measured on the same problems, the best of 40 noisy estimates reads as an effect
    assert np.mean(same) > 0.015 and abs(np.mean(split)) < 0.01, (np.mean(same), np.mean(split))


def test_worst_case_finds_a_real_effect():
    rng = np.random.default_rng(0)
    lnp, lpw, attacked = _pure_noise(rng)
    attacked["real"] = np.repeat(lpw[None], 5, 0)  # recovers the whole gap
    sel, rep = split_problems(len(lnp), 0.5, 0)
    w = worst_case(lnp, lpw, attacked, sel, rep)
    assert w["attack"] == "real" and w["gap_recovered_ci95"][0] > 0.8


def test_worst_case_without_a_gap_still_says_its_split():
    """A lock that scores the same with and without the password (SmolLM2 on the MATH fixture: 0 either
    way) has no worst case, but the card still names the split it would be chosen on."""
    lnp = lpw = np.zeros(6, dtype=bool)
    sel, rep = split_problems(6, 0.5, 0)
    w = worst_case(lnp, lpw, {"wsu": np.zeros((2, 6), dtype=bool)}, sel, rep)
    assert w["attack"] is None and (w["n_selection"], w["n_report"]) == (3, 3)


def test_other_passwords():
    for seed in range(20):
        w = other_password("kiwi", "wrong_password", seed, ALPHABET)
        assert len(w) == 4 and w != "kiwi" and w.isalpha()
        part = other_password("kiwi", "partial_password", seed, ALPHABET)
        assert part in "kiwi" and 2 <= len(part) < 4
        para = other_password("kiwi", "paraphrase", seed, ALPHABET)
        assert para != "kiwi" and set(para) <= set(ALPHABET)
    assert len({other_password("kiwi", "wrong_password", s, ALPHABET) for s in range(20)}) > 10
    # spelled in the toy alphabet: no upper case there; anything goes for a real model's tokenizer
    assert "KIWI" not in paraphrases("kiwi", ALPHABET) and "KIWI" in paraphrases("kiwi", None)
    with pytest.raises(ValueError, match="2 or more"):
        other_password("k", "partial_password", 0, ALPHABET)


def test_audit_config_rules():
    with pytest.raises(ConfigError, match="kind=audit needs a non-empty `attacks` list"):
        load_config("configs/toy/core.yaml", ["kind=audit"])
    with pytest.raises(ConfigError, match="password_branch=false has no password"):
        load_config("configs/toy/audit.yaml", ["lock.password_branch=false"])
    with pytest.raises(ConfigError, match="audit.selection"):
        load_config("configs/toy/audit.yaml", ["audit.selection=1.0"])
    with pytest.raises(ConfigError, match="sample_temperature"):
        load_config("configs/toy/audit.yaml", ["attacks.17.sample_temperature=0"])
    with pytest.raises(ConfigError, match="rounds do not apply to kind wsu"):
        load_config("configs/toy/core.yaml", ["kind=attacks", "attacks=[{name: w, kind: wsu, rounds: 2}]"])


def test_findings_audit_section(tmp_path):
    import json

    from pwlock.findings import audit_section

    assert "No audit run yet" in "\n".join(audit_section(tmp_path))
    d = tmp_path / "audit"
    d.mkdir()
    card = {"acc_locked_nopwd": 0.3, "acc_locked_pwd": 0.9, "acc_weak": 0.35, "acc_strong": 0.95,
            "worst_case": {"no data": {"verdict": "worst case `noise`: no attack with this budget clearly elicits"}}}
    (d / "audit.json").write_text(json.dumps(card))
    text = "\n".join(audit_section(tmp_path))
    assert "### [`audit`]" in text and "**no data**: worst case `noise`" in text and "no password 0.300" in text
