"""`executor: ray` on a local Ray cluster: the nano E1 gives the local executor's results.csv to
the byte, every run is computed once (the journal), and a second run computes nothing. Slow
(Ray's start-up on 2 cores); `pytest -m slow tests/integration/test_ray.py`."""

import json

import pytest
from nano import NANO, ZOO

from pwlock.cli import main

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow


def _finished(runs) -> list[str]:
    """The runs each `finish` line of the journal names (a run computed twice appears twice)."""
    return [x.split()[3] for x in (runs / "journal.log").read_text().splitlines() if x.split()[2] == "finish"]


def test_ray_matches_local(tmp_path):
    cfg = tmp_path / "nano.yaml"
    cfg.write_text(ZOO)
    base = ["run", str(cfg), *NANO]
    assert main([*base, f"runs_dir={tmp_path / 'local'}", f"out_dir={tmp_path / 'a'}"]) == 0
    try:
        assert main([*base, f"runs_dir={tmp_path / 'ray'}", f"out_dir={tmp_path / 'b'}", "--executor", "ray"]) == 0
        a, b = ((tmp_path / d / "results.csv").read_bytes() for d in "ab")
        assert a == b
        journal = (tmp_path / "ray" / "journal.log").read_text()
        done = _finished(tmp_path / "ray")
        assert done and len(done) == len(set(done)) and sorted(done) == sorted(_finished(tmp_path / "local"))
        assert main([*base, f"runs_dir={tmp_path / 'ray'}", f"out_dir={tmp_path / 'b'}", "--executor", "ray"]) == 0
        assert (tmp_path / "ray" / "journal.log").read_text() == journal
    finally:
        ray.shutdown()


def test_ray_worker_killed_mid_job(tmp_path):
    """SIGKILL a Ray worker while it runs a job after the lock: Ray retries the task, the
    unfinished run is wiped and computed again, and results.csv is the local executor's."""
    import os
    import signal
    import threading
    import time

    import psutil

    cfg = tmp_path / "nano.yaml"
    cfg.write_text(ZOO)
    base = ["run", str(cfg), *NANO]
    assert main([*base, f"runs_dir={tmp_path / 'local'}", f"out_dir={tmp_path / 'a'}"]) == 0
    runs, stop, killed = tmp_path / "ray", threading.Event(), []

    def kill_one_task_after_the_lock():
        while not stop.is_set() and not killed:
            j = runs / "journal.log"
            if j.is_file() and " finish lock/" in j.read_text():
                for p in psutil.process_iter(["pid", "cmdline"]):
                    if any("ray::_task" in c for c in (p.info["cmdline"] or [])):
                        os.kill(p.info["pid"], signal.SIGKILL)
                        killed.append(p.info["pid"])
                        break
            time.sleep(0.2)

    t = threading.Thread(target=kill_one_task_after_the_lock, daemon=True)
    t.start()
    try:
        assert main([*base, f"runs_dir={runs}", f"out_dir={tmp_path / 'b'}", "--executor", "ray"]) == 0
    finally:
        stop.set()
        t.join()
        ray.shutdown()
    assert killed, "no Ray task was running after the lock to kill"
    assert (tmp_path / "a" / "results.csv").read_bytes() == (tmp_path / "b" / "results.csv").read_bytes()
    done = _finished(runs)
    assert len(done) == len(set(done))


def test_ray_portable_numerics_match_local(tmp_path):
    """`numerics: portable` on Ray: the tasks' worker processes start with portable's variables
    (runtime_env) and apply them, so the nano E1 gives the local executor's portable results.csv
    byte for byte. Separate processes: portable mode must be applied before torch's first op."""
    import os
    import subprocess
    import sys

    cfg = tmp_path / "nano.yaml"
    cfg.write_text(ZOO)
    base = [sys.executable, "-m", "pwlock.cli", "run", str(cfg), *NANO, "numerics=portable"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PWLOCK_", "ATEN_", "MKL_", "OMP_"))}
    for name, extra in (("a", []), ("b", ["--executor", "ray"])):
        res = subprocess.run([*base, f"runs_dir={tmp_path / ('runs-' + name)}", f"out_dir={tmp_path / name}", *extra],
                             env=env, capture_output=True, text=True, timeout=900, check=False)
        assert res.returncode == 0, res.stderr[-3000:]
    assert (tmp_path / "a" / "results.csv").read_bytes() == (tmp_path / "b" / "results.csv").read_bytes()
    infos = [json.loads(p.read_text()) for p in (tmp_path / "runs-b").glob("*/*/run.json")]
    assert infos  # every run, computed in a Ray worker, under portable's settings (what run.json records)
    for i in infos:
        assert i["numerics"]["numerics"] == "portable" and i["numerics"]["cpu_capability"] == "DEFAULT", i["name"]
        assert i["numerics"]["mkl_cbwr"] in ("COMPATIBLE", None), i["name"]
