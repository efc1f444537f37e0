"""The progress bars of `edgeagent train` (the run itself is tested in tests/evals/test_train.py):
each bar shows its figures and ends when its work does, nothing left open; `edgeagent adapter`
writes what `model.adapter` computes and turns bad input into one line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from evals.choices import REFERENCE_KINDS
from evals.references import BUILDERS
from model.adapter import WEIGHTS, read_config
from tui.cli import main
from tui.training import _Bars, reference_spec


def test_the_bars_show_rollouts_and_steps_and_close(capsys: pytest.CaptureFixture[str]) -> None:
    bars = _Bars()
    report = bars.training()
    progress = bars.collecting(2)
    progress(SimpleNamespace(rewards=[1.0, 0.25]))
    progress(SimpleNamespace(rewards=[0.5, 0.75]))
    report("train", {"step": 1.0, "loss": 0.6931, "tokens": 12.0})
    bars.trained()
    err = capsys.readouterr().err
    assert "rollouts: 100%" in err and "best=0.75, greedy=0.50" in err
    assert "train: 1step" in err and "loss=0.693" in err and "tokens" not in err
    assert bars.bar.disable or bars.bar.n == 1
    bars.collecting(0)  # no case to collect: the bar ends at once
    assert "rollouts: 0case" in capsys.readouterr().err


def test_reference_spec_reads_suites_and_counts() -> None:
    assert reference_spec("none") == {}
    assert reference_spec("bfcl=60,pytools") == {"bfcl": 60, "pytools": None}
    with pytest.raises(ValueError, match="--references takes"):
        reference_spec("latency")


def test_the_reference_kinds_the_cli_names_are_the_builders() -> None:
    assert tuple(BUILDERS) == REFERENCE_KINDS


def test_adapter_commands_average_and_convert(
    tmp_path: Path, lora_adapter: Callable, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b, mixed, small = (str(tmp_path / n) for n in ("a", "b", "m", "s"))
    lora_adapter(a, seed=0)
    lora_adapter(b, seed=1)
    assert main(["adapter", "average", a, b, "--weights", "0.3,0.7", "--out", mixed]) == 0
    assert read_config(Path(mixed))["r"] == 8 and f"adapter in {mixed}" in capsys.readouterr().err
    assert main(["adapter", "average", a, b, "--rank", "4", "--out", small]) == 0
    assert read_config(Path(small))["r"] == 4 and f"adapter in {small}" in capsys.readouterr().err
    assert main(["adapter", "bfloat16", mixed, "--out", small]) == 0
    assert (Path(small) / WEIGHTS).stat().st_size < 0.6 * (Path(mixed) / WEIGHTS).stat().st_size
    assert f"adapter in {small}" in capsys.readouterr().err
    for bad, says in [
        (["average", a, b, "--weights", "half", "--out", mixed], "--weights takes numbers"),
        (["average", a, "--weights", "0.5,0.5", "--out", mixed], "one weight per adapter"),
        (["bfloat16", str(tmp_path), "--out", small], "is not a LoRA adapter folder"),
    ]:
        assert main(["adapter", *bad]) == 2
        err = capsys.readouterr().err
        assert says in err and err.count("\n") == 1, err
