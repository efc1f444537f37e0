"""`edgeagent eval compare`: both accuracies with n, the change, the pairing and McNemar's p,
on hand-made run folders whose answers are known."""

from __future__ import annotations

import json
from pathlib import Path

from evals.common import CaseResult
from evals.compare import compare
from tui.cli import main


def run_folder(
    folder: Path, verdicts: dict[str, bool], scores: dict[str, float] | None = None
) -> None:
    folder.mkdir(parents=True)
    scores = scores or {}
    lines = [
        CaseResult(suite="bfcl", id=i, category="simple", score=scores.get(i, float(ok)),
                   correct=ok)
        for i, ok in verdicts.items()
    ]  # fmt: skip
    (folder / "bfcl.jsonl").write_text("".join(r.model_dump_json() + "\n" for r in lines))
    meta = {"model": folder.name, "date": "2026-12-02", "commit": "abc", "summary": {}}
    (folder / "run.json").write_text(json.dumps(meta))


def test_ten_discordant_pairs_all_one_way(tmp_path: Path) -> None:
    ids = [f"c{i}" for i in range(20)]
    run_folder(tmp_path / "a", {i: n >= 10 for n, i in enumerate(ids)})  # 10/20 right
    run_folder(tmp_path / "b", dict.fromkeys(ids, True))  # the other 10 right too
    table = compare(tmp_path / "a", tmp_path / "b")
    row = (
        "| bfcl | simple | 50.0% (10/20) | 100.0% (20/20) | +50.0% | 20 | 0/0 | 0 | 10 | 0.00195 |"
    )
    assert row + " – |" in table  # p = 2/1024; no bootstrap for right/wrong scores
    assert "| bfcl | **all** | 50.0% (10/20) | 100.0% (20/20) |" in table
    assert "| bfcl | **non-live** | 50.0% (10/20) | 100.0% (20/20) |" in table  # its group


def test_graded_scores_get_a_paired_bootstrap(tmp_path: Path) -> None:
    ids = [f"q{i}" for i in range(30)]
    run_folder(tmp_path / "a", dict.fromkeys(ids, False), dict.fromkeys(ids, 0.2))
    run_folder(tmp_path / "b", dict.fromkeys(ids, False), dict.fromkeys(ids, 0.7))
    row = next(x for x in compare(tmp_path / "a", tmp_path / "b").splitlines() if "| simple |" in x)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[9] == "1" and float(cells[10]) < 0.001  # no verdict changed; every score did


def test_unmatched_cases_are_counted_and_left_out_of_the_test(tmp_path: Path) -> None:
    run_folder(tmp_path / "a", {"x": True, "y": False, "only-a": True})
    run_folder(tmp_path / "b", {"x": False, "y": True, "only-b1": True, "only-b2": False})
    table = compare(tmp_path / "a", tmp_path / "b")
    # 2 paired (x: A only right, y: B only right), 1 case only in A, 2 only in B: p = 1.
    assert (
        "| bfcl | simple | 66.7% (2/3) | 50.0% (2/4) | -16.7% | 2 | 1/2 | 1 | 1 | 1 | – |" in table
    )


def test_the_cli_prints_it_and_refuses_a_folder_that_is_no_run(tmp_path: Path, capsys) -> None:
    run_folder(tmp_path / "a", {"x": True})
    run_folder(tmp_path / "b", {"x": False})
    assert main(["eval", "compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert (
        "| bfcl | simple | 100.0% (1/1) | 0.0% (0/1) | -100.0% | 1 | 0/0 | 1 | 0 | 1 | – |" in out
    )
    assert main(["eval", "compare", str(tmp_path / "a"), str(tmp_path / "none")]) == 2
    assert "not an eval run" in capsys.readouterr().err
