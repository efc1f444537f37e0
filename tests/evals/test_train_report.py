"""What a training run writes about itself: the step figures kept line by line, the curve, the
doom-loop ratio per guard setting and the report comparing the test split before and after."""

from __future__ import annotations

import json
from pathlib import Path

from evals.train import TrainSettings
from evals.train_report import (
    loop_ratios,
    plot_curve,
    read_history,
    report_markdown,
    write_history,
)

RUN = {
    "model": "tiny",
    "date": "d",
    "commit": "c",
    "summary": {
        "doomloop": {
            "categories": {
                "arith:off": {"accuracy": 0.5, "cases": 2, "loop_ratio": 0.5},
                "logic:off": {"accuracy": 0.5, "cases": 2, "loop_ratio": 0.0},
                "arith:on": {"accuracy": 1.0, "cases": 4, "loop_ratio": 0.0},
            }
        }
    },
}


def test_history_is_appended_step_by_step_and_read_back(tmp_path: Path) -> None:
    assert read_history(tmp_path) == []
    write_history(tmp_path, [{"step": 1.0, "loss": 0.7}])
    write_history(tmp_path, [{"step": 2.0, "loss": 0.6}])  # a resumed run goes on appending
    assert read_history(tmp_path) == [{"step": 1.0, "loss": 0.7}, {"step": 2.0, "loss": 0.6}]


def test_the_curve_needs_steps(tmp_path: Path) -> None:
    assert not plot_curve([{"loss": 0.7}], "dpo", tmp_path / "none.png")
    history = [{"step": 1.0, "loss": 0.69, "margin": 0.0}, {"step": 2.0, "loss": 0.6}]
    assert plot_curve(history, "dpo", tmp_path / "curve.png")
    assert (tmp_path / "curve.png").stat().st_size > 1000


def test_the_report_compares_before_and_after_with_the_loop_ratio(tmp_path: Path) -> None:
    assert loop_ratios(RUN) == {"off": 0.25, "on": 0.0}
    for name in ("before", "after"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "run.json").write_text(json.dumps(RUN))
    ts = TrainSettings(learning_rate=1e-3, save_steps=0)
    args = ("dpo", "bfcl", ts, "edgeagent train dpo", {"episodes": 3})
    text = report_markdown(*args, tmp_path / "before", tmp_path / "after")
    assert text.startswith("# Training report: dpo on bfcl (train split)")
    assert "| off | 25.0% | 25.0% |" in text and "curve.png" in text
    assert '"learning_rate":0.001' in text and "Data: episodes 3" in text
    assert "before and after" not in report_markdown(*args, None, None)
