"""BFCL's own checker beside ours on every committed BFCL output: the verdicts must agree, and
the committed run summaries (the page's BFCL figures) must equal the official counts.

Runs where bfcl-eval's checker imports (its data and code are installed with --no-deps; the
one module that pulls in the model vendors' SDKs is stood in for, see `evals.bfcl_official`)
and the embedded models' tokenizers are present (for their tool formats); skipped otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from evals import bfcl, bfcl_official
from evals.common import CaseResult
from evals.runner import held_results, read_run
from model.chat import ToolFormat
from model.loader import ModelLoadError, tool_format_of


@pytest.fixture(scope="module")
def official() -> bfcl_official.Official:
    try:
        return bfcl_official.load_official()
    except ImportError as e:
        pytest.skip(f"bfcl-eval's checker cannot be imported: {e}")


@pytest.fixture(scope="module")
def cases() -> dict:
    try:
        return {c.id: c for c in bfcl.load_cases("all")}
    except bfcl.BfclDataMissing as e:
        pytest.skip(str(e))


def folders() -> list[Path]:
    return bfcl_official.committed_folders()


@pytest.mark.parametrize("folder", folders(), ids=lambda f: f.name)
def test_official_checker_agrees_on_every_committed_output(
    official: bfcl_official.Official, cases: dict, folder: Path
) -> None:
    results = list(held_results(folder / "bfcl.jsonl").values())
    try:
        fmt = tool_format_of(read_run(folder)["model"])
    except ModelLoadError as e:
        pytest.skip(str(e))
    assert len(results) > 100
    assert bfcl_official.disagreements(official, results, cases, fmt) == []
    right = sum(bfcl_official.official_correct(official, cases[r.id], r.output, fmt)
                for r in results)  # fmt: skip
    assert read_run(folder)["summary"]["bfcl"]["all"]["correct"] == right  # the page's figure


def test_the_cross_check_can_fail(official: bfcl_official.Official, cases: dict) -> None:
    """A verdict flipped by hand is reported: the agreement above is not vacuous."""
    case = cases["simple_python_87"]  # BFCL rejects ints in this list of floats
    output = '{"name": "array_sort", "arguments": {"list": [5, 3, 4, 1, 2], "order": "ascending"}}'
    assert not bfcl_official.official_correct(official, case, output, ToolFormat.HERMES)
    result = CaseResult(suite="bfcl", id=case.id, category=case.category, score=1.0,
                             correct=True, output=output)  # fmt: skip
    found = bfcl_official.disagreements(official, [result], cases, ToolFormat.HERMES)
    assert len(found) == 1 and "ours True, BFCL False" in found[0]
    irrelevant = next(c for c in cases.values() if c.category == "irrelevance")
    unreadable = '{"name": "f", "arguments": null}'
    assert bfcl_official.official_correct(official, irrelevant, unreadable, ToolFormat.HERMES)


def test_calls_built_from_every_answer_key_get_the_same_verdicts(
    official: bfcl_official.Official, cases: dict
) -> None:
    """Beyond the committed outputs: the ground truth of every case, and variations of it that
    BFCL accepts or rejects (ints for floats, case, spaces, order, a dropped parameter)."""
    judged, differ = bfcl_official.sweep(official, list(cases.values()))
    assert judged > 10_000 and differ == []
