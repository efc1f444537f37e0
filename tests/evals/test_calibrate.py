"""Sizing a step on the dev set: the shares are tried in order until the decline rate reaches
the target, the nearer of the last two is kept as a real average of the two adapters, and a
repeated run reads its measurements back; end to end through the CLI on a tiny model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from evals import calibrate as cal
from evals.common import CaseResult
from evals.references import DEV_START, _bfcl_train, no_fit_dev_cases
from model.adapter import CONFIG, WEIGHTS
from tui.cli import main

CASES = 8


def measured(declines: dict[float, int], seen: list[float]) -> cal.Evaluate:
    """An `Evaluate` standing in for the model: each share declines as `declines` says."""

    def evaluate(adapter: Path, jsonl: Path) -> list[CaseResult]:
        share = float(adapter.name.removeprefix("share-")) if "share-" in adapter.name else 0.0
        seen.append(share)
        return [CaseResult(suite="bfcl", id=f"irrelevance_{i}", score=1.0 * (i < declines[share]),
                           correct=i < declines[share]) for i in range(CASES)]  # fmt: skip

    return evaluate


def test_the_share_nearest_the_target_is_kept(tmp_path: Path, lora_adapter: Callable) -> None:
    start, step = tmp_path / "start", tmp_path / "step"
    lora_adapter(start, seed=0)
    lora_adapter(step, seed=1)
    rates = {0.0: 8, 0.25: 7, 0.5: 5, 0.75: 3, 1.0: 2}
    seen: list[float] = []
    got = cal.calibrate(start, step, tmp_path / "out", measured(rates, seen), target=0.8)
    assert seen == [0.0, 0.25, 0.5]  # 5 of 8 is at or below 0.8: the search stops there
    assert got.chosen == 0.25  # 7/8 is nearer 0.8 than 5/8
    kept = (tmp_path / "out" / WEIGHTS).read_bytes()
    assert kept == (tmp_path / "out" / "dev" / "share-0.25" / WEIGHTS).read_bytes()
    assert kept != (start / WEIGHTS).read_bytes()
    record = cal.Calibration.model_validate_json((tmp_path / "out" / cal.RECORD).read_text())
    assert record == got and [t.declined for t in record.tried] == [8, 7, 5]
    assert record.tried[0].low < 1.0 == record.tried[0].high

    seen.clear()  # already at the target: the start itself, nothing averaged
    lower = {**rates, 0.0: 7}
    got = cal.calibrate(start, step, tmp_path / "again", measured(lower, seen), target=0.9)
    assert seen == [0.0] and got.chosen == 0.0
    assert (tmp_path / "again" / WEIGHTS).read_bytes() == (start / WEIGHTS).read_bytes()
    assert (tmp_path / "again" / CONFIG).read_text() == (start / CONFIG).read_text()

    seen.clear()  # never there: the nearer of the last two
    cal.calibrate(start, step, tmp_path / "far", measured(rates, seen), target=0.1)
    assert seen == [0.0, 0.25, 0.5, 0.75, 1.0]
    with pytest.raises(ValueError, match="between 0 and 1"):
        cal.calibrate(start, step, tmp_path / "bad", measured(rates, seen), target=1.5)


def test_the_dev_split_is_train_cases_no_recipe_step_reaches() -> None:
    cases = no_fit_dev_cases(20)
    train = _bfcl_train()
    assert {c.category for c in cases} == {"irrelevance", "live_irrelevance"}
    for c in cases:
        assert train[c.category].index(c) >= DEV_START
    assert len([c for c in cases if c.category == "live_irrelevance"]) == 20


def test_calibrate_cli_on_a_tiny_model_and_its_one_line_errors(
    tmp_path: Path, lora_adapter: Callable, tiny_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    start, step, out = tmp_path / "start", tmp_path / "step", tmp_path / "out"
    lora_adapter(start, seed=0)
    lora_adapter(step, seed=1)
    argv = ["adapter", "calibrate", str(start), str(step), "--out", str(out), "--model",
            str(tiny_folder), "--dev-limit", "1", "--max-tokens", "4", "--dtype", "float32",
            "--quant", "none", "--target", "0.5"]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    record = cal.Calibration.model_validate_json((out / cal.RECORD).read_text())
    assert f"kept {record.chosen:.2f} of the step's change" in err
    assert all(t.cases == 2 for t in record.tried)  # one irrelevance, one live_irrelevance
    runs = sorted((out / "dev").glob("share-*.jsonl"))
    assert len(runs) == len(record.tried)
    before = [r.read_text() for r in runs]
    assert main(argv) == 0  # measured already: read back, nothing run twice
    assert [r.read_text() for r in runs] == before
    capsys.readouterr()
    for bad, says in [
        ([str(tmp_path), str(step)], "is not a LoRA adapter folder"),
        ([str(start), str(step), "--target", "87.5"], "--target is a rate between 0 and 1"),
        ([str(start), str(step), "--dev-limit", "0"], "--dev-limit takes at least 1"),
    ]:
        assert main(["adapter", "calibrate", *bad, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert says in err and err.count("\n") == 1, err
