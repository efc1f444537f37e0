"""The RESULTS.md page: models side by side per category, loop ratios, timings, plots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals import results


def fake_run(model: str, bfcl_right: int, loops: float) -> dict:
    def row(cases: int, correct: int, **extra: float) -> dict:
        return {"cases": cases, "correct": correct, "accuracy": correct / cases, **extra}

    return {
        "model": model, "dtype": "float32", "date": "2026-11-30T00:00:00", "commit": "abc",
        "limit": "bfcl=4,doomloop=2",
        "summary": {
            "bfcl": {"categories": {"simple_python": (r := row(4, bfcl_right))}, "all": r},
            "doomloop": {
                "categories": {"arith:off": row(2, 1, loop_ratio=loops)},
                "all": row(2, 1, loop_ratio=loops),
                "timings": {"ttft_s": {"mean": 0.5, "median": 0.4, "p90": 0.9}},
            },
        },
    }  # fmt: skip


def test_page_and_plots_from_two_runs(tmp_path: Path) -> None:
    runs = {"qwen": fake_run("qwen", 3, 0.5), "smol": fake_run("smol", 1, 0.0)}
    for name, run in runs.items():
        (tmp_path / "runs" / name).mkdir(parents=True)
        (tmp_path / "runs" / name / "run.json").write_text(json.dumps(run))
        (tmp_path / "runs" / name / "summary.md").write_text(f"# {name}")
    out = tmp_path / "docs" / "RESULTS.md"
    out.parent.mkdir()
    args = ["--models", "qwen,smol", "--runs", str(tmp_path / "runs"), "--out", str(out)]
    assert results.main([*args, "--reuse"]) == 0
    text = out.read_text()
    assert "| simple_python | 75% (3/4) | 25% (1/4) |" in text
    assert "| arith:off | 50% (1/2, loops 50%) | 50% (1/2, loops 0%) |" in text
    assert "| bfcl | non-live | 75% (3/4) | 25% (1/4) |" in text  # the headline table
    assert "| doomloop | off | 50% (1/2, loops 50%) |" in text
    assert "Test split: 28 cases. Run: qwen 2 (a sample); smol 2 (a sample)." in text
    assert "qwen ttft_s: median 0.40" in text and "LFM2.5-350M" in text
    assert "--reuse" in text.splitlines()[2]  # how it was made
    for suite in ("bfcl", "doomloop"):
        assert (out.parent / "results" / f"{suite}.png").stat().st_size > 1000
    assert (out.parent / "results" / "smol.md").read_text() == "# smol"


def test_headline_groups_and_coverage() -> None:
    assert results.mode_of("bfcl", "live_simple") == "live"
    assert results.mode_of("bfcl", "parallel") == "non-live"
    assert results.mode_of("searchqa", "two-hop/tools") == "tools"
    assert results.mode_of("longctx", "needle-1M:rlm") == "rlm"
    assert results.mode_of("latency", "command") is None
    rows = [
        {"cases": 2, "correct": 1, "accuracy": 0.5, "loop_ratio": 0.5},
        {"cases": 6, "correct": 6, "accuracy": 1.0, "loop_ratio": 0.0},
    ]
    merged = results.merge(rows)
    assert (merged["cases"], merged["correct"], merged["loop_ratio"]) == (8, 7, 0.125)
    assert results.cell(merged) == "88% (7/8, loops 12%)" and results.cell({}) == "–"
    runs = [fake_run("qwen", 3, 0.5)]
    assert "qwen 2 (all of them)" in results.coverage("doomloop", runs, 2)
    assert "qwen 2 (a sample)" in results.coverage("doomloop", runs, 28)
    assert "size unknown" in results.coverage("bfcl", runs, None)


def test_limits_are_checked() -> None:
    assert results.parse_limits("bfcl=4,latency=2") == {"bfcl": 4, "latency": 2}
    assert results.parse_limits("all")["searchqa"] is None
    with pytest.raises(SystemExit, match="--limits takes"):
        results.parse_limits("bfcl=x")
