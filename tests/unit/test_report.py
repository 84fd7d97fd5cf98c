import numpy as np
import pandas as pd

from pwlock.report import gap_bootstrap, summarize_core


def test_gap_bootstrap_point_and_ci():
    rng = np.random.default_rng(0)
    N = 1000
    locked_np = (rng.random(N) < 0.3).astype(np.uint8)
    locked_pwd = (rng.random(N) < 0.9).astype(np.uint8)
    # unlocked models: the locked no-pwd answers plus extra correct ones on ~20% of problems
    unlocked = np.stack([np.maximum(locked_np, (rng.random(N) < 0.2)) for _ in range(5)]).astype(np.uint8)
    out = gap_bootstrap(locked_np, locked_pwd, unlocked, n_boot=500)
    expected = (unlocked.mean() - locked_np.mean()) / (locked_pwd.mean() - locked_np.mean())
    assert abs(out["gap_recovered_mean"] - expected) < 1e-9
    lo, hi = out["gap_recovered_ci95"]
    assert lo < expected < hi and lo > 0  # a clear positive effect is detected
    same = gap_bootstrap(locked_np, locked_pwd, np.stack([locked_np] * 5), n_boot=500)
    assert same["gap_recovered_mean"] == 0.0
    assert same["gap_recovered_ci95"][0] <= 0 <= same["gap_recovered_ci95"][1]


def test_summarize_core_columns():
    bits = lambda p: "".join("1" if i < p * 10 else "0" for i in range(10))  # noqa: E731
    rows = [
        dict(model="strong", lock_epoch=None, attack="none", seed=None, password=False, accuracy=0.9, correct=bits(.9)),
        dict(model="weak", lock_epoch=None, attack="none", seed=None, password=False, accuracy=0.3, correct=bits(.3)),
        dict(model="locked", lock_epoch=1, attack="none", seed=None, password=False, accuracy=0.3, correct=bits(.3)),
        dict(model="locked", lock_epoch=1, attack="none", seed=None, password=True, accuracy=0.8, correct=bits(.8)),
        dict(model="locked", lock_epoch=1, attack="wsu", seed=0, password=False, accuracy=0.4, correct=bits(.4)),
        dict(model="locked", lock_epoch=1, attack="wsu", seed=1, password=False, accuracy=0.5, correct=bits(.5)),
    ]
    s = summarize_core(pd.DataFrame(rows), "weak", "strong")["1"]
    assert s["acc_locked_nopwd"] == 0.3 and s["acc_locked_pwd"] == 0.8
    assert s["acc_weak"] == 0.3 and s["acc_strong"] == 0.9
    assert abs(s["acc_unlocked_mean"] - 0.45) < 1e-9
    assert abs(s["gap_recovered_mean"] - 0.3) < 1e-9


def test_outputs_written_at_once_by_several_writers_never_collide(tmp_path):
    """Two processes finishing the same experiment write its results.csv and figure at the same
    moment (tests/integration/test_resume.py); each writer needs its own temporary file, or one
    renames the other's away (FileNotFoundError). Threads here: they interleave the same way."""
    import threading

    from matplotlib.figure import Figure

    from pwlock.report import _save_figure, write_results_csv
    from pwlock.utils import atomic_write_text

    row = {"experiment": "x", "model": "strong", "lock_epoch": None, "attack": "none", "seed": None,
           "password": False, "n_test": 4000, "accuracy": 0.5, "correct": "01" * 2000, "run": "eval/x"}
    errors, barrier = [], threading.Barrier(4)

    def writer(i: int):
        try:
            barrier.wait()
            for _ in range(15):
                write_results_csv([row] * 20, tmp_path)
                atomic_write_text(tmp_path / "summary.json", "{}" * 10000)
                fig = Figure()
                fig.add_subplot().plot(range(100))
                _save_figure(fig, tmp_path / "fig.png")
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.png", "per_problem.jsonl", "results.csv", "summary.json"]
    assert len(pd.read_csv(tmp_path / "results.csv")) == 20


def test_t_quantile_matches_published_table_values():
    from pwlock.report import t_quantile

    # two-sided 95% critical values of Student's t (any statistics table)
    for df, t in ((1, 12.7062), (2, 4.3027), (4, 2.7764), (9, 2.2622), (30, 2.0423), (1000, 1.9623)):
        assert abs(t_quantile(0.975, df) - t) < 1e-3, df
    assert abs(t_quantile(0.95, 5) - 2.0150) < 1e-3


def test_organisms_interval_is_a_t_interval_over_organisms():
    import pytest

    from pwlock.report import organisms_interval

    vals = [0.071, 0.228, 0.073, 0.108, 0.125]
    out = organisms_interval(vals)
    m, sd = np.mean(vals), np.std(vals, ddof=1)
    assert abs(out["gap_recovered_mean"] - m) < 1e-12 and out["n_organisms"] == 5
    lo, hi = out["gap_recovered_ci95"]
    assert abs(hi - m - 2.7764 * sd / np.sqrt(5)) < 1e-4 and abs((m - lo) - (hi - m)) < 1e-12
    # organisms that disagree: the interval spans zero though each one is far from it
    lo, hi = organisms_interval([0.3, -0.3, 0.25, -0.2])["gap_recovered_ci95"]
    assert lo < 0 < hi
    assert organisms_interval([0.1, float("nan"), 0.2, 0.15])["n_organisms"] == 3  # no gap: left out
    with pytest.raises(ValueError, match=">= 2 organisms"):
        organisms_interval([0.1, float("nan")])


def test_per_problem_file_keeps_each_rows_answers(tmp_path):
    from pwlock.report import read_per_problem, write_results_csv

    rows = [{"experiment": "x", "model": "locked", "lock_epoch": 1, "attack": "wsu", "seed": s, "password": False,
             "n_test": 4, "accuracy": acc, "correct": bits, "run": f"wsu/r{s}"}
            for s, (acc, bits) in enumerate([(0.5, "0110"), (0.25, "0001")])]
    write_results_csv(rows, tmp_path)
    back = read_per_problem(tmp_path)
    assert list(back.correct) == ["0110", "0001"]  # strings, leading zeros kept
    assert list(back.run) == list(pd.read_csv(tmp_path / "results.csv").run)  # same rows, same order
    import pytest

    with pytest.raises(FileNotFoundError, match="per_problem.jsonl not found"):
        read_per_problem(tmp_path / "nothing")


def test_a_failed_write_names_the_file_and_leaves_nothing(tmp_path, monkeypatch):
    import errno
    import pathlib

    import pytest

    from pwlock.utils import atomic_write_text

    def refuse(self, *a, **k):  # e.g. EACCES on creating the temporary file: its name is in the error
        open(self, "w").close()
        raise OSError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(pathlib.Path, "write_text", refuse)
    with pytest.raises(OSError) as e:
        atomic_write_text(tmp_path / "summary.json", "{}")
    assert e.value.filename == str(tmp_path / "summary.json") and e.value.errno == errno.EACCES
    assert list(tmp_path.iterdir()) == []
