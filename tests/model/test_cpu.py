"""The CPU line the bench prints: vendor, model and the extensions that decide our kernels."""

from __future__ import annotations

from pathlib import Path

from model.cpu import describe

AVX2_EPYC = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse sse2 avx avx2 fma
processor\t: 1
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse sse2 avx avx2 fma
"""
AMX_XEON = """vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8481C
flags\t\t: avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8
"""


def test_an_avx2_only_cpu_says_what_it_lacks(tmp_path: Path) -> None:
    (tmp_path / "cpuinfo").write_text(AVX2_EPYC)
    cpu = describe(tmp_path / "cpuinfo")
    assert (cpu.vendor, cpu.model, cpu.flags) == ("AuthenticAMD", "AMD EPYC 7B13", ["avx2"])
    assert cpu.line.endswith("avx2; no AVX-512, no native bf16, no AMX")


def test_an_amx_cpu_lists_its_extensions(tmp_path: Path) -> None:
    (tmp_path / "cpuinfo").write_text(AMX_XEON)
    cpu = describe(tmp_path / "cpuinfo")
    assert cpu.flags == ["avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"]
    assert "no " not in cpu.line.split(":", 1)[1]


def test_no_cpuinfo_still_describes_something(tmp_path: Path) -> None:
    cpu = describe(tmp_path / "missing")
    assert cpu.model and cpu.logical_cores >= 1 and cpu.flags == []
