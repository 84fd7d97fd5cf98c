"""Reliability end to end: SIGKILL at random moments then resume gives the results of an
uninterrupted run, bit for bit; two processes on the same experiment never compute a run twice.

The default suite kills 3 times; `make test-slow` runs the 20-kill version.
"""

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from nano import NANO, ZOO  # tests/integration/nano.py (pytest puts this folder on sys.path)


def command(tmp_path: Path, runs: str, out: str) -> list[str]:
    cfg = tmp_path / "nano.yaml"
    cfg.write_text(ZOO)
    return [sys.executable, "-m", "pwlock.cli", "run", str(cfg), *NANO,
            f"runs_dir={tmp_path / runs}", f"out_dir={tmp_path / out}"]


def env() -> dict:
    return {**os.environ, "PYTHONHASHSEED": "0", "TQDM_DISABLE": "1"}


def run_to_end(cmd) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, capture_output=True, text=True, env=env(), timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    return res


def kill_and_resume(tmp_path: Path, n_kills: int, seed: int):
    ref_cmd = command(tmp_path, "runs_ref", "out_ref")
    t0 = time.time()
    run_to_end(ref_cmd)
    t_full = time.time() - t0
    reference = (tmp_path / "out_ref" / "results.csv").read_bytes()

    cmd = command(tmp_path, "runs", "out")
    rng = random.Random(seed)
    kills = completed = 0
    while kills < n_kills:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env(),
                                start_new_session=True)
        try:
            proc.wait(timeout=rng.uniform(1.0, t_full))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the run and its worker processes, no clean-up
            proc.wait()
            kills += 1
            continue
        # it finished before its kill time: check it, then start over from nothing so that every
        # one of the n_kills kills lands in a run that still has work to do
        assert proc.returncode == 0
        assert (tmp_path / "out" / "results.csv").read_bytes() == reference
        completed += 1
        shutil.rmtree(tmp_path / "runs")
        shutil.rmtree(tmp_path / "out")
    run_to_end(cmd)
    assert (tmp_path / "out" / "results.csv").read_bytes() == reference
    # and a rerun of the finished experiment recomputes nothing
    n_lines = len((tmp_path / "runs" / "journal.log").read_text().splitlines())
    run_to_end(cmd)
    assert len((tmp_path / "runs" / "journal.log").read_text().splitlines()) == n_lines


def test_kill_and_resume_gives_identical_results(tmp_path):
    kill_and_resume(tmp_path, n_kills=3, seed=0)


@pytest.mark.slow
def test_kill_and_resume_20_times(tmp_path):
    kill_and_resume(tmp_path, n_kills=20, seed=1)


def test_two_processes_on_one_experiment(tmp_path):
    cmd = command(tmp_path, "runs", "out")
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
             for _ in range(2)]
    logs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e[-2000:] for _, e in logs]
    journal = (tmp_path / "runs" / "journal.log").read_text().splitlines()
    started = [line.split()[-1] for line in journal if " start " in line]
    pids = {line.split()[1] for line in journal}
    assert len(started) == len(set(started)), "a run was computed twice"
    groups = [line.split(" group-start ")[1] for line in journal if " group-start " in line]
    assert groups and len(groups) == len(set(groups)), "a WSU group was trained twice"
    assert len(pids) >= 2  # both processes did part of the work (or its workers did)
    assert len(started) == len(list((tmp_path / "runs").rglob("run.json")))


def _children(pid: int) -> set[int]:
    kids = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids |= {int(x) for x in (task / "children").read_text().split()}
        except OSError:
            pass
    return kids


def _workers(pid: int) -> set[int]:
    """The multiprocessing (spawn) workers among the children of `pid`."""
    out = set()
    for c in _children(pid):
        try:
            if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes():
                out.add(c)
        except OSError:  # already gone
            pass
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"  # not a zombie
    except OSError:
        return False


@pytest.mark.skipif(not Path(f"/proc/self/task/{os.getpid()}/children").is_file(),
                    reason="needs Linux /proc/<pid>/task/<tid>/children")
def test_workers_end_when_the_run_is_terminated(tmp_path):
    """SIGTERM to `pwlock run` alone (a scheduler's time limit, `timeout`): its worker processes
    must not linger (they would wait forever on their task queue, holding their memory)."""
    proc = subprocess.Popen(command(tmp_path, "runs", "out"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=env())
    workers: set[int] = set()
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            workers = _workers(proc.pid)
            if len(workers) >= 2:
                break
            time.sleep(0.2)
        assert len(workers) >= 2, "the run never started its worker processes"
        time.sleep(1.0)  # let them get into their work
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        deadline = time.time() + 30
        while time.time() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.2)
        assert not any(_alive(w) for w in workers), "worker processes outlived the terminated run"
    finally:
        proc.kill()
        for w in workers:
            if _alive(w):
                os.kill(w, signal.SIGKILL)
