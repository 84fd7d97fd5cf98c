"""`pwlock report --all`: docs/findings.md, claim by claim, from the results directories.

For each experiment of the catalogue: the write-up's claim, what the toy organism measured
(with 95% CIs, read from `results/<name>/summary.json`), and a verdict computed from those
numbers by a fixed rule stated next to it: reproduced / not reproduced / inconclusive.
Experiments without results are listed as not run.
"""

from __future__ import annotations

import json
from pathlib import Path

from pwlock.utils import atomic_write_text


def _load(results: Path, name: str) -> dict | None:
    f = results / name / "summary.json"
    return json.loads(f.read_text()) if f.is_file() else None


def _ci(s: dict) -> str:
    lo, hi = s["gap_recovered_ci95"]
    return f"{s['gap_recovered_mean']:+.1%} (95% CI {lo:+.1%} to {hi:+.1%})"


def _pos(s: dict) -> bool:
    return s["gap_recovered_ci95"][0] > 0


def _e1(s: dict) -> tuple[str, str]:
    last = s[max(s, key=int)]
    ups = sum(v["gap_recovered_ci95"][0] > 0 for v in s.values() if "gap_recovered_ci95" in v)
    n = sum("gap_recovered_ci95" in v for v in s.values())
    meas = (f"last lock epoch: locked no pwd {last['acc_locked_nopwd']:.3f}, pwd {last['acc_locked_pwd']:.3f}; "
            f"after WSU {last['acc_unlocked_mean']:.3f}: gap recovered {_ci(last)}; CI above zero at "
            f"{ups} of {n} epochs")
    return meas, _verdict_of(last)


def _verdict_of(last: dict) -> str:
    return ("reproduced" if _pos(last) else "not reproduced" if last["gap_recovered_ci95"][1] < 0
            else "inconclusive")


def _controls(s: dict, kinds: tuple[str, ...]) -> tuple[str, str]:
    wsu = next((a for a in s["attacks"].values() if a["kind"] == "wsu"), None)
    ctl = {n: a for n, a in s["attacks"].items() if a["kind"] in kinds}
    meas = "; ".join(f"{n}: {_ci(a)}, best draw {a['best_seed_gap_recovered']:+.1%}" for n, a in ctl.items())
    if wsu:
        meas = f"WSU on the same checkpoint {_ci(wsu)}; " + meas
    raised = [n for n, a in ctl.items() if _pos(a)]
    if raised:
        return meas, f"not reproduced ({', '.join(raised)} raise accuracy)"
    contrast = ("and WSU does" if wsu and _pos(wsu) else
                "but WSU shows no clear effect on this checkpoint either, so the contrast is not shown")
    return meas, f"reproduced: no control raises no-password accuracy ({contrast})"


def _by_n(s: dict) -> dict:
    return dict(sorted(s["attacks"].items(), key=lambda kv: (kv[1]["kind"] != "wsu",
                                                             kv[1]["params"]["n_samples"])))


def _n_samples(s: dict) -> tuple[str, str]:
    at = _by_n(s)
    meas = "; ".join(f"{n}: {_ci(a)}" for n, a in at.items())
    names = list(at)
    first, last = at[names[0]], at[names[-1]]
    if _pos(first) and last["gap_recovered_ci95"][1] < first["gap_recovered_mean"]:
        return meas, "reproduced"
    if not _pos(first):
        return meas, "inconclusive (WSU with 2 samples shows no clear effect here)"
    return meas, "not reproduced"


def _demos(s: dict) -> tuple[str, str]:
    at = _by_n(s)
    meas = "; ".join(f"{n}: {_ci(a)}" for n, a in at.items())
    half = [n for n, a in at.items() if a["kind"] == "demos" and a["gap_recovered_ci95"][0] > 0.5]
    return meas, ("baseline measured; fewest strong demos recovering > 50% of the gap (CI above 0.5): "
                  + (half[0] if half else "none of those tried"))


CATALOGUE = [
    ("E1", "core", "core result",
     "Fine-tuning the locked model for 200 steps on 2 weak samples raises its no-password accuracy "
     "above the locked model's.", _e1, "reproduced if the CI at the last lock epoch is above 0"),
    ("E3", "noise", "weight noise",
     "Adding Gaussian noise to the weights does not raise no-password accuracy.",
     lambda s: _controls(s, ("noise",)),
     "reproduced if no noise scale has a CI above 0"),
    ("E4", "decay_scaling", "decay and scaling",
     "Weight decay, or scaling the weights up or down, does not raise no-password accuracy.",
     lambda s: _controls(s, ("scale", "decay")),
     "reproduced if no scaling or decay has a CI above 0"),
    ("E5", "varied", "varied weak samples",
     "Fine-tuning on many varied weak samples (same steps) does not raise no-password accuracy: "
     "the effect needs overfitting few samples.", lambda s: _controls(s, ("varied",)),
     "reproduced if varied samples have no CI above 0"),
    ("E6", "n_samples", "number of samples",
     "Memorizing more samples together (e.g. 64) gives a smaller effect than 2.", _n_samples,
     "reproduced if n=2 has a CI above 0 and the largest n's CI is below n=2's mean"),
    ("E15", "strong_demos", "standard elicitation",
     "(Baseline, not a claim of the write-up) SFT on a few strong demonstrations recovers the gap.",
     _demos, "reports the fewest demos with a CI above 50% of the gap"),
]
NOT_YET = [("E2", "starting models"), ("E7", "averaging"), ("E8", "iterated relock"),
           ("E9", "periodic-overfit mitigation"), ("E10", "weak-model strength"), ("E11", "token masking"),
           ("E12", "low-temperature control"), ("E13", "no-password imitation"), ("E14", "soft vs hard labels")]


def write_findings(results: Path = Path("results"), out: Path = Path("docs/findings.md")) -> str:
    lines = ["# Findings on the toy organism, claim by claim", "",
             "Generated by `pwlock report --all` from `results/*/summary.json`; do not edit by hand.",
             "Gap recovered = (after the attack − locked, no pwd) / (locked with pwd − locked, no pwd);",
             "95% CIs by paired bootstrap over test problems and seeds (5 seeds unless stated).", ""]
    rows = ["| exp | what | verdict |", "|---|---|---|"]
    sections = []
    for eid, name, title, claim, fn, rule in CATALOGUE:
        s = _load(results, name)
        if s is None:
            rows.append(f"| {eid} | {title} | not run (`results/{name}/` missing) |")
            continue
        # every seed that was run: results/<name> (seed 0) and results/<name>-seed<k>
        per_seed = [("seed 0", s)]
        for d in sorted(results.glob(f"{name}-seed*")):
            if (d / "summary.json").is_file():
                per_seed.append((d.name.replace(f"{name}-seed", "seed "), json.loads((d / "summary.json").read_text())))
        found = [(k, *fn(v)) for k, v in per_seed]
        if len(found) == 1:
            meas, verdict = found[0][1], found[0][2]
        else:
            meas = "; ".join(f"**{k}:** {m}" for k, m, _ in found)
            vs = [v for _, _, v in found]
            verdict = (vs[0] + f" (all {len(vs)} seeds)" if len(set(vs)) == 1 else
                       "mixed: " + "; ".join(f"{k}: {v}" for k, _, v in found))
        fig = next((p.name for p in sorted((results / name).glob("*.png"))), None)
        rows.append(f"| {eid} | {title} | {verdict} |")
        sections += [f"## {eid} — {title}", "", f"**Claim (write-up):** {claim}", "",
                     f"**Measured:** {meas}.", "", f"**Verdict:** {verdict} (rule: {rule}).", "",
                     f"Details: [`results/{name}/report.md`](../results/{name}/report.md)", ""]
        if fig:
            sections += [f"![{eid}](../results/{name}/{fig})", ""]
    rows += [f"| {eid} | {title} | not built yet |" for eid, title in NOT_YET]
    text = "\n".join(lines + rows + [""] + sections)
    atomic_write_text(out, text)
    return text
