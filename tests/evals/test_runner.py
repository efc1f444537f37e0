"""The eval runner: summaries, the Markdown report, plots, comparing runs, the CLI's errors."""

from __future__ import annotations

import json

import pytest

from agent.settings import Settings
from evals import runner
from evals.common import CaseResult, settings_hash
from tui.cli import main


def result(category: str, correct: bool, **details) -> CaseResult:
    return CaseResult(
        suite="x", id=f"{category}-{correct}-{len(details)}", category=category,
        score=float(correct), correct=correct, seconds=2.0, details=details,
    )  # fmt: skip


RESULTS = [
    result("single", True),
    result("single", False),
    result("two-hop", False, looped=True, ttft_s=0.5, total_s=3.0),
    result("two-hop", True, looped=False, ttft_s=1.5, total_s=5.0),
]


def test_summary_counts_per_category_and_timings() -> None:
    s = runner.summarize(RESULTS)
    assert s["categories"]["single"]["accuracy"] == 0.5
    assert s["categories"]["two-hop"]["loop_ratio"] == 0.5
    assert "loop_ratio" not in s["categories"]["single"]
    assert s["all"]["cases"] == 4 and s["all"]["correct"] == 2
    assert s["timings"]["ttft_s"]["mean"] == 1.0 and s["timings"]["total_s"]["p90"] == 5.0
    qa = runner.summarize([result("q", True, em=1.0, f1=1.0), result("q", False, em=0.0, f1=0.5)])
    assert (qa["all"]["em"], qa["all"]["f1"]) == (0.5, 0.75) and "recovered" not in qa["all"]
    loops = [result("on", False, looped=True, recovered=r) for r in (True, False)]
    assert runner.summarize(loops)["all"]["recovered"] == 1


def test_a_run_folder_has_json_markdown_and_plots(tmp_path) -> None:
    meta = runner.run_meta(Settings(), "test", 4, None)
    assert meta["commit"] and meta["model"] == "embedded" and meta["settings"]["model"]
    runner.write_run(tmp_path, meta, {"demo": runner.summarize(RESULTS)})
    md = (tmp_path / "summary.md").read_text()
    assert "| single | 2 | 1 | 50.0% |" in md and "loops 50%" in md
    assert (tmp_path / "demo.png").read_bytes()[:4] == b"\x89PNG"
    assert runner.read_run(tmp_path)["summary"]["demo"]["all"]["correct"] == 2


def test_cli_errors_are_one_line(tmp_path, capsys) -> None:
    assert main(["eval", "--suite", "nope"]) == 2
    assert "no suite 'nope'" in capsys.readouterr().err
    assert main(["eval", "compare", str(tmp_path), str(tmp_path)]) == 2
    assert "not an eval run" in capsys.readouterr().err
    assert main(["eval", "--suite", "searchqa", "--data", str(tmp_path)]) == 2
    assert "questions.jsonl" in capsys.readouterr().err
    assert main(["eval", "--suite", "doomloop", "--categories", "live"]) == 2
    assert "unknown doom-loop families or arms ['live']" in capsys.readouterr().err
    assert main(["eval", "--suite", "incar", "--categories", "off"]) == 2
    assert (
        "--categories picks in bfcl, searchqa, longctx, doomloop; incar" in capsys.readouterr().err
    )


def test_run_suite_writes_each_case_as_it_finishes(tmp_path, monkeypatch) -> None:
    import sys
    import types

    fake = types.ModuleType("fake_suite")
    fake.run_case = lambda gen, case, settings: result(case.category, case.id == "a")
    monkeypatch.setitem(sys.modules, "fake_suite", fake)
    monkeypatch.setitem(runner.SUITES, "fake", "fake_suite")
    from evals.common import EvalCase

    cases = [EvalCase(suite="fake", id=i, category="c") for i in "ab"]
    seen = []
    out = runner.run_suite("fake", None, Settings(), cases, tmp_path, lambda *a: seen.append(a[1]))
    lines = (tmp_path / "fake.jsonl").read_text().splitlines()
    assert [json.loads(x)["correct"] for x in lines] == [True, False] and seen == [1, 2]
    assert len(out) == 2
    with pytest.raises(ValueError):
        runner.suite_module("nope")


def test_resume_runs_only_the_cases_not_yet_in_the_file(tmp_path, monkeypatch) -> None:
    import sys
    import types

    from evals.common import EvalCase

    ran = []
    fake = types.ModuleType("fake_suite")
    fake.run_case = lambda gen, case, settings: (
        ran.append(case.id)
        or CaseResult(suite="fake", id=case.id, category="c", score=1.0, correct=True)
    )
    monkeypatch.setitem(sys.modules, "fake_suite", fake)
    monkeypatch.setitem(runner.SUITES, "fake", "fake_suite")
    cases = [EvalCase(suite="fake", id=i, category="c") for i in "abcd"]
    runner.run_suite("fake", None, Settings(), cases[:2], tmp_path)
    with (tmp_path / "fake.jsonl").open("a") as f:
        f.write('{"suite": "fake", "id": "c", "sco')  # a line cut by a crash
    seen = []
    out = runner.run_suite("fake", None, Settings(), cases[::-1], tmp_path,
                           lambda *a: seen.append(a[1]), resume=True)  # fmt: skip
    assert ran == ["a", "b", "d", "c"] and seen == [1, 2, 3, 4]
    assert {r.id: r.commit for r in out}["d"] == runner.commit()  # stamped as it was written
    assert {r.id: r.settings_hash for r in out}["d"] == settings_hash(Settings())
    assert [r.id for r in out] == ["b", "a", "d", "c"]  # the ones kept, then the new ones
    lines = (tmp_path / "fake.jsonl").read_text().splitlines()
    assert {CaseResult.model_validate_json(x).id for x in lines[:2] + lines[3:]} == set("abcd")


def test_a_suite_with_run_cases_gets_all_its_cases_at_once(tmp_path, monkeypatch) -> None:
    import sys
    import types

    from evals.common import EvalCase

    given = []

    def run_cases(gen, cases, settings):
        given.append([c.id for c in cases])
        for case in reversed(cases):  # in the order they finish, not the order given
            yield CaseResult(suite="fake", id=case.id, category="c", score=1.0, correct=True)

    fake = types.ModuleType("fake_suite")
    fake.run_cases = run_cases
    fake.run_case = lambda *a: pytest.fail("run_case is for suites without run_cases")
    monkeypatch.setitem(sys.modules, "fake_suite", fake)
    monkeypatch.setitem(runner.SUITES, "fake", "fake_suite")
    cases = [EvalCase(suite="fake", id=i, category="c") for i in "abc"]
    runner.run_suite("fake", None, Settings(), cases[:1], tmp_path)
    out = runner.run_suite("fake", None, Settings(), cases, tmp_path, resume=True)
    assert given == [["a"], ["b", "c"]] and [r.id for r in out] == ["a", "c", "b"]
    lines = (tmp_path / "fake.jsonl").read_text().splitlines()
    assert [CaseResult.model_validate_json(x).id for x in lines] == ["a", "c", "b"]


def test_resume_refuses_a_run_of_another_model(tmp_path, capsys) -> None:
    meta = runner.run_meta(Settings(), "test", 4, None)
    runner.write_run(tmp_path, meta, {"demo": runner.summarize(RESULTS)})
    runner.check_resumable(tmp_path, meta)  # the same run: fine
    other = {**meta, "model": "smollm2"}
    with pytest.raises(ValueError, match="model='embedded'"):
        runner.check_resumable(tmp_path, other)
    assert main(["eval", "--suite", "bfcl", "--resume", "--model", "smollm2",
                 "--out", str(tmp_path)]) == 2  # fmt: skip
    assert "resume with the same flags" in capsys.readouterr().err
    assert main(["eval", "--suite", "bfcl", "--resume"]) == 2
    assert "give --out" in capsys.readouterr().err


@pytest.mark.slow
def test_eval_cli_runs_two_suites_on_real_weights(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    args = ["eval", "--suite", "bfcl,latency", "--limit", "1", "--model", "smollm2"]
    assert main([*args, "--out", str(out)]) == 0
    run = runner.read_run(out)
    assert set(run["summary"]) == {"bfcl", "latency"} and run["model"] == "smollm2"
    assert run["limit"] == 1 and run["split"] == "test" and run["settings"]["model"]
    for suite in ("bfcl", "latency"):
        lines = (out / f"{suite}.jsonl").read_text().splitlines()
        assert len(lines) == 1 and (out / f"{suite}.png").stat().st_size > 1000
    assert "ttft_s" in run["summary"]["latency"]["timings"]
    assert "# Eval run: smollm2" in capsys.readouterr().out
    first = (out / "bfcl.jsonl").read_text()
    assert main([*args[:-4], "--limit", "2", "--model", "smollm2", "--out", str(out),
                 "--resume"]) == 0  # fmt: skip
    assert (out / "bfcl.jsonl").read_text().startswith(first)  # kept, not run again
    assert runner.read_run(out)["summary"]["bfcl"]["all"]["cases"] == 2
    stamped = runner.held_results(out / "bfcl.jsonl").values()
    assert {r.commit for r in stamped} == {runner.commit()} and all(
        r.settings_hash for r in stamped
    )
    assert runner.read_run(out)["commits"] == [runner.commit()]


def test_each_line_records_its_commit_and_run_json_every_commit(tmp_path) -> None:
    older = CaseResult(suite="x", id="old", category="c", score=1.0, correct=True)
    newer = older.model_copy(update={"id": "new", "commit": "abc1234", "settings_hash": "f" * 12})
    lines = [older, newer, newer.model_copy(update={"id": "newer"})]
    (tmp_path / "x.jsonl").write_text("".join(r.model_dump_json() + "\n" for r in lines))
    assert CaseResult.model_validate_json(older.model_dump_json()).commit is None  # old lines load
    summary = runner.summarize(lines)
    assert summary["commits"] == {"abc1234": 2, "unrecorded": 1}
    runner.write_run(tmp_path, runner.run_meta(Settings(), "test", None, None), {"x": summary})
    assert runner.read_run(tmp_path)["commits"] == ["abc1234", "unrecorded"]
    assert "several commits: abc1234, unrecorded" in (tmp_path / "summary.md").read_text()
    settings = Settings()
    assert settings_hash(settings) == settings_hash(Settings())
    settings.sampling.max_new_tokens += 1
    assert settings_hash(settings) != settings_hash(Settings())


def test_summary_md_shows_the_interval() -> None:
    md = runner.markdown(
        {"model": "m", "date": "d", "commit": "c", "split": "test", "dtype": "float32"},
        {"demo": runner.summarize(RESULTS)},
    )
    assert "| single | 2 | 1 | 50.0% | 9.5%–90.5% |" in md  # Wilson 1/2


def test_stopped_by_guard_reads_every_record_of_a_stop() -> None:
    def result(**details: object) -> CaseResult:
        return CaseResult(suite="s", id="x", score=0.0, correct=False, details=details)

    assert runner.stopped_by_guard(result(finish_reason="doom_loop"))  # one turn (BFCL)
    assert runner.stopped_by_guard(result(caught=True, finish_reason="eos"))  # a resampled turn
    assert runner.stopped_by_guard(result(guard_stops=1, outcome="answer"))  # a middle turn
    assert runner.stopped_by_guard(result(outcome="doom_loop"))
    assert not runner.stopped_by_guard(result(finish_reason="eos", guard_stops=0, caught=False))
