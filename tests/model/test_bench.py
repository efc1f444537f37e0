"""`edgeagent bench`: variants, references, and a real run of worker processes on a tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest

from model import bench
from model.bench_worker import weight_bytes
from model.quant import quantize
from model.tiny import tiny_model
from tui.cli import main


def test_variants_parse_and_bad_ones_say_what_to_write() -> None:
    got = bench.parse_variants("float32, bfloat16+int4,int8")
    assert [v.label for v in got] == ["ours float32", "ours bfloat16+int4", "ours float32+int8"]
    with pytest.raises(ValueError, match="DTYPE"):
        bench.parse_variants("int3")


def test_llama_cpp_needs_a_gguf_and_transformers_always_runs() -> None:
    refs, notes = bench.references("auto", None)
    assert [r.engine for r in refs] == ["transformers"]
    assert "no GGUF" in notes[0]
    with pytest.raises(ValueError, match="unknown reference"):
        bench.references("vllm", None)


def test_quantized_weights_read_fewer_bytes_per_token() -> None:
    plain = weight_bytes(tiny_model("llama").model)
    for quant in ("int8", "int4"):
        assert weight_bytes(quantize(tiny_model("llama").model, quant)) < plain


@pytest.mark.slow
def test_bench_runs_each_engine_in_its_own_process(
    tiny_folder: Path, capsys, monkeypatch, tmp_path
) -> None:
    monkeypatch.setenv("EDGEAGENT_CACHE", str(tmp_path))  # the workers save int8 weights there
    argv = ["bench", "--model", str(tiny_folder), "--variants", "float32,int8",
            "--reference", "transformers", "--rounds", "2", "--tokens", "6",
            "--agent-episodes", "0", "--ask-rounds", "0", "--threads", "1"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("CPU: ") and "logical cores" in out.splitlines()[0]
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| ")}
    assert {"ours float32", "ours float32+int8", "transformers"} <= set(rows)
    assert "1.00x" in rows["transformers"]  # the reference against itself
    for line in (rows["ours float32"], rows["ours float32+int8"]):
        cells = [c.strip() for c in line.split("|")[2:-1]]
        warm, rss, ttft, decode = (float(c.split()[0]) for c in cells[:4])
        assert warm > 0 and rss > 0.05 and ttft > 0 and decode > 0
        assert 0 <= float(cells[7].rstrip("%")) < 100  # share of time outside the forward
    assert rows["transformers"].split("|")[9].strip() == "-"  # it cannot tell its forward apart


def test_bench_bad_variant_is_a_one_line_error(tiny_folder: Path, capsys) -> None:
    assert main(["bench", "--model", str(tiny_folder), "--variants", "float64"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown variant" in err[0]
