"""The nano E1 in `numerics: portable` under ATEN_CPU_CAPABILITY=avx512, avx2 and default (other
machines' kernels, simulated here; MKL capped to AVX2 as on an older CPU): byte-identical
results.csv. A capability this CPU lacks is skipped. In fast mode they differ (checked too, so
the test can fail). And against another machine for real: tests/fixtures/portable_nano_e1.json
holds the digest of the portable nano E1 as computed on the CPU it names (record it with
`python tests/integration/test_portable_e1.py --record`)."""

import hashlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
from nano import NANO, ZOO

pytestmark = [pytest.mark.slow,  # 5 nano E1 runs, ~2 min
              pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="x86-64 only")]

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "portable_nano_e1.json"
MACHINES = {"native": {},
            "avx512": {"ATEN_CPU_CAPABILITY": "avx512"},
            "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
            "default": {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}}


def _flags() -> set[str]:
    try:
        return set(next(x for x in Path("/proc/cpuinfo").read_text().splitlines() if x.startswith("flags")).split())
    except (OSError, StopIteration):
        return set()


def e1(tmp_path, name: str, numerics: str, threads: int = 1) -> str:
    cfg = tmp_path / "nano.yaml"
    cfg.write_text(ZOO)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PWLOCK_NUMERICS", "ATEN_", "MKL_"))}
    env.update(MACHINES[name])
    out = tmp_path / f"{numerics}-{name}-t{threads}"
    nano = [x for x in NANO if not x.startswith("threads=")]
    cmd = [sys.executable, "-m", "pwlock.cli", "run", str(cfg), *nano, f"threads={threads}", "lock.epochs=1",
           "wsu.seeds=2",
           f"numerics={numerics}", f"runs_dir={out / 'runs'}", f"out_dir={out / 'results'}"]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    return hashlib.sha256((out / "results" / "per_problem.jsonl").read_bytes()).hexdigest()


def test_portable_e1_is_the_same_on_every_simulated_machine(tmp_path):
    names = ["avx2", "default"] + (["avx512"] if "avx512f" in _flags() else [])
    if "avx2" not in _flags():
        pytest.skip("this CPU has no AVX2")
    portable = {n: e1(tmp_path, n, "portable") for n in names}
    assert len(set(portable.values())) == 1, portable
    fast = {n: e1(tmp_path, n, "fast") for n in ("avx2", "default")}
    assert len(set(fast.values())) == 2, "fast mode gave the same bits: the simulation simulates nothing"


def test_portable_with_two_threads_is_portable_too(tmp_path):
    """A fixed thread count other than 1 (the main process's: strong model, lock) is portable as
    well, and gives other bits than 1 thread (which is why it is in the run key)."""
    if "avx2" not in _flags():
        pytest.skip("this CPU has no AVX2")
    two = {n: e1(tmp_path, n, "portable", threads=2) for n in ("avx2", "default")}
    assert len(set(two.values())) == 1, two
    assert e1(tmp_path, "avx2", "portable", threads=1) != two["avx2"]


def _software() -> dict:
    import torch

    return {"torch": torch.__version__, "glibc": platform.libc_ver()[1], "python": platform.python_version()}


def _cpu() -> str:
    try:
        return next(x.split(":", 1)[1].strip() for x in Path("/proc/cpuinfo").read_text().splitlines()
                    if x.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def test_portable_e1_matches_the_digest_recorded_on_another_machine(tmp_path):
    """A real cross-machine check (the simulated ones above run one CPU's vendor): the digest recorded
    on the machine the fixture names. The same software is needed (another torch or glibc build
    computes other bits by design): skipped otherwise."""
    rec = json.loads(FIXTURE.read_text())
    if {k: rec[k] for k in _software()} != _software():
        pytest.skip(f"recorded with {', '.join(f'{k} {rec[k]}' for k in _software())}; this machine differs")
    got = e1(tmp_path, "native", "portable")
    assert got == rec["sha256"], f"portable bits differ from those recorded on {rec['cpu']} (this CPU: {_cpu()})"


if __name__ == "__main__" and "--record" in sys.argv:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        digest = e1(Path(d), "native", "portable")
    FIXTURE.write_text(json.dumps({"sha256": digest, "cpu": _cpu(), **_software()}, indent=1) + "\n")
    print(f"wrote {FIXTURE}: {digest} on {_cpu()}")
