"""Shared helpers of the real tasks (MATH, multiple choice): local data files, errors, splits.

Real tasks read their problems from a local directory (`task.data_dir`); nothing is downloaded.
Every problem with the data (a missing directory, a file that does not parse, a row without a
required field) raises `DataError`, a `ValueError` whose one-line message names the path and
the layout that was expected.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from pwlock.tasks.base import SPLITS, Problem

log = logging.getLogger(__name__)


class DataError(ValueError):
    """A missing or malformed data directory or file (the message names the path)."""


def subject_key(name: str) -> str:
    """A canonical subject name: `Counting & Probability` and `counting_and_probability` agree."""
    s = str(name).strip().lower().replace("&", " and ")
    return re.sub(r"[^a-z0-9]+", "_", s).strip("_")


def data_dir(cfg, expected: str) -> Path:
    """`cfg.data_dir` as an existing directory, else a `DataError` that describes `expected`."""
    if not cfg.data_dir:
        raise DataError(f"task.data_dir is not set for task {cfg.name!r}; expected {expected}")
    path = Path(cfg.data_dir).expanduser()
    if not path.is_dir():
        raise DataError(f"data directory not found: {path}; expected {expected}")
    return path


def read_jsonl_rows(path: Path, expected: str) -> list[dict]:
    """The JSON objects of a JSONL file, one a line (blank lines skipped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {path}: {e}; expected {expected}") from None
    rows = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{i}: invalid JSON ({e.msg}); expected {expected}") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}:{i}: expected a JSON object, got {type(row).__name__}; expected {expected}")
        rows.append(row)
    return rows


def read_parquet_rows(path: Path, expected: str) -> list[dict]:
    """The rows of a parquet file as dicts (needs pandas with a parquet engine, e.g. pyarrow)."""
    import pandas as pd

    try:
        df = pd.read_parquet(path)
    except ImportError as e:
        raise DataError(f"cannot read {path}: {str(e).splitlines()[0]} (pip install pyarrow)") from None
    except Exception as e:
        raise DataError(f"cannot read {path}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}; "
                        f"expected {expected}") from None
    return df.to_dict(orient="records")


def require(row: dict, keys: Sequence[str], where: str, expected: str) -> None:
    missing = [k for k in keys if k not in row or row[k] is None]
    if missing:
        raise DataError(f"{where}: missing field(s) {', '.join(missing)}; expected {expected}")


def take(pool: list[Problem], n: int, what: str) -> list[Problem]:
    """The first `n` of `pool` (all of it when `n` <= 0); a warning when fewer are available."""
    if n <= 0:
        return list(pool)
    if n > len(pool):
        log.warning("%s: %d problems requested, only %d available; using all of them", what, n, len(pool))
    return pool[:n]


def assign_splits(name: str, train: list[Problem], test: list[Problem], cfg) -> dict[str, list[Problem]]:
    """The task splits from a source train pool and a source test pool.

    Both pools are sorted by id (so the result does not depend on file order or layout) and
    shuffled with `cfg.data_seed`. `test` = the first `cfg.n_test` of the shuffled test pool (all
    of it when `n_test` <= 0 or larger than the pool). From the shuffled train pool: `elicit` = the
    first `cfg.n_elicit`, `lock` = the next `cfg.n_lock` (each truncated, with a warning, when the
    pool runs out). `pretrain` is empty: real tasks start from pretrained models. The splits are
    disjoint because lock/elicit come from the source train split and test from the source test
    split.
    """
    train = sorted(train, key=lambda p: p.id)
    test = sorted(test, key=lambda p: p.id)
    counts = Counter(p.id for p in train + test)
    if len(counts) != len(train) + len(test):
        dup = sorted(i for i, n in counts.items() if n > 1)[:3]
        raise DataError(f"{name}: duplicate problem ids in {cfg.data_dir}: {dup}; ids must be unique")
    random.Random(cfg.data_seed).shuffle(train)
    random.Random(cfg.data_seed).shuffle(test)
    out = {"pretrain": [], "test": take(test, cfg.n_test, f"{name} test")}
    out["elicit"] = take(train, cfg.n_elicit, f"{name} elicit")
    rest = train[len(out["elicit"]):]
    out["lock"] = take(rest, cfg.n_lock, f"{name} lock (after elicit)")
    for split in ("test", "elicit", "lock"):
        if not out[split]:
            raise DataError(f"{name}: the {split} split is empty after filtering (data_dir={cfg.data_dir}, "
                            f"subjects={list(cfg.subjects)}, max_chars={cfg.max_chars})")
    assert set(out) == set(SPLITS)
    return out
