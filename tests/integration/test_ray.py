"""`executor: ray` on a local Ray cluster: the nano E1 gives the local executor's results.csv to
the byte, every run is computed once (the journal), and a second run computes nothing. Slow
(Ray's start-up on 2 cores); `pytest -m slow tests/integration/test_ray.py`."""

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
