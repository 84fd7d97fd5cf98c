"""CPU numerics modes: `fast` (PyTorch's defaults) or `portable` (the same bits on any x86-64 CPU).

The same seed gives other bits on another machine because the libraries pick their code paths
from the CPU they run on. Portable mode pins each choice to one that every x86-64 CPU can run:

- ATen's kernels (softmax, log-softmax / cross-entropy, SiLU, RMSNorm's reductions, SDPA,
  AdamW, `torch.randn`'s normal sampler, ...) come in DEFAULT, AVX2 and AVX512 builds, picked by
  `torch.backends.cpu.get_cpu_capability()`: `ATEN_CPU_CAPABILITY=default` forces the DEFAULT
  build, compiled for the x86-64 baseline (SSE2).
- MKL (the BLAS of the PyPI wheel: every fp32 matmul, and the vector math ATen hands to MKL's
  VML: `exp`, `log`, `sin`, `cos`, `tanh`, `sqrt` of a tensor) dispatches on the CPU too:
  `MKL_CBWR=COMPATIBLE` fixes its code branch to SSE2 without the rcpps/rsqrtps approximations,
  the one branch MKL documents as reproducible on Intel and non-Intel CPUs alike. MKL's other
  conditions for reproducible results: a fixed thread team (`MKL_DYNAMIC`, `OMP_DYNAMIC` off).
- oneDNN (mkldnn), used for bf16/fp16 matmuls (not for fp32 ones), JITs for the CPU's ISA (AMX,
  AVX512-BF16): `torch.backends.mkldnn.enabled = False` keeps ATen off it.
- glibc's libm (`expf`, `sinf`, `cosf` inside ATen's DEFAULT kernels; `math.exp`, `math.cos`
  in Python, e.g. the cosine lr schedule) has FMA variants chosen at program load on CPUs with
  FMA and AVX2; they differ from the SSE2 ones in the last bit for a few inputs (`expf`: 2 of
  the 2^32 floats, `sinf` 12, `cosf` 22; double `exp`/`cos`: ~0.07% of lr-schedule arguments).
  `GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX2,-FMA,-FMA4` selects the SSE2 ones, but the dynamic
  loader reads it when the program starts: it reaches the processes this one starts, and this
  process only through a re-exec (`reexec_if_needed`, done by the command line).
- The thread count: ATen splits reductions into one chunk per thread, and MKL's reproducibility
  holds for a fixed count. Portable mode uses a fixed count (`default_threads()`: 1 unless a
  caller asks for another, never the machine's core count). Any fixed count is portable (a nano
  E1 at `threads: 2` gives the same bits under every CPU capability, other bits than at 1), so
  the config's `threads` is part of portable run keys when it is not 1; workers use 1.

The environment variables of ATen and MKL are read at their first use (ATen's first kernel
dispatch, MKL's first call), not at `import torch`: `apply("portable")` works in a process that
has imported torch but run no tensor op yet (importing pwlock runs none), and raises
`NumericsError` when it is too late. It sets them in `os.environ`, which processes started later
inherit (multiprocessing spawn workers, subprocesses, torchrun ranks); torch's own settings are
per process, so each worker applies the mode again (`apply_from_env`, in `pwlock.parallel`'s
worker initializer).

What stays machine-specific: the software (another torch, MKL or glibc build changes the bits;
this mode makes CPUs agree, not library versions), and CUDA (not covered).
"""

from __future__ import annotations

import ctypes
import math
import os
import platform
import sys

MODES = ("fast", "portable")
ENV = "PWLOCK_NUMERICS"  # the mode of this process and of the processes it starts
_REEXEC = "PWLOCK_NUMERICS_REEXEC"  # set in a process re-executed by `reexec_if_needed` (no second re-exec)

# Read by ATen and MKL at their first use (not at import): set before the first tensor op.
PORTABLE_ENV = {
    "ATEN_CPU_CAPABILITY": "default",  # ATen's non-vectorized kernels (no AVX2 / AVX512 dispatch)
    "MKL_CBWR": "COMPATIBLE",  # MKL's SSE2 branch, no rcpps/rsqrtps: the same on any x86-64 CPU
    "MKL_DYNAMIC": "FALSE",  # MKL's reproducibility conditions: a fixed thread team
    "OMP_DYNAMIC": "FALSE",
}
# Read by the dynamic loader when a program starts: libm's SSE2 variants, not the FMA/FMA4 ones.
GLIBC_HWCAPS = "glibc.cpu.hwcaps=-AVX2,-FMA,-FMA4"
PORTABLE_THREADS = 1  # the thread count when none is asked for: results depend on it, not on the cores

# mkl_cbwr_get(MKL_CBWR_BRANCH) results (mkl_service.h)
_MKL_CBWR_BRANCH = 1
_MKL_BRANCHES = {0: "OFF", 1: "OFF", 2: "AUTO", 3: "COMPATIBLE", 4: "SSE2", 6: "SSSE3", 7: "SSE4_1", 8: "SSE4_2",
                 9: "AVX", 10: "AVX2", 11: "AVX512_MIC", 12: "AVX512", 13: "AVX512_MIC_E1", 14: "AVX512_E1"}


class NumericsError(ValueError):
    """The numerics mode cannot be applied to this process (too late, or not on this CPU)."""


def mode() -> str:
    """This process's mode: `$PWLOCK_NUMERICS` (set by `apply`), else `fast`."""
    m = os.environ.get(ENV) or "fast"
    if m not in MODES:
        raise NumericsError(f"{ENV}={m!r}: use one of {', '.join(MODES)}")
    return m


def default_threads() -> int:
    """The thread count of a process that was not given one: every core in `fast` mode, a fixed
    count in `portable` mode (so that the bits do not depend on the machine's cores)."""
    return PORTABLE_THREADS if mode() == "portable" else (os.cpu_count() or 1)


def _is_x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64")


def _tunables(current: str | None) -> str:
    """GLIBC_TUNABLES with the portable libm selection added to what is there."""
    if not current:
        return GLIBC_HWCAPS
    return current if GLIBC_HWCAPS in current.split(":") else f"{current}:{GLIBC_HWCAPS}"


def portable_env(env: dict | None = None) -> dict:
    """`env` (default: `os.environ`) with the portable settings: the environment to start a
    portable process with (e.g. a subprocess, or a job script)."""
    out = dict(os.environ if env is None else env)
    out.update(PORTABLE_ENV)
    out["GLIBC_TUNABLES"] = _tunables(out.get("GLIBC_TUNABLES"))
    out[ENV] = "portable"
    return out


def _started_with_glibc_hwcaps() -> bool | None:
    """Whether this process started with the portable GLIBC_TUNABLES (None: cannot tell)."""
    try:
        with open("/proc/self/environ", "rb") as f:
            start = f.read().split(b"\0")
    except OSError:
        return None
    for kv in start:
        if kv.startswith(b"GLIBC_TUNABLES="):
            return GLIBC_HWCAPS in kv[len(b"GLIBC_TUNABLES="):].decode(errors="replace").split(":")
    return False


def libm() -> str:
    """Which variant of glibc's libm this process runs: `sse2` (the portable one), `fma`, or
    `unknown` (another libm, or a glibc whose results this probe does not know). The probe is an
    input whose `exp` differs in the last bit between glibc 2.36's two variants."""
    y = math.exp(-(3 / 35) * 7.0).hex()
    return {"0x1.18fdd6b9604e4p-1": "sse2", "0x1.18fdd6b9604e3p-1": "fma"}.get(y, "unknown")


def reexec_if_needed() -> None:
    """In portable mode, start this program again (same pid, same arguments) when it was not
    started with the portable libm selection (`GLIBC_TUNABLES`, read only at program start).
    Only for a process's own command line: never call it from a library or under pytest."""
    if mode() != "portable" or os.environ.get(_REEXEC) or not _is_x86():
        return
    if _started_with_glibc_hwcaps() is not False:
        return
    env = portable_env()
    env[_REEXEC] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, sys.orig_argv, env)


def _mkl():
    """ctypes handle on the MKL linked into torch (the PyPI wheel links it statically into
    libtorch_cpu), or None."""
    import torch

    if not torch.backends.mkl.is_available():
        return None
    try:
        lib = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so"))
        get = lib.mkl_serv_cbwr_get
    except (OSError, AttributeError):
        return None
    get.argtypes, get.restype = [ctypes.c_int], ctypes.c_int
    return lib


def _mkl_branch() -> str | None:
    """MKL's code branch in this process (OFF, COMPATIBLE, AVX2, ...), None when unknown. The
    first call fixes it: call it after MKL_CBWR is set."""
    lib = _mkl()
    if lib is None:
        return None
    b = lib.mkl_serv_cbwr_get(_MKL_CBWR_BRANCH)
    return _MKL_BRANCHES.get(b, str(b))


def apply(m: str = "portable", *, threads: int | None = None) -> None:
    """Apply numerics mode `m` to this process and, through `os.environ`, to the processes it
    starts. `fast` changes nothing. `portable`: see the module's docstring; `threads` sets
    torch's thread count (default `PORTABLE_THREADS`; `pwlock.context.Context` sets its own).

    Raises `NumericsError` when torch already ran a tensor op with other settings (ATen and MKL
    read them once): start the process with `PWLOCK_NUMERICS=portable` and call this first."""
    if m not in MODES:
        raise NumericsError(f"numerics mode {m!r}: use one of {', '.join(MODES)}")
    if m == "fast":
        os.environ[ENV] = m
        return
    if not _is_x86():
        raise NumericsError(f"numerics=portable is defined for x86-64 CPUs, not {platform.machine()}")
    before = dict(os.environ)
    os.environ.update(portable_env())  # every variable: the processes this one starts inherit them
    try:
        _check_portable_applies()
    except NumericsError:
        os.environ.clear()  # a mode that was not applied leaves nothing behind (a later run is not "portable")
        os.environ.update(before)
        raise
    import torch

    torch.backends.mkldnn.enabled = False
    torch.set_num_threads(threads or PORTABLE_THREADS)


def _check_portable_applies() -> None:
    """NumericsError unless ATen and MKL of this process run their portable code paths."""
    import torch

    cap = torch.backends.cpu.get_cpu_capability()  # computed now from the environment, unless it already was
    if cap != "DEFAULT":
        raise NumericsError(f"numerics=portable: ATen already picked its {cap} kernels in this process (a "
                            f"tensor op ran before the mode was applied); apply it first, or start the process "
                            f"with {ENV}=portable")
    branch = _mkl_branch()
    if branch not in (None, "COMPATIBLE"):
        raise NumericsError(f"numerics=portable: MKL already runs its {branch} code branch in this process (a "
                            f"matmul ran before the mode was applied); apply it first, or start the process "
                            f"with {ENV}=portable")


def apply_from_env() -> None:
    """Apply `$PWLOCK_NUMERICS` (if set) to this process: at the start of the command line and
    of each worker process (which inherits the variables, not torch's per-process settings)."""
    if os.environ.get(ENV):
        apply(mode())


def _cpuinfo(key: str) -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def blas() -> str:
    """The BLAS torch was built with (`BLAS_INFO` of `torch.__config__.show()`), with MKL's version."""
    import torch

    info = torch.__config__.show()
    name = next((p.split("=", 1)[1] for p in info.replace(",", " ").split() if p.startswith("BLAS_INFO=")), "unknown")
    lib = _mkl() if name == "mkl" else None
    if lib is not None:
        buf = ctypes.create_string_buffer(256)
        lib.MKL_Get_Version_String(buf, len(buf))
        return buf.value.decode(errors="replace")
    return name


def provenance() -> dict:
    """What decides this process's CPU bits, to record next to results. (In a process that has
    not applied its mode yet, call it after `apply`: it fixes ATen's and MKL's choices.)"""
    import torch

    flags = set((_cpuinfo("flags") or "").split())
    return {
        "numerics": mode(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "blas": blas(),
        "mkl_cbwr": _mkl_branch(),
        "mkldnn": bool(torch.backends.mkldnn.enabled),
        "libm": libm(),
        "threads": torch.get_num_threads(),
        "cpu": _cpuinfo("model name") or platform.processor() or platform.machine(),
        "cpu_flags": [x for x in ("sse4_2", "avx", "fma", "avx2", "avx512f", "avx512_bf16", "amx_bf16") if x in flags],
        "torch": torch.__version__,
        "glibc": "-".join(platform.libc_ver()),
        "env": {k: os.environ[k] for k in (*PORTABLE_ENV, "GLIBC_TUNABLES", "MKL_ENABLE_INSTRUCTIONS",
                                           "ONEDNN_MAX_CPU_ISA", "OMP_NUM_THREADS") if k in os.environ},
    }
