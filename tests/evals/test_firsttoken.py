"""`edgeagent bench`'s first-token figure: real `ask` processes through a server the bench
starts on a tiny model, and in-process; the figure is produced (its value is not asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals import firsttoken
from evals.firsttoken import FirstToken, table
from model.tiny import tiny_model
from tui.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_bench_records_first_token_through_a_server(tmp_path, capsys, monkeypatch) -> None:
    lm = tiny_model("qwen2")
    folder = tmp_path / "tiny"
    lm.model.save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the children run this checkout
    monkeypatch.setenv("EDGEAGENT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    announced = []  # whether a server was announced for `--server auto`, at each ask
    asked: list[str] = []
    timed = firsttoken.first_token_s

    def watched(flags: list[str], env: dict[str, str], *question: str) -> float:
        announced.append((tmp_path / "cache" / "server.json").exists())
        asked.append(question[0] if question else firsttoken.QUESTION)
        return timed(flags, env, *question)

    monkeypatch.setattr(firsttoken, "first_token_s", watched)
    argv = ["bench", "--model", str(folder), "--variants", "none", "--reference", "none",
            "--agent-episodes", "0", "--ask-rounds", "1", "--threads", "1", "--json"]  # fmt: skip
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    first = FirstToken.model_validate(out["first_token"])
    assert out["models"] == [] and "agent" not in out and out["cpu"]["logical_cores"] >= 1
    assert first.started and first.server.startswith("http://127.0.0.1:")
    assert len(first.server_s) == len(first.fresh_s) == len(first.in_process_s) == 1
    assert min(first.cold_s, first.through_server, first.new_question, first.in_process) > 0
    assert first.ratio == pytest.approx(first.in_process / first.through_server)
    shown = table(first)
    assert f"{first.through_server:.2f} s" in shown and f"{first.ratio:.1f}x" in shown
    assert f"{first.new_question:.2f} s" in shown and "new questions" in shown
    assert "started by the bench" in shown and "issue 21's bar" in shown
    assert announced == [False] * 4
    assert asked == [
        firsttoken.QUESTION,
        firsttoken.QUESTION,
        firsttoken.FRESH[0],
        firsttoken.QUESTION,
    ]  # the bench's server stays private
