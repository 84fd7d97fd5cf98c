"""Run directories: one per stage result, keyed by a hash of what changes that result.

A run directory `runs/<stage>/<name>-<key>` holds the stage's outputs and, written last,
`run.json` (spec, upstream runs, git commit, versions, timings, results, and a manifest: the
size and SHA-256 of every output file). A run whose `run.json` is valid and whose files match
the manifest is finished and is reused, never recomputed; anything else in a run directory (a
leftover of an interrupted attempt, or a file damaged since) is wiped and the stage runs again. A file lock keeps
two processes from computing the same run at once: the second waits, then reuses the result.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pwlock.utils import ComputeClock, atomic_write_text, sha256_file

# Bump a stage's version when its code changes what it computes: old runs stop matching.
# wsu 2: the seeds of an epoch train together (pwlock.stacked).
STAGE_VERSIONS = {"zoo": 1, "samples": 1, "lock": 1, "eval": 1, "wsu": 2}


def run_key(stage: str, spec: dict, upstream: dict[str, str]) -> str:
    """Stable hash of (stage, stage version, spec, upstream run keys)."""
    blob = json.dumps(
        {"stage": stage, "v": STAGE_VERSIONS.get(stage, 1), "spec": spec, "upstream": upstream},
        sort_keys=True, default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _git_info() -> dict:
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
        return {"commit": commit.stdout.strip() or None, "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def _versions() -> dict:
    import torch
    import transformers

    from pwlock import __version__

    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "pwlock": __version__}


def _numerics() -> dict:
    """The process's CPU numerics (mode, ATen capability, BLAS and MKL branch, libm, threads, CPU)."""
    from pwlock import numerics

    return numerics.provenance()


# Run directories whose files were checked against their manifest in this process.
_VERIFIED: set[Path] = set()


def _manifest(d: Path) -> dict[str, list]:
    """[size, sha256] of every file under `d` except run.json."""
    return {f.relative_to(d).as_posix(): [f.stat().st_size, sha256_file(f)]
            for f in sorted(d.rglob("*")) if f.is_file() and f.name != "run.json"}


def _check_manifest(d: Path, manifest: dict | None) -> str | None:
    """None if the files of `d` match `manifest`, else what is wrong."""
    if manifest is None:
        return None  # runs finished before manifests existed: trusted as before
    for rel, (size, digest) in manifest.items():
        f = d / rel
        if not f.is_file():
            return f"missing {rel}"
        if f.stat().st_size != size or sha256_file(f) != digest:
            return f"{rel} changed since the run finished"
    return None


@dataclass
class Run:
    runs_dir: Path
    stage: str
    name: str
    spec: dict
    upstream: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return run_key(self.stage, self.spec, self.upstream)

    @property
    def dir(self) -> Path:
        return Path(self.runs_dir) / self.stage / f"{self.name}-{self.key}"

    @property
    def id(self) -> str:
        return f"{self.stage}/{self.name}-{self.key}"

    def info(self) -> dict | None:
        """The finished run's `run.json`, or None if the run is not finished."""
        p = self.dir / "run.json"
        if not p.is_file():
            return None
        try:
            info = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        if info.get("status") != "finished" or info.get("key") != self.key:
            return None
        if self.dir not in _VERIFIED:
            bad = _check_manifest(self.dir, info.get("manifest"))
            if bad:
                import warnings

                warnings.warn(f"run {self.id} is damaged ({bad}); it will be recomputed", stacklevel=2)
                return None
            _VERIFIED.add(self.dir)
        return info

    @property
    def done(self) -> bool:
        return self.info() is not None

    @contextmanager
    def _locked(self):
        self.dir.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.dir.parent / f".{self.dir.name}.lock"
        with open(lock_path, "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def compute(self, fn: Callable[[Path], dict], log: Callable[[str], None] | None = None) -> dict:
        """Return the results of this run, computing them with `fn(run_dir)` if needed.

        `fn` writes its outputs in `run_dir` and returns a JSON-able dict of results.
        """
        info = self.info()
        if info is not None:
            return info["results"]
        with self._locked():
            info = self.info()  # another process may have finished it while we waited
            if info is not None:
                return info["results"]
            if self.dir.exists():  # leftovers of an interrupted attempt are not trusted
                shutil.rmtree(self.dir)
            self.dir.mkdir(parents=True)
            atomic_write_text(self.dir / "spec.json", json.dumps(
                {"stage": self.stage, "name": self.name, "spec": self.spec, "upstream": self.upstream},
                indent=2, default=str))
            if log:
                log(f"computing {self.id}")
            self._journal("start")
            t0, c0 = time.time(), ComputeClock.seconds
            try:
                results = fn(self.dir)
            except ValueError as e:  # e.g. a diverged training: name the run; it stays unfinished
                from pwlock.train import TrainingDivergedError

                if isinstance(e, TrainingDivergedError) and not str(e).startswith("run "):
                    self._journal("failed")
                    raise TrainingDivergedError(f"run {self.id}: {e}; the run is not stored as finished") from e
                raise
            check_results(results, self.id)
            _VERIFIED.discard(self.dir)
            info = {
                "status": "finished", "stage": self.stage, "name": self.name, "key": self.key,
                "spec": self.spec, "upstream": self.upstream, "results": results,
                "git": _git_info(), "versions": _versions(), "numerics": _numerics(),
                "timings": {"started": t0, "seconds": round(time.time() - t0, 3),
                            "compute_seconds": round(ComputeClock.seconds - c0, 3)},
                "manifest": _manifest(self.dir),
            }
            atomic_write_text(self.dir / "run.json", json.dumps(info, indent=2, default=str))
            self._journal("finish")
            return results

    def _journal(self, event: str) -> None:
        journal(self.runs_dir, event, self.id)


@contextmanager
def group_lock(runs_dir: str | Path, runs: list[Run], what: str):
    """Held while one process computes a group of runs together (an attack's seeds, trained
    stacked): a second process on the same group waits here, then finds the runs finished,
    instead of training the group again. The journal records the group's start and end."""
    ids = sorted(r.id for r in runs)
    d = Path(runs_dir) / ".groups"
    d.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(json.dumps(ids).encode()).hexdigest()[:16]
    with open(d / f"{digest}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield lambda event: journal(runs_dir, f"group-{event}", f"{what} ({len(ids)} runs: {ids[0]} ...)")
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def journal(runs_dir: str | Path, event: str, what: str) -> None:
    """One line per event in `<runs_dir>/journal.log`: when, which process, what."""
    line = f"{time.strftime('%Y-%m-%dT%H:%M:%S')} pid={os.getpid()} {event} {what}\n"
    Path(runs_dir).mkdir(parents=True, exist_ok=True)
    with open(Path(runs_dir) / "journal.log", "a") as f:  # O_APPEND: whole lines
        f.write(line)


class NonFiniteResultError(ValueError):
    """A run's results hold NaN or an infinity: not stored as finished."""


def check_results(results: Any, run_id: str, where: str = "results") -> None:
    """Raise NonFiniteResultError when a number in `results` (nested) is NaN or infinite: such a
    run (an accuracy of a model that diverged, a loss) is never stored as finished and reused."""
    import math

    if isinstance(results, float) and not math.isfinite(results):
        raise NonFiniteResultError(f"run {run_id}: {where} is {results}; the run is not stored as finished")
    if isinstance(results, dict):
        for k, v in results.items():
            check_results(v, run_id, f"{where}.{k}")
    elif isinstance(results, (list, tuple)):
        for i, v in enumerate(results):
            check_results(v, run_id, f"{where}[{i}]")


def load_results(run: Run) -> Any:
    info = run.info()
    if info is None:
        raise FileNotFoundError(f"run {run.id} is not finished")
    return info["results"]
