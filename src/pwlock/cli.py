"""Command line: `pwlock run CONFIG [key=value ...]`, `pwlock config CONFIG [...]`."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

from pwlock.config import ConfigError, dump_yaml, load_config
from pwlock.utils import atomic_write_text


def _readme_block(summary: dict, results_dir: Path, kind: str, experiment: str) -> str:
    from pwlock.report import across_epochs, audit_readme_block, core_table, verdict

    if kind == "audit":
        return audit_readme_block(summary, results_dir, experiment)
    return (f"![E1: weak sample unlocking on the toy organism]({results_dir.as_posix()}/core.png)\n\n"
            f"{core_table(summary)}\n\n**Measured:** {verdict(summary)} {across_epochs(summary)}\n")


# `pwlock report --readme`: each block's results directory (under --results) and the command that makes it
README_BLOCK_RESULTS = [("core", "core", "pwlock run configs/toy/core.yaml"),
                        ("audit", "audit", "pwlock audit configs/toy/audit.yaml")]

# the README block each kind refreshes (`--readme`): E1's results (pwlock run), the audit's card (pwlock audit)
README_MARKERS = {"core": ("<!-- core-results:start -->", "<!-- core-results:end -->"),
                  "audit": ("<!-- audit-card:start -->", "<!-- audit-card:end -->")}


def check_readme(readme: Path, kind: str) -> str:
    """`--readme FILE`, checked before any work: an E1 or audit config, a readable file with the markers."""
    if kind not in README_MARKERS:
        raise ConfigError(f"--readme {readme}: only E1 (kind core, `pwlock run`) and an audit (kind audit, "
                          f"`pwlock audit`) refresh a README, this config is kind {kind}")
    start, end = README_MARKERS[kind]
    if not readme.is_file():
        raise ConfigError(f"--readme {readme}: file not found")
    try:
        text = readme.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"--readme {readme}: cannot read it ({e})") from None
    if start not in text or end not in text or text.index(start) > text.index(end):
        raise ConfigError(f"{readme}: markers {start} / {end} not found")
    return text


def sync_readme(readme: Path, summary: dict, results_dir: Path, kind: str = "core", experiment: str = "") -> None:
    """Replace the block between the kind's markers of the README with fresh numbers."""
    text = check_readme(readme, kind)
    start, end = README_MARKERS[kind]
    new = re.sub(re.escape(start) + ".*?" + re.escape(end),
                 lambda _: f"{start}\n{_readme_block(summary, Path(results_dir), kind, experiment)}{end}", text,
                 flags=re.S)
    atomic_write_text(readme, new)


def _numerics(cfg, own_command_line: bool) -> None:
    """Apply the config's numerics mode to this process (and the processes it starts) before any
    tensor op. portable from a command line: start again with libm's portable selection."""
    from pwlock import numerics

    if numerics.mode() == "portable" and cfg.numerics != "portable":
        raise ConfigError(f"{numerics.ENV}=portable in the environment but the config says numerics: {cfg.numerics}")
    if cfg.numerics == "portable" and own_command_line:
        os.environ[numerics.ENV] = "portable"
        numerics.reexec_if_needed()
    numerics.apply(cfg.numerics)  # (raises, leaving the environment as it was, when it is too late)


def write_config(cfg) -> None:
    """results_dir/config.yaml: the resolved config the results were made with (recipe, numerics,
    organisms), so that a reader, and `pwlock report --all`, can tell what produced them."""
    import yaml

    from pwlock.config import spec_dict

    # as run keys do, fields added later (`since=`) are left out at their defaults: a field added to
    # pwlock does not change the file a reader's rerun writes
    atomic_write_text(Path(cfg.results_dir) / "config.yaml",
                      "# The resolved config of these results (written by `pwlock run`; fields at the default they "
                      "had before they existed are left out).\n" + yaml.safe_dump(spec_dict(cfg), sort_keys=False))


def cmd_run(args) -> int:
    if getattr(args, "executor", None):
        args.overrides = [*args.overrides, f"executor={args.executor}"]
    if getattr(args, "address", None):
        args.overrides = [*args.overrides, f"ray_address={args.address}"]
    cfg = load_config(args.config, args.overrides)
    if not args.dry_run:
        _numerics(cfg, args.own_command_line)
    if args.readme:
        check_readme(Path(args.readme), cfg.kind)
    if args.dry_run:
        from pwlock.plan import dry_run

        print(dump_yaml(cfg))
        print("\n".join(dry_run(cfg)))
        return 0
    if args.verify:
        from pwlock.verify import verify

        diffs = verify(cfg, args.verify_dir)
        if diffs:
            print(f"{len(diffs)} row(s) of {cfg.results_dir}/per_problem.jsonl differ when recomputed:")
            print("\n".join(f"  {d}" for d in diffs))
            return 3
        print(f"verified: every answer of {cfg.results_dir}/per_problem.jsonl recomputed identically")
        return 0
    from pwlock import distributed, experiments

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # under torchrun: the lock stages run sharded
        distributed.init_distributed(cfg.device)
    try:
        t0 = time.time()
        rows = experiments.run(cfg)
        env = distributed.current_env()
        if env is not None and not env.is_main:
            return 0  # this rank joined the lock stages; rank 0 writes the results
        kind = experiments.KINDS[cfg.kind]
        summary = kind.write_report(rows, cfg)
        write_config(cfg)
    finally:
        distributed.close()
    print(f"wrote {cfg.results_dir}/ (results.csv, per_problem.jsonl, summary.json, {cfg.experiment}.png, report.md, "
          f"config.yaml) "
          f"in {time.time() - t0:.0f} s")
    if args.readme:
        sync_readme(Path(args.readme), summary, cfg.results_dir, cfg.kind, cfg.experiment)
    print("\n".join(kind.verdicts(summary)))
    return 0


def cmd_config(args) -> int:
    if args.help_fields:
        from pwlock.config import field_help

        print("\n".join(field_help()))
        return 0
    if not args.config:
        raise ConfigError("pwlock config: give a config file (or --help-fields)")
    cfg = load_config(args.config, args.overrides)
    print(dump_yaml(cfg))
    if args.check:
        from pwlock.context import Context

        Context(cfg, threads=1, plan_only=True)  # the rules that need the task's data
        if cfg.kind == "variants":  # and each variant's
            from pwlock.experiments.variants import variant_context

            for v in cfg.variants:
                variant_context(cfg, v, threads=1)
        print("# config ok: every rule checked, the task's data read")
    return 0


def cmd_audit(args) -> int:
    """`pwlock run` of the config as an audit (`kind=audit`): the battery on the lock and its control;
    with `--model DIR`, on that model (locked elsewhere) instead of a lock the config trains."""
    args.overrides = [*args.overrides, "kind=audit"]
    if args.model:
        import yaml

        from pwlock.config import load_config as _load
        from pwlock.config import to_dict

        if not Path(args.model, "config.json").is_file():
            raise FileNotFoundError(f"audit --model {args.model}: not a Hugging Face model directory (no config.json)")
        zoo = [*to_dict(_load(args.config, [*args.overrides, "kind=attacks"]))["zoo"],  # (its zoo; audit rules below)
               {"name": "audited", "path": str(Path(args.model).resolve()), "prompt_format": args.prompt_format}]
        args.overrides = [*args.overrides, f"zoo={yaml.safe_dump(zoo, default_flow_style=True, width=10**6).strip()}",
                          "lock.given=audited", "lock.epochs=1"]
        if args.password:
            args.overrides.append(f"password.password={args.password}")
    args.verify = False
    args.verify_dir = None
    return cmd_run(args)


def cmd_export(args) -> int:
    from pwlock.export import export

    out = export(Path(args.run), Path(args.out), args.checkpoint, Path(args.audit) if args.audit else None)
    print(f"wrote {out}/ (loads with transformers' AutoModelForCausalLM.from_pretrained; model card README.md)")
    return 0


def cmd_report(args) -> int:
    from pwlock.findings import write_findings

    if not args.all and not args.readme:
        raise ConfigError("pwlock report: use --all (regenerates docs/findings.md from results/) and/or --readme FILE")
    results = Path(args.results)
    if args.readme:  # E1's block and the audit card from their summaries: no run needed, nothing recomputed
        blocks = [(kind, results / name) for kind, name, _ in README_BLOCK_RESULTS]
        for kind, name, cmd in README_BLOCK_RESULTS:
            check_readme(Path(args.readme), kind)
            if not (results / name / "summary.json").is_file():
                raise ConfigError(f"--readme: {results / name / 'summary.json'} not found (its block comes from it; "
                                  f"run {cmd})")
    if args.all:
        write_findings(results, Path(args.out))
        print(f"wrote {args.out}")
    if args.readme:
        for kind, d in blocks:
            sync_readme(Path(args.readme), json.loads((d / "summary.json").read_text()), d, kind, d.name)
        print(f"refreshed {args.readme}: " + ", ".join(f"{k} block from {d}/summary.json" for k, d in blocks))
    return 0


def _one_line(e: BaseException) -> str:
    """The error as one line (a message quoting a multi-line value stays one line)."""
    return " ".join(str(e).splitlines())


def main(argv: list[str] | None = None) -> int:
    from pwlock import numerics

    try:
        if argv is None:  # this process's own command line: start again if libm's choice needs it
            numerics.reexec_if_needed()
        numerics.apply_from_env()  # before any tensor op: $PWLOCK_NUMERICS=portable (pwlock.numerics)
    except numerics.NumericsError as e:
        print(f"pwlock: error: {e}", file=sys.stderr)
        return 2
    ap = argparse.ArgumentParser(prog="pwlock", description="password-locked models and weak sample unlocking")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run an experiment (reuses finished runs)")
    r.add_argument("config", help="YAML config, e.g. configs/toy/core.yaml")
    r.add_argument("overrides", nargs="*", help="key=value overrides, e.g. lock.epochs=12 seed=1")
    r.add_argument("--dry-run", action="store_true",
                   help="resolve the config, check its paths, print the planned runs (and which are cached) and a "
                        "memory estimate; run nothing")
    r.add_argument("--readme", default=None, help="also refresh the results block of this README")
    r.add_argument("--verify", action="store_true",
                   help="recompute the experiment from nothing in a temporary runs dir and compare its per-problem "
                        "answers with the committed results (exit 3 if any differ); nothing is overwritten")
    r.add_argument("--verify-dir", default=None, help="with --verify: keep the recomputed runs and results here")
    r.add_argument("--executor", choices=("local", "ray"), default=None,
                   help="where the jobs run (the config's `executor`): local processes, or Ray tasks")
    r.add_argument("--address", default=None, help="with --executor ray: the cluster's address (default: a local one)")
    r.set_defaults(fn=cmd_run)
    au = sub.add_parser("audit", help="the config's attacks battery on its lock and an unlocked control: a report card "
                                      "(report.md, audit.json, a figure) by the elicitor's budget")
    au.add_argument("config", help="YAML config with an `attacks` battery, e.g. configs/toy/audit.yaml")
    au.add_argument("overrides", nargs="*")
    au.add_argument("--dry-run", action="store_true", help="print the planned runs; run nothing")
    au.add_argument("--model", default=None, help="audit this local Hugging Face directory (a model locked elsewhere, "
                                                 "or by `pwlock export`) instead of the config's lock")
    au.add_argument("--password", default=None, help="with --model: its password (else the config's)")
    au.add_argument("--prompt-format", default="auto", choices=("auto", "chat", "raw"),
                    help="with --model: how prompts reach it (raw: the task's text as is, as toy models read it)")
    au.add_argument("--readme", default=None, help="also refresh the audit-card block of this README "
                                                  "(between <!-- audit-card:start --> and <!-- audit-card:end -->)")
    au.set_defaults(fn=cmd_audit)
    ex = sub.add_parser("export", help="a lock checkpoint as a plain Hugging Face directory with a model card")
    ex.add_argument("run", help="a lock run directory (runs/lock/<name>-<key>) or one of its checkpoints")
    ex.add_argument("--out", required=True, help="the directory to write (must not exist, or be empty)")
    ex.add_argument("--checkpoint", default=None, help="e.g. epoch_4 (default: the last epoch)")
    ex.add_argument("--audit", default=None, help="an audit.json whose card goes in the model card")
    ex.set_defaults(fn=cmd_export)
    c = sub.add_parser("config", help="print the resolved config (every rule that needs no data is checked)")
    c.add_argument("config", nargs="?")
    c.add_argument("overrides", nargs="*")
    c.add_argument("--check", action="store_true", help="also read the task's data and check the rules that need it")
    c.add_argument("--help-fields", action="store_true", help="list every config field: type, default, choices, help")
    c.set_defaults(fn=cmd_config)
    rp = sub.add_parser("report", help="regenerate docs/findings.md from results/ (claim by claim)")
    rp.add_argument("--all", action="store_true", help="every experiment of the catalogue")
    rp.add_argument("--results", default="results")
    rp.add_argument("--out", default="docs/findings.md")
    rp.add_argument("--readme", default=None, help="also refresh this README's E1 block and audit card from "
                    "results/core/summary.json and results/audit/summary.json (no run, nothing recomputed)")
    rp.set_defaults(fn=cmd_report)
    # Options may come after the overrides: argparse leaves those overrides as "unknown".
    args, extra = ap.parse_known_args(argv)
    args.own_command_line = argv is None
    bad = [x for x in extra if x.startswith("-") or "=" not in x]
    if bad or (extra and not hasattr(args, "overrides")):
        ap.error(f"unrecognized arguments: {' '.join(bad or extra)}")
    if extra:
        args.overrides = list(args.overrides) + extra
    from pwlock.models import CheckpointError

    try:
        return args.fn(args)
    except (ConfigError, ValueError, FileNotFoundError, FileExistsError, CheckpointError) as e:
        if os.environ.get("PWLOCK_DEBUG"):
            raise
        print(f"pwlock: error: {_one_line(e)} (set PWLOCK_DEBUG=1 for a traceback)", file=sys.stderr)
        return 2
    except OSError as e:  # disk full, permissions, ...: finished runs are untouched
        if os.environ.get("PWLOCK_DEBUG"):
            raise
        print(f"pwlock: error: {_one_line(e)}; finished runs are kept (set PWLOCK_DEBUG=1 for a traceback)",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("pwlock: interrupted; finished runs are kept and will be reused", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
