"""Our C++ CPU kernels for decoding: compiled on this machine at first use, kept in the cache,
loaded as torch ops (`torch.ops.edgeagent.*`).

`model/native.cpp` holds them: `int8_linear` and `int4_linear` (weights in blocks that each
thread reads as one stream, float32 activations; `model.quant`) and a decode step's small ops,
`rms_norm`, `silu_mul` and `decode_attention` (`model.fast`). It is built with `-march=native`,
so it uses what this CPU has (AVX-512, AVX2, or plain C++) without a dispatcher of ours; the
file's name keys the source, torch's version and the CPU's flags, so another CPU or torch
builds anew. Building takes about 8 s on 2 cores, once per machine (`edgeagent model prepare`
does it with the rest); the loader asks for it with quantized weights only (the CPU default).
It needs a C++ compiler (g++, or $CXX) and torch's headers, which the CPU wheel ships; where
either is missing or the build fails, `load` returns False, says why through `progress`, and
everything keeps torch's ops, slower but the same numbers up to the order of additions.
$EDGEAGENT_NATIVE=0 turns the kernels off (to compare, or to rule them out);
$EDGEAGENT_NATIVE_MARCH builds them for another target than this CPU's own (`x86-64-v3`:
AVX2 without AVX-512, to measure what such a CPU gets on one that has more).

Not here: building anything at install time (the wheel stays pure Python), GPU kernels.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("native.cpp")
_loaded: list[bool] = []  # once tried: whether it worked
_lock = threading.Lock()


def ready() -> bool:
    """Whether `torch.ops.edgeagent.*` are loaded in this process."""
    return bool(_loaded and _loaded[0])


def load(cache: Path, progress: Callable[[str], None] | None = None) -> bool:
    """Builds the kernels into `cache`/native if this machine has no build yet, then loads
    them; False (and why, to `progress`) where they cannot be had."""
    with _lock:  # two threads loading models at once build and register once
        if not _loaded:
            _loaded.append(_load(cache, progress))
        return _loaded[0]


def _load(cache: Path, progress: Callable[[str], None] | None) -> bool:
    ok = False
    if os.environ.get("EDGEAGENT_NATIVE", "1") == "0":
        _say(progress, "native kernels off ($EDGEAGENT_NATIVE=0): torch's ops")
    else:
        try:
            torch.ops.load_library(str(_built(cache, progress)))
            ok = True
        except (OSError, RuntimeError, subprocess.SubprocessError) as e:
            _say(progress, f"native kernels unavailable ({_first_line(e)}): torch's ops")
    return ok


def _built(cache: Path, progress: Callable[[str], None] | None) -> Path:
    name = os.environ.get("CXX")
    compiler = shutil.which(name) if name else shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        raise OSError(f"no C++ compiler {name or 'g++'}: install one, or set $CXX")
    path = cache / "native" / f"native-{_key(compiler)}.so"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    _say(progress, "building our kernels for this CPU (once, about 10 s)")
    partial = path.with_suffix(f".{os.getpid()}.partial")
    try:
        subprocess.run(
            [compiler, str(SOURCE), *_flags(), "-o", str(partial)],  # libraries after the source
            check=True, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        partial.replace(path)  # a build killed halfway leaves no file that looks done
    finally:
        partial.unlink(missing_ok=True)  # a failed one leaves nothing
    return path


def _flags() -> list[str]:
    torch_dir = Path(torch.__file__).parent
    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    target = os.environ.get("EDGEAGENT_NATIVE_MARCH") or "native"
    return [
        "-O3", f"-march={target}", "-fopenmp", "-fno-math-errno", "-std=c++17",
        "-shared", "-fPIC", "-w",
        f"-D_GLIBCXX_USE_CXX11_ABI={abi}",
        f"-I{torch_dir / 'include'}",
        f"-L{torch_dir / 'lib'}", "-lc10", "-ltorch_cpu", f"-Wl,-rpath,{torch_dir / 'lib'}",
    ]  # fmt: skip


def _key(compiler: str) -> str:
    """Source, torch, compiler and CPU: what the built file depends on."""
    flags = ""
    if Path("/proc/cpuinfo").is_file():
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        flags = next((line for line in lines if line.startswith("flags")), "")
    parts = [SOURCE.read_text(), torch.__version__, compiler, " ".join(_flags()), flags]
    parts.append(torch.backends.cpu.get_cpu_capability())
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _first_line(e: BaseException) -> str:
    """The line that says what went wrong: a compiler's first error, else the first line."""
    lines = [line for line in (getattr(e, "stderr", None) or str(e)).splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line]
    return (errors or lines or [type(e).__name__])[0][:200]


def _say(progress: Callable[[str], None] | None, text: str) -> None:
    if progress is not None:
        progress(text)
