"""Small helpers: atomic file writes, seeding, JSONL."""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
import uuid
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch


class ComputeClock:
    """Seconds spent inside model calls (forward, backward, optimizer step) in this process.

    `train`, `train_stacked` and `generate` add to it; a run records how much of its wall time
    was model compute (run.json `timings.compute_seconds`), so overhead is visible."""

    seconds = 0.0

    def __enter__(self):
        self._t = time.perf_counter()
        return self

    def __exit__(self, *exc):
        ComputeClock.seconds += time.perf_counter() - self._t
        return False


_UMASK: int | None = None


def file_mode() -> int:
    """0o666 less the process's umask (0o644 under the usual 022): the mode `open()` gives a new
    file. Writers that create files 0600 (safetensors' `save_file`, `tempfile`) are brought back
    to it by `atomic_path`, so a shared runs directory stays readable by the group."""
    global _UMASK
    if _UMASK is None:
        try:  # Linux: read it without changing it (os.umask can only be read by setting it)
            line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("Umask:"))
            _UMASK = int(line.split()[1], 8)
        except (OSError, StopIteration, ValueError, IndexError):
            _UMASK = os.umask(0o022)
            os.umask(_UMASK)
    return 0o666 & ~_UMASK


@contextmanager
def atomic_path(path: str | Path, *, fsync: bool = True):
    """Yield a temporary path next to `path` (`<name>.<random>.tmp`); when the block ends without
    error, it replaces `path` in one rename (readers never see a partial file), else it is removed.
    The file gets the mode a plain `open()` gives (`file_mode`: 0644 under umask 022), whatever
    the writer used (safetensors writes 0600).
    The random part makes the name unique, so several writers of one file (processes or threads)
    never rename each other's file away; the last rename wins. A failure names `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        yield tmp
        if tmp.is_file():
            os.chmod(tmp, file_mode())  # as a plain open() would have made it
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)  # e.g. disk full: leave no partial file behind
        if isinstance(e, OSError) and (e.filename is None or str(e.filename) == str(tmp)):
            raise OSError(e.errno, e.strerror or str(e), str(path)) from e  # name the file, not its temporary
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` through `atomic_path`."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def read_jsonl(path: str | Path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def import_object(spec: str, *, what: str):
    """The object `module:name` names (an attack or task from outside the package); a clear
    ValueError naming `what` when the module or the name is missing."""
    import importlib

    mod, _, name = spec.partition(":")
    if not mod or not name:
        raise ValueError(f"{what}={spec!r}: expected module:Name")
    try:
        module = importlib.import_module(mod)
    except ImportError as e:
        raise ValueError(f"{what}={spec!r}: cannot import {mod!r} ({e})") from None
    if not hasattr(module, name):
        raise ValueError(f"{what}={spec!r}: module {mod!r} has no {name!r}")
    return getattr(module, name)
