"""The results page's text: headline groups, cells with intervals, coverage, provenance, header."""

from __future__ import annotations

from pathlib import Path

from evals import doomloop, page


def fake_run(model: str) -> dict:
    """A run.json's fields the header reads."""
    return {"model": model, "dtype": "float32", "date": "2026-11-30T00:00:00", "commit": "abc",
            "summary": {}}  # fmt: skip


def test_headline_groups_and_coverage() -> None:
    assert page.mode_of("bfcl", "live_simple") == "live"
    assert page.mode_of("bfcl", "parallel") == "non-live"
    assert page.mode_of("searchqa", "two-hop/tools") == "tools"
    assert page.mode_of("longctx", "needle-1M:rlm") == "rlm"
    assert page.mode_of("latency", "command") is None
    rows = [
        {"cases": 2, "correct": 1, "accuracy": 0.5, "loop_ratio": 0.5},
        {"cases": 6, "correct": 6, "accuracy": 1.0, "loop_ratio": 0.0},
    ]
    merged = page.merge(rows)
    assert (merged["cases"], merged["correct"], merged["loop_ratio"]) == (8, 7, 0.125)
    assert page.cell(merged) == "88% (7/8, CI 53–98%, loops 12%)" and page.cell({}) == "–"
    qa = [{"cases": 1, "correct": 1, "em": 1.0, "f1": 1.0, "recovered": 1},
          {"cases": 3, "correct": 0, "em": 0.0, "f1": 0.5, "recovered": 0}]  # fmt: skip
    assert page.cell(page.merge(qa)) == "25% (1/4, CI 5–70%, 1 recovered, EM 25%, F1 62%)"
    cases = doomloop.load_cases("test")
    rows = {"count:off": {"cases": 2, "correct": 1}, "count:on": {"cases": 1, "correct": 1}}
    runs = [{"model": "qwen", "summary": {"doomloop": {"categories": rows}}}]
    assert "Run: qwen 3 (off 2, on 1)." in page.coverage("doomloop", runs, cases)
    assert "qwen 3 (off 2, on 1) = all" in page.coverage("doomloop", runs, cases[:3])
    assert "size unknown" in page.coverage("bfcl", runs, None)
    timed = {
        "categories": {
            "a": {"mean_seconds": 2.0, "cases": 3},
            "b": {"mean_seconds": 1.0, "cases": 1},
        }
    }
    assert page.case_seconds({"summary": {"x": timed, "y": timed}}) == 14.0


def test_the_header_names_the_dtype_batch_and_where_the_runs_are() -> None:
    run = {**fake_run("qwen"), "dtype": "bfloat16", "settings": {"eval": {"batch": 8}}}
    smol = {**run, "settings": {"eval": {"batch": 32}}}
    inside = page.HERE / "results"
    text = page.page([run, smol], "python -m evals.results --reuse", {}, inside)
    header = text.splitlines()[2]
    assert "--limits all --dtype bfloat16 --resume" in header
    assert "bfloat16, greedy, BFCL and guard-off doom-loop cases 8 or 32 at a time" in header
    assert "from the runs in `evals/results/<model>/`" in header  # relative to the project
    plain = page.page([fake_run("qwen")], "x", {}, Path("/elsewhere"))
    assert "--limits all --resume` (2 CPU cores, float32" in plain.splitlines()[2]
    assert "`/elsewhere/<model>/`" in plain
    int8 = page.page([{**run, "quant": "int8"}], "x", {}, inside)
    assert "--dtype bfloat16 --quant int8 --resume" in int8.splitlines()[2]


def test_provenance_names_mixed_commits() -> None:
    def run(commits: dict[str, int]) -> dict:
        return {"model": "m", "summary": {"bfcl": {"commits": commits}}}

    assert page.provenance("bfcl", [run({"abc1234": 9})]) == ""  # one known commit
    mixed = page.provenance("bfcl", [run({"abc1234": 9, "unrecorded": 2})])
    assert "m mixed commits: abc1234 9, unrecorded 2" in mixed
    assert "m mixed commits: abc 3, def 1" in page.provenance("bfcl", [run({"abc": 3, "def": 1})])
