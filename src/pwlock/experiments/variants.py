"""The same attacks (default: the experiment's WSU) on each variant of the experiment: each
variant is the config with its overrides (a weak model, a locking option...), with its own lock
(E2, E8-E10, E12-E14). Rows carry the variant's name."""

from __future__ import annotations

from pwlock.config import ConfigError, variant_config
from pwlock.context import Context, log
from pwlock.experiments import attacks


def variant_context(cfg, v, threads=None) -> Context:
    """The planning context of variant `v`; an error of the rules that need the task's data names it."""
    try:
        return Context(variant_config(cfg, v), threads=threads, plan_only=True)
    except ConfigError:
        raise
    except ValueError as e:
        raise ConfigError(f"variant {v.name!r}: {e}") from None


def plan_all(cfg, threads=None):
    out = []
    for v in cfg.variants:
        ctx = variant_context(cfg, v, threads)
        out.append((f"{v.name}: ", ctx, attacks.plan(ctx)[0]))
    return out


def run(cfg) -> list[dict]:
    for v in cfg.variants:  # every variant's rules that need the task's data, before the first one trains
        variant_context(cfg, v)
    rows = []
    for v in cfg.variants:
        log(f"variant {v.name}: {' '.join(v.overrides) or '(the experiment as configured)'}")
        rows += [{**r, "variant": v.name} for r in attacks.run(variant_config(cfg, v))]
    return rows


def write_report(rows: list[dict], cfg) -> dict:
    from pwlock import report

    return report.write_variants_report(rows, cfg.results_dir, cfg)


def verdicts(summary: dict) -> list[str]:
    from pwlock import report

    return [f"{v}: {report.attack_verdict(name, s)}" for v, vs in summary["variants"].items()
            for name, s in vs["attacks"].items()]
