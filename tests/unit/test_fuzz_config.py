"""Fuzzing the config with `--dry-run`: random bad overrides drawn from each field's type (zero,
negative, NaN, huge, empty, wrong type, path-like strings) on the nano E1 config never give a
traceback or a hang: either the dry run succeeds (exit 0) or it stops with one line naming the
problem (exit 2). Seeded and bounded: DRAWS draws, each under PER_DRAW_S seconds."""

import dataclasses
import importlib.util
import random
import signal
import time
import typing
from pathlib import Path

import pytest

from pwlock.cli import main
from pwlock.config import _LIST_ITEM, ExperimentConfig

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("nano", ROOT / "tests/integration/nano.py")
nano = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(nano)

DRAWS = 200
PER_DRAW_S = 10
SEED = 20240615

# YAML texts of values, by the field's type (what an override `key=<text>` gives)
BAD = {
    int: ["0", "-1", "-7", "1000000000000", "1" + "0" * 30, "1.5", "abc", "true", "[]", "null", "''", "nan"],
    float: ["0", "-1.0", "nan", ".nan", "inf", "-inf", "1e300", "1e-300", "1" + "0" * 400, "abc", "[]", "null",
            "true"],
    str: ["''", "' '", "../x", "a/b", "KIWI", "x" * 300, "5", "[]", "null", "'é'", "cuda:abc", "'~'",
          '"a\\nb"'],
    bool: ["maybe", "2", "null", "[]"],
    list: ["[]", "['']", "[1]", "notalist", "[[1]]", "null", "[{}]", "{a: 1}"],
    dict: ["x", "[]", "{a: 1}", "null"],
}
SECTION = ["5", "null", "[]", "{a: 1}", "x"]  # a whole section (task=..., lock=...) replaced
FINE = {int: ["1", "2", "3"], float: ["0.5", "1e-3", "2"], bool: ["true", "false"]}


def _fields(cls, prefix: str) -> list[tuple[str, type]]:
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        t, key = hints[f.name], prefix + f.name
        if dataclasses.is_dataclass(t):
            out.append((key, "section"))
            out += _fields(t, key + ".")
        elif (cls.__name__, f.name) in _LIST_ITEM:
            out.append((key, list))
            item = _LIST_ITEM[(cls.__name__, f.name)]
            if f.name == "zoo":  # the nano zoo has two models
                for i in (0, 1):
                    out += _fields(item, f"{key}.{i}.")
        else:
            out.append((key, t))
    return out


FIELDS = _fields(ExperimentConfig, "")


def _draw(rng: random.Random) -> list[str]:
    overrides = []
    for _ in range(rng.choice((1, 1, 2, 3))):
        key, t = rng.choice(FIELDS)
        if t == "section":  # (task=null: the default task, valid but 270k problems: seconds, not a bug)
            value = rng.choice([v for v in SECTION if not (key == "task" and v == "null")])
        elif t in FINE and rng.random() < 0.25:
            value = rng.choice(FINE[t])
        else:
            value = rng.choice(BAD[t])
        overrides.append(f"{key}={value}")
    return overrides


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang()


def test_random_bad_overrides_never_give_a_traceback_or_a_hang(tmp_path, monkeypatch, capsys):
    cfg = tmp_path / "nano.yaml"
    cfg.write_text(nano.ZOO)
    monkeypatch.chdir(tmp_path)  # relative out_dir / runs_dir values land here (a dry run writes nothing)
    base = [str(cfg), *nano.NANO, "task.n_pretrain=500", f"runs_dir={tmp_path / 'runs'}",
            f"out_dir={tmp_path / 'out'}"]
    rng = random.Random(SEED)
    old = signal.signal(signal.SIGALRM, _alarm)
    codes = {}
    t0 = time.time()
    try:
        for i in range(DRAWS):
            overrides = _draw(rng)
            signal.alarm(PER_DRAW_S)
            try:
                code = main(["run", *base, *overrides, "--dry-run"])
            except _Hang:
                pytest.fail(f"draw {i} {overrides}: no answer in {PER_DRAW_S} s")
            finally:
                signal.alarm(0)
            out = capsys.readouterr()
            err = out.err.strip()
            assert "Traceback" not in out.err + out.out, (overrides, err)
            assert code in (0, 2), (overrides, code, err)
            if code == 2:
                assert len(err.splitlines()) == 1 and err.startswith("pwlock: error: "), (overrides, err)
            codes[code] = codes.get(code, 0) + 1
    finally:
        signal.signal(signal.SIGALRM, old)
    assert codes.get(2, 0) > DRAWS // 2  # most draws are bad input, refused
    assert not (tmp_path / "runs").exists() and not (tmp_path / "out").exists()  # a dry run writes nothing
    assert time.time() - t0 < 120
