"""The golden run-id test: the run ids of every config under configs/ (toy and math, as a dry run
plans them; the toy ones also with seed=1, as `make experiments-seed1` runs them) equal those
recorded in tests/fixtures/run_ids.json before the stage-graph refactor (commit e0cda64).
Run keys are a contract with every cache on disk: a change here invalidates cached runs.

Regenerate the fixture only for a deliberate key change: `python tests/unit/test_run_ids.py --write`;
a new config is added (the others left as they are) with `--add`.
"""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests/fixtures/run_ids.json"
CONFIGS = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "configs").rglob("*.yaml"))
CASES = CONFIGS + [f"{c}@seed=1" for c in CONFIGS if c.startswith("configs/toy/")]

# Path models and local data as fixed stand-ins: their real files are not on this machine. The
# model path stays the config's placeholder (it is part of the key as written); its fingerprint
# is a constant; the data comes from the test fixtures, with split sizes that fit them.
DATA = {"math": ["task.data_dir=tests/fixtures/math", "task.n_test=4", "task.n_elicit=3", "task.n_lock=4",
                 "task.max_chars=0", "task.subjects=[]", "task.levels=[]"],
        "mc": ["task.data_dir=tests/fixtures/mc/mmlu", "task.n_test=4", "task.n_elicit=3", "task.n_lock=4",
               "task.subjects=[]"]}


def stand_ins(monkeypatch) -> None:
    from pwlock import hf

    monkeypatch.setattr(hf, "check_model_path", lambda *a, **k: None)
    monkeypatch.setattr(hf, "fingerprint", lambda path, gguf_file=None: {"stand-in": str(path)})


def run_ids(case: str) -> dict[str, list[str]]:
    from pwlock.config import load_config
    from pwlock.plan import planned_run_ids

    rel, _, seed = case.partition("@")
    cfg = load_config(ROOT / rel)
    if seed and cfg.organisms:  # a config over organisms: organism 1 alone is its seed=1
        seed = f"organisms=[{seed.partition('=')[2]}]"
    over = ["device=cpu", "runs_dir=runs", *DATA.get(cfg.task.name, []), *([seed] if seed else [])]
    return planned_run_ids(load_config(ROOT / rel, over))


@pytest.mark.parametrize("rel", CASES)
def test_run_ids_are_unchanged(rel, monkeypatch):
    stand_ins(monkeypatch)
    monkeypatch.chdir(ROOT)
    expected = json.loads(FIXTURE.read_text())
    assert rel in expected, f"{rel} is not in {FIXTURE.name}: a new config? add it with --write"
    assert run_ids(rel) == expected[rel]


if __name__ == "__main__" and ("--write" in sys.argv or "--add" in sys.argv):
    import os

    mp = pytest.MonkeyPatch()
    stand_ins(mp)
    os.chdir(ROOT)
    old = json.loads(FIXTURE.read_text()) if "--add" in sys.argv else {}
    FIXTURE.write_text(json.dumps({rel: old.get(rel) or run_ids(rel) for rel in sorted(CASES)}, indent=1) + "\n")
    print(f"wrote {FIXTURE}")


def test_portable_numerics_has_keys_of_its_own(monkeypatch):
    """A run computed in portable numerics is never reused as a fast one (nor the other way)."""
    from pwlock.config import load_config
    from pwlock.plan import planned_run_ids

    stand_ins(monkeypatch)
    monkeypatch.chdir(ROOT)
    fast = planned_run_ids(load_config(ROOT / "configs/toy/core_v1.yaml", ["numerics=fast"]))
    portable = planned_run_ids(load_config(ROOT / "configs/toy/core_v1.yaml", ["numerics=portable"]))
    assert fast == json.loads(FIXTURE.read_text())["configs/toy/core_v1.yaml"]
    for stage in fast:
        assert len(portable[stage]) == len(fast[stage]) and not set(portable[stage]) & set(fast[stage]), stage


def test_portable_thread_count_is_in_the_key(monkeypatch):
    """Portable bits depend on the main process's thread count: threads=2 has keys of its own,
    threads=0 and 1 (portable's one thread) share theirs; in fast mode `threads` is in no key."""
    from pwlock.config import load_config
    from pwlock.plan import planned_run_ids

    stand_ins(monkeypatch)
    monkeypatch.chdir(ROOT)

    def ids(*over):
        return planned_run_ids(load_config(ROOT / "configs/toy/core_v1.yaml", list(over)))

    one = ids("numerics=portable")
    assert ids("numerics=portable", "threads=1") == one
    two = ids("numerics=portable", "threads=2")
    assert not set(two["zoo"]) & set(one["zoo"]) and not set(two["lock"]) & set(one["lock"])
    assert ids("threads=2") == ids()


def test_relock_rounds_key_the_wsu_they_train_with(monkeypatch):
    """E8's relock rounds memorize with the `wsu` section: its options are part of the lock's key
    (before the refactor they were not, so two configs differing only there shared one lock)."""
    from pwlock.config import load_config
    from pwlock.plan import planned_run_ids

    stand_ins(monkeypatch)
    monkeypatch.chdir(ROOT)
    base = planned_run_ids(load_config(ROOT / "configs/toy/e08_relock.yaml"))["lock"]
    other = planned_run_ids(load_config(ROOT / "configs/toy/e08_relock.yaml", ["wsu.steps=50"]))["lock"]
    relocked = [i for i in base if i not in other]
    assert relocked and len(relocked) == len(base) - len(set(base) & set(other))
    plain = planned_run_ids(load_config(ROOT / "configs/toy/core_v1.yaml", ["wsu.steps=50"]))["lock"]
    assert plain == json.loads(FIXTURE.read_text())["configs/toy/core_v1.yaml"]["lock"]  # no relock: unchanged
