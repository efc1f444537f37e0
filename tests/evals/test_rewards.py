"""Reward terms on hand-built trajectories with known right and wrong behaviour."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from agent.trajectory import Step, ToolRun, Trajectory
from evals.common import EvalCase
from evals.rewards import (
    RewardWeights,
    acceptable,
    repetition_penalty,
    rewards,
    task_success,
    total,
    valid_arguments,
    verifiable,
    well_formed_calls,
    within_budget,
)
from model.messages import ToolCall, ToolCallParseError
from tools.base import ErrorKind, Tool, ToolResult


class SearchArgs(BaseModel):
    query: str


SEARCH = Tool(
    name="web_search", description="", args=SearchArgs, fn=lambda a: ToolResult(text="ok")
)
ADD_CASE = EvalCase(
    suite="bfcl",
    id="simple_python_1",
    category="simple_python",
    expected=[{"add": {"a": [1], "b": [2]}}],
    data={
        "functions": [
            {
                "name": "add",
                "parameters": {
                    "type": "dict",
                    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                    "required": ["a", "b"],
                },
            }
        ]
    },
)


def step(
    index: int = 0, completion: list[int] | None = None, finish_reason: str = "stop", **kwargs: Any
) -> Step:
    return Step(
        index=index,
        prompt_ids=[1, 2],
        completion_ids=completion if completion is not None else list(range(100, 120)),
        completion_text="",
        finish_reason=finish_reason,
        temperature=0.7,
        **kwargs,
    )


def episode(
    answer: str = "", outcome: str = "answer", steps: list[Step] | None = None
) -> Trajectory:
    return Trajectory(task="q", final_answer=answer, outcome=outcome, steps=steps or [step()])  # type: ignore[arg-type]


def run(call: ToolCall, error: str | None = None, kind: ErrorKind | None = None) -> ToolRun:
    return ToolRun(call=call, text="", error=error, error_kind=kind or (error and "tool"))


@pytest.mark.parametrize(
    ("answer", "expected", "score"),
    [
        ("Halvern", "Halvern", 1.0),
        ("It was born in Halvern.", ["Halvern"], 0.5 + 0.5 / 3),  # contains; F1 1/3
        ("Marrowdale", ["Halvern"], 0.0),
        ("", "Halvern", 0.0),
    ],
)
def test_task_success_on_text_answers(answer: str, expected: Any, score: float) -> None:
    assert task_success(episode(answer), expected) == pytest.approx(score)


def test_task_success_takes_an_eval_case_with_aliases() -> None:
    case = EvalCase(suite="searchqa", id="x", expected="612 metres", data={"aliases": ["612 m"]})
    assert task_success(episode("612 m"), case) == 1.0
    assert task_success(episode("400 m"), case) < 0.5


def test_task_success_on_bfcl_calls() -> None:
    def calls(*made: ToolCall, errors: list[ToolCallParseError] | None = None) -> Trajectory:
        return episode(steps=[step(calls=list(made), parse_errors=errors or [])])

    right = ToolCall(name="add", arguments={"a": 1, "b": 2})
    assert task_success(calls(right), ADD_CASE) == 1.0
    assert task_success(calls(ToolCall(name="add", arguments={"a": 1, "b": 3})), ADD_CASE) == 0.0
    assert task_success(calls(right, right), ADD_CASE) == 0.0
    unreadable = [ToolCallParseError(raw="{", message="bad JSON")]
    assert task_success(calls(right, errors=unreadable), ADD_CASE) == 0.0
    irrelevant = ADD_CASE.model_copy(update={"category": "irrelevance", "expected": []})
    assert (
        task_success(calls(), irrelevant) == 1.0 and task_success(calls(right), irrelevant) == 0.0
    )


def test_well_formed_calls_is_the_share_of_steps_without_parse_errors() -> None:
    bad = step(1, parse_errors=[ToolCallParseError(raw="<tool_call>{", message="bad JSON")])
    assert well_formed_calls(episode(steps=[step(0), bad, step(2), step(3)])) == 0.75
    assert well_formed_calls(episode(steps=[step(0)])) == 1.0


def test_valid_arguments_counts_argument_and_name_refusals_only() -> None:
    call = ToolCall(name="web_search", arguments={"q": "x"})
    bad_args, not_json = SEARCH.run({"q": "x"}), SEARCH.run("{not json")
    assert bad_args.kind == not_json.kind == "arguments"
    runs = [
        run(call, bad_args.error, bad_args.kind),
        run(call, not_json.error, not_json.kind),
        run(ToolCall(name="browse"), "no tool named 'browse'", "unknown_tool"),
        run(call, "fetch failed: HTTP 404"),  # the tool failed, not the call
        run(call, "you already called web_search with these arguments", "repeat"),
        run(call),
        run(ToolCall(name="(unreadable)"), "bad JSON", "unreadable"),  # well_formed_calls'
        # The wording does not count, the kind does: a tool's own error that reads like one.
        run(call, "bad arguments for web_search: the server said so"),
    ]
    assert valid_arguments(episode(steps=[step(tool_runs=runs)])) == pytest.approx(4 / 7)
    assert valid_arguments(episode()) == 1.0


@pytest.mark.parametrize(
    ("outcome", "score"),
    [("answer", 1.0), ("step_limit", 0.0), ("token_limit", 0.0), ("time_limit", 0.0)]
    + [("doom_loop", 0.0), ("repeated_call", 0.0), ("error", 0.0), (None, 0.0)],
)
def test_within_budget(outcome: str | None, score: float) -> None:
    assert within_budget(episode(outcome=outcome)) == score  # type: ignore[arg-type]


def test_repetition_penalty_is_high_for_loops_and_zero_for_fresh_tokens() -> None:
    fresh = step(0, list(range(40)))
    loop = step(1, [7, 8, 9] * 40)
    assert repetition_penalty(episode(steps=[fresh])) == 0.0
    assert repetition_penalty(episode(steps=[loop])) > 0.9
    mixed = repetition_penalty(episode(steps=[fresh, loop]))
    assert 0.5 < mixed < 0.9  # weighted by length: 40 fresh tokens, 120 looping
    assert repetition_penalty(episode(steps=[step(0, [])])) == 0.0


def test_total_counts_the_answer_only_within_budget() -> None:
    right = rewards(episode("Halvern"), "Halvern")
    assert right["total"] == pytest.approx(1.3)
    assert right["task"] == 1.0 and right["repetition"] == 0.0
    late = total(episode("Halvern", outcome="step_limit"), "Halvern")
    wrong = total(episode("Marrowdale"), "Halvern")
    assert late == pytest.approx(0.2) and wrong == pytest.approx(0.3)
    assert right["total"] > wrong > late
    looping = episode("Halvern", steps=[step(0, [7, 8, 9] * 40)])
    assert total(looping, "Halvern") < right["total"]
    only_task = RewardWeights(well_formed=0, valid_arguments=0, within_budget=0, repetition=0)
    assert total(episode("Halvern"), "Halvern", only_task) == 1.0


def answered(*steps: Step, answer: str = "It is 4.", **meta: Any) -> Trajectory:
    """An ordinary (no case) episode that ended with `answer`."""
    return Trajectory(task="q", final_answer=answer, outcome="answer", steps=list(steps), meta=meta)


def calling(index: int, *calls: ToolCall) -> Step:
    return step(index, list(range(100 + 20 * index, 120 + 20 * index)), calls=list(calls))


def test_verifiable_is_one_for_a_flawless_episode_and_lower_for_each_flaw() -> None:
    a, b = ToolCall(name="lookup", arguments={"q": "x", "n": 1}), ToolCall(name="lookup")
    flawless = verifiable(answered(calling(0, a), calling(1, b), step(2)))
    assert flawless["total"] == 1.0 and acceptable(flawless)
    # The same name and arguments again (key order aside) is a repeat; other arguments are not.
    again = ToolCall(name="lookup", arguments={"n": 1, "q": "x"})
    repeated = verifiable(answered(calling(0, a), calling(1, again), step(2)))
    assert repeated["no_repeats"] == 0.5 and repeated["total"] < flawless["total"]
    empty = verifiable(answered(calling(0, a), step(1), answer="  "))
    fallback = verifiable(answered(calling(0, a), step(1), answered_by="fallback"))
    for flawed in (repeated, empty, fallback):
        assert flawed["total"] < 1.0 and not acceptable(flawed)
    assert empty["own_answer"] == fallback["own_answer"] == 0.0
    limit = answered(calling(0, a), step(1)).model_copy(update={"outcome": "step_limit"})
    assert verifiable(limit)["total"] == pytest.approx(5 / 6) and not acceptable(verifiable(limit))
    # A turn the guard stopped as a doom loop, though a resample then answered.
    resampled = answered(step(0, finish_reason="doom_loop"), step(1))
    assert verifiable(resampled)["no_loops"] == 0.5 and not acceptable(verifiable(resampled))


def test_verifiable_shaping_terms_lower_the_total_but_keep_it_acceptable() -> None:
    bad = step(0, parse_errors=[ToolCallParseError(raw="<tool_call>{", message="bad JSON")])
    unreadable = verifiable(answered(bad, step(1)))
    assert unreadable["well_formed"] == 0.5 and unreadable["total"] == pytest.approx(11 / 12)
    looping = verifiable(answered(step(0, [7, 8, 9] * 40)))
    assert looping["repetition"] > 0.9 and looping["total"] < 0.6
    assert acceptable(unreadable) and acceptable(looping)  # ranked low, not ruled out
