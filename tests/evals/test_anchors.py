"""Anchors on a tiny model's scored rollouts through the real agent loop: one per pair that
chooses a call over a decline, from no-fit cases where every rollout declined, taken from the
no-fit categories in turn; the rejected side is the model's own reply forced to start a call."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.settings import Settings
from evals import anchors
from evals import train as t
from evals.common import EvalCase
from evals.rollouts import collect
from evals.selection import last_sequence
from evals.turns import call_text, end_id
from model.messages import ToolCall
from model.scripted import ScriptedGenerator
from model.tiny import tiny_model
from model.train.lora import attach
from tests.evals.test_rollouts import ADD, add_case
from tests.evals.test_train import NONE, RIGHT

pytestmark = pytest.mark.usefixtures("one_thread")
DECLINE = "None of the functions can tell the weather."


def no_fit(case_id: str) -> EvalCase:
    return EvalCase(
        suite="bfcl",
        id=case_id,
        category=case_id.rsplit("_", 1)[0],
        expected=[],
        data={"functions": [ADD], "messages": [{"role": "user", "content": "Weather in Oslo?"}]},
    )


def groups_of(lm, script: list[str], cases: list[EvalCase]) -> list[list]:
    groups = collect(ScriptedGenerator(lm, script), cases, Settings(), k=1, temperature=1.0)
    return [list(g.rollouts) for g in groups]


def test_one_anchor_per_call_chosen_each_a_decline_over_a_forced_call(tmp_path: Path) -> None:
    lm = tiny_model()
    lm.model = attach(lm.model)
    pushed = groups_of(lm, [RIGHT, NONE], [add_case()])  # the call wins over the decline
    cases = ["irrelevance_1", "irrelevance_2", "live_irrelevance_1", "live_irrelevance_2"]
    script = [DECLINE, DECLINE, DECLINE, DECLINE, DECLINE, DECLINE, DECLINE, RIGHT]
    no_fits = groups_of(lm, script, [no_fit(c) for c in cases])  # live_irrelevance_2 called once
    groups = pushed + no_fits
    assert anchors.calls_chosen(groups, 0.1) == 1
    picked = anchors.anchor_groups(groups, 5)
    assert [g[0].meta["case"] for g in picked] == ["irrelevance_1", "live_irrelevance_1",
                                                   "irrelevance_2"]  # fmt: skip

    (pair,) = anchors.anchor_pairs(lm, groups, 0.1)
    decline = last_sequence(no_fits[0][0])
    assert decline is not None and pair.chosen.input_ids == decline.input_ids
    prompt = decline.mask.index(1)
    assert pair.rejected.input_ids[:prompt] == decline.input_ids[:prompt]
    reply = pair.rejected.input_ids[prompt:]
    start = anchors.call_start(lm)
    assert reply[: len(start)] == start and reply[-1] == end_id(lm)
    assert call_text(lm, ToolCall(name="f", arguments={})).startswith(lm.tokenizer.decode(start))
    assert pair.rejected.mask == [0] * prompt + [1] * len(reply)
    assert pair.rejected.meta["source"] == "forced call"

    ts = t.TrainSettings(learning_rate=1e-3, save_steps=0, anchors=True)
    episodes = [e for g in groups for e in g]
    history = t.train_offline("dpo", ScriptedGenerator(lm, []), episodes, ts, tmp_path)
    assert len(history) == 1
    counts = json.loads((tmp_path / "pairs.json").read_text())
    assert counts == {"pairs": 3, "reference chosen": 0, "anchors": 1}  # 2 on-policy, 1 anchor


def test_no_call_chosen_no_anchor() -> None:
    lm = tiny_model()
    groups = groups_of(lm, [DECLINE, DECLINE, RIGHT, NONE], [no_fit("irrelevance_1"), add_case()])
    assert anchors.calls_chosen(groups, 0.1) == 1
    groups = groups_of(lm, [DECLINE, DECLINE, RIGHT, RIGHT], [no_fit("irrelevance_1"), add_case()])
    assert anchors.calls_chosen(groups, 0.1) == 0 and anchors.anchor_pairs(lm, groups, 0.1) == []
