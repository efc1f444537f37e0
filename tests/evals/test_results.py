"""python -m evals.results: runs into folders, the page and plots made from them, reruns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals import doomloop, results
from evals.common import CaseResult


def fake_run(model: str, right: int, loops: float) -> dict:
    """A run.json as `--reuse` reads it (the page recomputes summaries from the JSONL)."""
    return {
        "model": model, "dtype": "float32", "date": "2026-11-30T00:00:00", "commit": "abc",
        "limit": "doomloop=4", "summary": {},
    }  # fmt: skip


def write_run(folder: Path, model: str, right: int, looped: int, stale: bool = False) -> None:
    """A run folder with real doom-loop test case ids: the first `right` cases right, the
    first `looped` looped; `stale` adds a result whose id is not in the test split."""
    cases = doomloop.load_cases("test")[:4]
    results = [
        CaseResult(suite="doomloop", id=c.id, category=c.category, score=float(i < right),
                   correct=i < right, seconds=1.0, details={"looped": i < looped, "ttft_s": 0.4})
        for i, c in enumerate(cases)
    ]  # fmt: skip
    if stale:
        results.append(results[0].model_copy(update={"id": "gone-1:off"}))
    folder.mkdir(parents=True)
    lines = "".join(r.model_dump_json() + "\n" for r in results)
    (folder / "doomloop.jsonl").write_text(lines + '{"torn": ')  # a line cut by a crash
    (folder / "run.json").write_text(json.dumps(fake_run(model, right, looped)))
    (folder / "summary.md").write_text(f"# {model}")


def test_page_and_plots_from_two_runs(tmp_path: Path) -> None:
    write_run(tmp_path / "runs" / "qwen", "qwen", right=3, looped=2, stale=True)
    write_run(tmp_path / "runs" / "smol", "smol", right=1, looped=0)
    out = tmp_path / "docs" / "RESULTS.md"
    out.parent.mkdir()
    args = ["--models", "qwen,smol", "--runs", str(tmp_path / "runs"), "--out", str(out)]
    assert results.main([*args, "--reuse"]) == 0
    text = out.read_text()
    assert (
        "| count:off | 100% (1/1, CI 21–100%, loops 100%) | 100% (1/1, CI 21–100%, loops 0%) |"
        in text
    )
    assert "Right: the case ended, not in a loop;" in text
    assert "| countdown:on | 0% (0/1, CI 0–79%, loops 0%) | 0% (0/1, CI 0–79%, loops 0%) |" in text
    assert (
        "| doomloop | off | 100% (2/2, CI 34–100%, loops 50%) | 50% (1/2, CI 9–91%, loops 0%) |"
        in text
    )  # headline
    assert (
        "| doomloop | on | 50% (1/2, CI 9–91%, loops 50%) | 0% (0/2, CI 0–66%, loops 0%) |" in text
    )
    assert (
        "Test split: 240 (agent-off 12, agent-on 12, off 108, on 108). Run: qwen 4 (off 2, on 2)"
        in text
    )
    assert "qwen ttft_s: median 0.40" in text and "LFM2.5-350M" in text
    assert "--reuse" in text.splitlines()[2]  # how it was made
    assert (out.parent / "results" / "doomloop.png").stat().st_size > 1000
    assert f"from the runs in `{tmp_path / 'runs'}/<model>/`" in text  # outside the project
    # No line carries its commit here, so the page says so (and would list mixed commits).
    assert "Commits per case: qwen unrecorded (4 cases); smol unrecorded (4 cases)" in text


def test_a_shipped_column_is_named_by_its_folder(tmp_path: Path) -> None:
    assert results.model_and_adapter("qwen+adapter", "none") == ("qwen", "default")
    assert results.model_and_adapter("qwen", "none") == ("qwen", "none")
    write_run(tmp_path / "runs" / "qwen", "qwen", right=1, looped=0)
    write_run(tmp_path / "runs" / "qwen+adapter", "qwen", right=4, looped=0)
    out = tmp_path / "RESULTS.md"
    args = ["--models", "qwen,qwen+adapter", "--runs", str(tmp_path / "runs"), "--out", str(out)]
    assert results.main([*args, "--reuse"]) == 0
    text = out.read_text()
    assert "| suite | group | qwen | qwen+adapter |" in text
    assert "Run: qwen 4 (off 2, on 2); qwen+adapter 4 (off 2, on 2)" in text


def test_limits_are_checked() -> None:
    assert results.parse_limits("bfcl=4,latency=2") == {"bfcl": 4, "latency": 2}
    assert results.parse_limits("all")["searchqa"] is None
    assert results.parse_limits("bfcl=all,latency=3") == {"bfcl": None, "latency": 3}
    with pytest.raises(SystemExit, match="--limits takes"):
        results.parse_limits("bfcl=x")


@pytest.mark.parametrize("quant", ["none", "int8"])
def test_a_run_records_the_weights_it_loaded(tmp_path: Path, tiny, monkeypatch, quant) -> None:
    """The page's runs are the models' own weights unless asked: run.json says what was loaded
    (the app's default, int8 on a CPU, once went into run.json of a float run)."""
    import model.loader

    asked: list[str] = []

    def load(spec: str, **kw):
        asked.append(kw["quant"])
        return tiny("qwen2")

    monkeypatch.setattr(model.loader, "load", load)
    run = results.run_model("qwen", {"latency": 1}, tmp_path / "run", add=False, quant=quant)
    assert asked == [quant]
    assert run["quant"] == quant == json.loads((tmp_path / "run" / "run.json").read_text())["quant"]


def test_redo_stopped_runs_again_only_what_the_guard_cut(tmp_path: Path, tiny, monkeypatch) -> None:
    """After a change to the guard, the cases it stopped are run again and the rest are kept."""
    import model.loader

    monkeypatch.setattr(model.loader, "load", lambda spec, **kw: tiny("qwen2"))
    folder = tmp_path / "qwen"
    results.run_model("qwen", {"latency": 3}, folder, add=False)
    path = folder / "latency.jsonl"
    held = [json.loads(line) for line in path.read_text().splitlines()]
    held[1]["details"].update(finish_reason="doom_loop", marker=1)  # as if the guard cut it
    held[2]["details"]["marker"] = 2  # ended by itself: kept as it is
    path.write_text("".join(json.dumps(r) + "\n" for r in held))
    argv = ["--models", "qwen", "--limits", "latency=3", "--runs", str(tmp_path),
            "--out", str(tmp_path / "R.md"), "--redo-stopped"]  # fmt: skip
    assert results.main(argv) == 0
    after = {r["id"]: r for r in map(json.loads, path.read_text().splitlines())}
    assert len(after) == 3 and after[held[2]["id"]]["details"]["marker"] == 2
    assert "marker" not in after[held[1]["id"]]["details"]  # run again
