"""Agent overhead: the split of an episode's time, and a real measurement on a tiny model."""

from __future__ import annotations

import pytest

from agent.settings import Settings
from agent.trajectory import Step, ToolRun, Trajectory
from evals.overhead import measure, split, table
from model.messages import ToolCall
from model.tiny import tiny_model


def step(forward: float, tools: list[float]) -> Step:
    runs = [ToolRun(call=ToolCall(name="run_python"), text="", duration_s=t) for t in tools]
    return Step(index=0, prompt_ids=[1, 1, 1], completion_ids=[2, 3], completion_text="x",
                finish_reason="eos", temperature=0.0, forward_s=forward,
                tool_runs=runs, reused_tokens=2)  # fmt: skip


def test_split_puts_what_is_neither_model_nor_tool_into_overhead() -> None:
    a = Trajectory(task="a", total_s=10.0, steps=[step(6.0, [2.0]), step(1.5, [])])
    b = Trajectory(task="b", total_s=2.0, steps=[step(1.5, [])])
    o = split([a, b])
    assert (o.episodes, o.steps, o.sampled_tokens) == (2, 3, 6)
    assert o.forward_s == pytest.approx(9.0) and o.tool_s == pytest.approx(2.0)
    assert o.other_s == pytest.approx(1.0)
    assert o.share == pytest.approx(0.1)  # 1 s of loop per 10 s of model and loop
    assert (o.prompt_tokens, o.reused_tokens) == (9, 6)
    assert "10.0%" in table(o) and "6/9" in table(o)


@pytest.mark.usefixtures("one_thread")
def test_measure_times_real_episodes(tmp_path) -> None:
    lm = tiny_model("qwen2")
    lm.model.save_pretrained(tmp_path)
    lm.tokenizer.save_pretrained(tmp_path)
    settings = Settings.model_validate(
        {"model": {"spec": str(tmp_path)}, "sampling": {"max_new_tokens": 12}}
    )
    o = measure(settings, episodes=2, threads=1)
    assert o.episodes == 2 and o.steps >= 2
    assert 0 < o.forward_s < o.wall_s  # the loop recorded each step's forward time
    assert 0 <= o.share < 1
