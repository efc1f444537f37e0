"""What this CPU is, in the words that decide our kernels' speed: for the bench's figures.

`describe()` reads /proc/cpuinfo (Linux) for the vendor, the model name and the instruction-set
extensions that change which path is fast here: AVX2, AVX-512, native bfloat16 (AVX512-BF16 or
AMX) and AMX's int8 tiles. The same run of `edgeagent bench` differs several-fold between an
AVX2-only EPYC and an AMX Xeon (README, Performance), so every table names the CPU it was
measured on.

Not here: choosing a kernel (`model.quant.native_bf16` asks torch, which is what runs them);
anything but Linux reports only `platform.processor()`.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

from pydantic import BaseModel

FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


class CpuInfo(BaseModel):
    vendor: str
    model: str
    logical_cores: int
    flags: list[str]  # those of FLAGS this CPU has

    @property
    def line(self) -> str:
        """One line for a table's header, e.g. "AMD EPYC 7B13 (AuthenticAMD), 2 logical
        cores: avx2; no AVX-512, no native bf16, no AMX"."""
        has = set(self.flags)
        lacks = [name for name, keys in (("AVX-512", {"avx512f"}),
                 ("native bf16", {"avx512_bf16", "amx_bf16"}), ("AMX", {"amx_tile"}))
                 if not has & keys]  # fmt: skip
        said = ", ".join(self.flags) or "no AVX2"
        return (f"{self.model} ({self.vendor}), {self.logical_cores} logical cores: {said}"
                + (f"; no {', no '.join(lacks)}" if lacks else ""))  # fmt: skip


def describe(cpuinfo: Path = Path("/proc/cpuinfo")) -> CpuInfo:
    fields: dict[str, str] = {}
    try:
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("vendor_id", "model name", "flags") and key.strip() not in fields:
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    present = set(fields.get("flags", "").split())
    return CpuInfo(
        vendor=fields.get("vendor_id", "unknown"),
        model=fields.get("model name") or platform.processor() or "unknown CPU",
        logical_cores=os.cpu_count() or 1,
        flags=[f for f in FLAGS if f in present],
    )
