"""Portable numerics (`pwlock.numerics`): the same bits whatever kernels the CPU would pick.

Other machines are simulated on this one: `ATEN_CPU_CAPABILITY` picks ATen's kernels (DEFAULT,
AVX2, AVX512) and `MKL_ENABLE_INSTRUCTIONS` / `ONEDNN_MAX_CPU_ISA` cap what MKL and oneDNN
dispatch to, as on a CPU without the newer instructions. Each run is a fresh process: the
libraries read these settings once, at their first use.
"""

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

import pwlock
from pwlock import numerics

pytestmark = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="x86-64 only")

SRC = str(Path(pwlock.__file__).resolve().parents[1])

# A tiny model trained a few steps, its logits, a greedy and a sampled generation: hashed.
TRAIN_AND_GENERATE = r"""
import hashlib, json, sys
from pwlock import numerics
numerics.reexec_if_needed()  # as the command line does: libm's choice is made at program start
numerics.apply_from_env()
import torch
torch.set_num_threads(1)
from pwlock.config import ArchConfig
from pwlock.models import build_model
from pwlock.sampling import generate
from pwlock.tasks.arith import ALPHABET
from pwlock.tokenizer import char_tokenizer
from pwlock.train import Example, train

tok = char_tokenizer(ALPHABET)
model = build_model(ArchConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64), tok, seed=0)
exs = [Example(f"{a}+{b}*{c}=", f"{a}+{b * c}={a + b * c};#{a + b * c}") for a in range(4) for b in range(4)
       for c in range(2)]
losses = train(model, tok, exs, steps=15, batch_size=16, lr=5e-3, progress=False)
prompts = [e.prompt for e in exs[:12]]
with torch.no_grad():
    enc = tok(prompts, padding=True, return_tensors="pt")
    logits = model(**enc).logits
h = lambda b: hashlib.sha256(b).hexdigest()[:16]
out = {
    "weights": h(b"".join(v.numpy().tobytes() for v in model.state_dict().values())),
    "losses": h(torch.tensor(losses).numpy().tobytes()),
    "logits": h(logits.numpy().tobytes()),
    "greedy": h(json.dumps(generate(model, tok, prompts, max_new_tokens=12)).encode()),
    "sampled": h(json.dumps(generate(model, tok, prompts, max_new_tokens=12, temperature=1.0, seed=1)).encode()),
    "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    "mkl_cbwr": numerics.provenance()["mkl_cbwr"],
    "libm": numerics.libm(),
}
print("RESULT " + json.dumps(out))
"""


def _flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return set(next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), []))


# what each simulated machine needs from this CPU, and the caps that make MKL and oneDNN act like it
MACHINES = {
    "avx512": ({"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx2", "fma"}, {}),
    "avx2": ({"avx2", "fma"}, {"MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}),
    "default": (set(), {"MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "ONEDNN_MAX_CPU_ISA": "SSE41",
                        "GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX2,-FMA,-FMA4"}),
}


def _machines() -> list[str]:
    have = _flags()
    return [m for m, (need, _) in MACHINES.items() if need <= have]


def _env(**extra) -> dict:
    drop = (numerics.ENV, "PWLOCK_NUMERICS_REEXEC", *numerics.PORTABLE_ENV, "GLIBC_TUNABLES", "MKL_ENABLE_INSTRUCTIONS",
            "ONEDNN_MAX_CPU_ISA")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PYTHONPATH"] = os.pathsep.join([SRC, *filter(None, [env.get("PYTHONPATH")])])
    env.update(extra)
    return env


def _run(code: str, env: dict, timeout: int = 120):
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stderr[-3000:]
    line = next(ln for ln in p.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def _on(machine: str, mode: str, *, reexec: bool = False) -> dict:
    env = _env(ATEN_CPU_CAPABILITY=machine, **MACHINES[machine][1])
    if mode == "portable":
        # started as a re-executed command line is (`portable_env`), or left to re-execute itself
        env = {**env, numerics.ENV: "portable"} if reexec else numerics.portable_env(env)
    return _run(TRAIN_AND_GENERATE, env)


@pytest.mark.slow  # ~40 s: five fresh processes (the nano E1 version is slow too)
def test_portable_mode_gives_the_same_bits_on_every_simulated_machine():
    machines = _machines()
    if len(machines) < 2:
        pytest.skip(f"this CPU runs only the {machines} kernels: nothing to compare")
    runs = {m: _on(m, "portable", reexec=i == 0) for i, m in enumerate(machines)}
    for m, r in runs.items():
        assert r["cpu_capability"] == "DEFAULT", m  # the mode overrode the inherited ATEN_CPU_CAPABILITY
        assert r["mkl_cbwr"] in ("COMPATIBLE", None) and r["libm"] in ("sse2", "unknown"), m
    keys = ("weights", "losses", "logits", "greedy", "sampled")
    first = machines[0]
    for m in machines[1:]:
        assert {k: runs[m][k] for k in keys} == {k: runs[first][k] for k in keys}, (first, m)
    # the check can fail: without the mode, two of these machines give other bits
    fast = {m: _on(m, "fast") for m in machines[:2]}
    assert fast[machines[0]]["logits"] != fast[machines[1]]["logits"]


SPAWNED = r"""
import json, multiprocessing, sys
from pwlock import numerics
numerics.apply("portable")

def child():
    numerics.apply_from_env()  # as pwlock.parallel's worker initializer does
    p = numerics.provenance()
    return {k: p[k] for k in ("numerics", "cpu_capability", "mkl_cbwr", "mkldnn", "threads", "libm")}

if __name__ == "__main__":
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        print("RESULT " + json.dumps(pool.apply(child)))
"""


def test_spawned_workers_inherit_the_mode(tmp_path):
    script = tmp_path / "spawned.py"  # spawn re-imports the main module: a file, not `-c`
    script.write_text(SPAWNED)
    p = subprocess.run([sys.executable, str(script)], env=_env(ATEN_CPU_CAPABILITY="avx2" if "avx2" in _flags()
                                                                else "default"),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(next(ln for ln in p.stdout.splitlines() if ln.startswith("RESULT "))[len("RESULT "):])
    assert r["numerics"] == "portable" and r["cpu_capability"] == "DEFAULT" and r["mkldnn"] is False
    assert r["mkl_cbwr"] in ("COMPATIBLE", None) and r["threads"] == numerics.PORTABLE_THREADS
    assert r["libm"] in ("sse2", "unknown")  # GLIBC_TUNABLES reaches a started process (the parent needs a re-exec)


TOO_LATE = r"""
import torch
from pwlock import numerics
import os
torch.ones(8, 8) @ torch.ones(8, 8)  # ATen and MKL have picked their kernels
msg = None
before = dict(os.environ)
try:
    numerics.apply("portable")
except numerics.NumericsError as e:
    msg = str(e)
    # nothing left behind: a later run in this process is not taken for a portable one
    assert dict(os.environ) == before and numerics.mode() == "fast", "apply left the environment changed"
print("RESULT " + __import__("json").dumps(msg))
"""


def test_too_late_is_an_error():
    msg = _run(TOO_LATE, _env())
    if msg is None:  # a CPU with no vector kernels and a torch without MKL: nothing was picked
        pytest.skip("nothing to detect here")
    assert "already" in msg and "PWLOCK_NUMERICS=portable" in msg


def test_mode_and_provenance(monkeypatch):
    monkeypatch.delenv(numerics.ENV, raising=False)
    assert numerics.mode() == "fast" and numerics.default_threads() == (os.cpu_count() or 1)
    monkeypatch.setenv(numerics.ENV, "portable")
    assert numerics.mode() == "portable" and numerics.default_threads() == numerics.PORTABLE_THREADS
    monkeypatch.setenv(numerics.ENV, "fastest")
    with pytest.raises(numerics.NumericsError, match="fastest"):
        numerics.mode()
    monkeypatch.delenv(numerics.ENV)
    p = numerics.provenance()
    assert p["numerics"] == "fast" and p["cpu_capability"] in ("DEFAULT", "AVX2", "AVX512", "AVX512_BF16")
    assert p["threads"] >= 1 and p["cpu"] and "blas" in p and "mkl_cbwr" in p
    json.dumps(p)  # recordable as is
