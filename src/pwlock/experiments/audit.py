"""The audit (`pwlock audit CONFIG`): the `attacks` battery on the locked model and, with
`audit.control`, on an unlocked control (the strong model fine-tuned to imitate the weak model
with no password at all: `lock.password_branch=false`, E13's lock, same zoo and weak samples).
Rows carry `variant` = locked | control; the report card (`pwlock.report.write_audit_report`)
groups the attacks by the elicitor's budget and reports the worst case per budget."""

from __future__ import annotations

from pwlock.config import VariantConfig
from pwlock.experiments import variants

LOCKED, CONTROL = "locked", "control"


def targets(cfg) -> list[VariantConfig]:
    """The models the battery runs on: the lock, and the control if the config asks for it."""
    out = [VariantConfig(name=LOCKED, overrides=[])]
    if cfg.lock.given:  # a model locked elsewhere: the control is a model given too (if any)
        if cfg.audit.control and cfg.audit.control_model:
            out.append(VariantConfig(name=CONTROL, overrides=[f"lock.given={cfg.audit.control_model}",
                                                              "lock.password_branch=false"]))
    elif cfg.audit.control:
        out.append(VariantConfig(name=CONTROL, overrides=["lock.password_branch=false"]))
    return out


def _as_variants(cfg):
    import dataclasses

    return dataclasses.replace(cfg, variants=targets(cfg))


def plan_all(cfg, threads=None):
    return variants.plan_all(_as_variants(cfg), threads)


def run(cfg) -> list[dict]:
    return variants.run(_as_variants(cfg))


def write_report(rows: list[dict], cfg) -> dict:
    from pwlock import report

    return report.write_audit_report(rows, cfg.results_dir, cfg)


def verdicts(summary: dict) -> list[str]:
    return [f"{b}: {w['verdict']}" for b, w in summary["worst_case"].items()]
