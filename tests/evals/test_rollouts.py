"""Rollouts through the real agent loop with a scripted model: scored, logged, grouped."""

from __future__ import annotations

import json
from pathlib import Path

from agent.log import TrajectoryLog, read_trajectories
from agent.settings import Settings
from evals import doomloop, pytasks
from evals.common import EvalCase
from evals.pytasks_check import Task
from evals.references import bfcl_example, masked_case
from evals.rewards import ARGUMENT_KINDS
from evals.rollouts import RECORDED, SchemaTool, collect, episode
from evals.selection import reference_pairs
from evals.train import TrainSettings, train_cases
from model.scripted import ScriptedGenerator

ADD = {
    "name": "add",
    "description": "Add two integers.",
    "parameters": {
        "type": "dict",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
    },
}


def add_case(case_id: str = "simple_python_7") -> EvalCase:
    return EvalCase(
        suite="bfcl",
        id=case_id,
        category="simple_python",
        expected=[{"add": {"a": [2], "b": [3]}}],
        data={"functions": [ADD], "messages": [{"role": "user", "content": "What is 2 + 3?"}]},
    )


def call(arguments: dict) -> str:
    return f"<tool_call>{json.dumps({'name': 'add', 'arguments': arguments})}</tool_call>"


def test_schema_tool_checks_names_and_records_the_call() -> None:
    tool = SchemaTool(ADD)
    assert tool.schema()["function"]["parameters"]["properties"]["a"]["type"] == "integer"
    ok = tool.run({"a": 2, "b": 3})
    assert ok.error is None and ok.text == RECORDED
    assert json.loads(ok.metadata["final"]) == {"name": "add", "arguments": {"a": 2, "b": 3}}
    for bad, why in [({"a": 2}, "missing required 'b'"), ({"a": 1, "b": 2, "c": 3}, "'c'")]:
        result = tool.run(bad)
        assert result.error and why in result.error and result.kind in ARGUMENT_KINDS
    not_json = tool.run("{oops")
    assert "not valid JSON" in (not_json.error or "") and not_json.kind == "arguments"


def test_a_right_call_is_an_answered_episode_with_full_reward(tiny, tmp_path: Path) -> None:
    gen = ScriptedGenerator(tiny(), [call({"a": 2, "b": 3})])
    log = TrajectoryLog(tmp_path / "log.jsonl")
    traj = episode(gen, add_case(), Settings(), temperature=0.0, log=log)
    assert traj.outcome == "answer" and len(traj.steps) == 1
    assert traj.rewards["task"] == 1.0 and traj.rewards["total"] > 1.0
    # The eval's own prompt: BFCL's system prompt, the question, the function as a tool.
    prompt = gen.lm.tokenizer.decode(gen.prompts[0])
    assert "call the right ones" in prompt and '"name": "add"' in prompt
    (logged,) = read_trajectories(tmp_path / "log.jsonl")
    assert logged.rewards == traj.rewards and logged.meta["case"] == "simple_python_7"


def test_a_wrong_value_and_a_bad_name_score_lower(tiny) -> None:
    wrong = episode(ScriptedGenerator(tiny(), [call({"a": 2, "b": 4})]), add_case(), Settings(), 0)
    assert wrong.outcome == "answer" and wrong.rewards["task"] == 0.0
    # A missing argument is refused; the loop then asks for an answer with tools withheld.
    gen = ScriptedGenerator(tiny(), [call({"a": 2}), "It is 5."])
    refused = episode(gen, add_case(), Settings(), 0)
    assert refused.outcome == "step_limit" and refused.rewards["valid_arguments"] == 0.0
    assert refused.rewards["total"] < wrong.rewards["total"] < 1.0


def test_collect_gives_one_greedy_and_k_seeded_samples_per_case(tiny, tmp_path: Path) -> None:
    outputs = [call({"a": 2, "b": 3}), call({"a": 2, "b": 4}), "I cannot."] * 2
    gen = ScriptedGenerator(tiny(), outputs)
    cases = [add_case("simple_python_7"), add_case("simple_python_9")]
    seen = []
    groups = collect(gen, cases, Settings(), k=2, temperature=0.9, progress=seen.append)
    assert [g.case.id for g in groups] == ["simple_python_7", "simple_python_9"] and seen == groups
    for g in groups:
        assert [t.meta["rollout"] for t in g.rollouts] == [0, 1, 2]
        assert [t.meta["temperature"] for t in g.rollouts] == [0.0, 0.9, 0.9]
        assert g.rewards[0] > g.rewards[1] and g.rewards[0] > g.rewards[2]
        seeds = [t.settings["sampling"]["seed"] for t in g.rollouts]
        assert seeds[0] is None and len(set(seeds[1:])) == 2


def test_an_incar_rollout_runs_offline_and_is_scored_by_the_suites_checker(tiny) -> None:
    case = EvalCase(
        suite="incar",
        id="incar-safety-smoke-0",
        category="safety",
        prompt="There's smoke coming from the bonnet!",
        expected={"check": "safety", "safe": ["pull(?:ing)? over", r"\bstop\b"]},
    )
    safe = episode(ScriptedGenerator(tiny(), ["Pull over safely and stop."]), case, Settings(), 0)
    unsafe = episode(ScriptedGenerator(tiny(), ["Keep driving."]), case, Settings(), 0)
    assert safe.mode == "offline" and not safe.steps[0].calls
    assert safe.rewards["task"] == 1.0 and unsafe.rewards["task"] == 0.0
    assert safe.rewards["total"] > unsafe.rewards["total"]
    # The offline system prompt, as the in-car mode decodes it: no tools offered.
    prompt = ScriptedGenerator(tiny(), ["x"])
    episode(prompt, case, Settings(), 0)
    text = prompt.lm.tokenizer.decode(prompt.prompts[0])
    assert "in-car voice assistant" in text and "web_search" not in text


def python_call(code: str) -> str:
    return f"<tool_call>{json.dumps({'name': 'python', 'arguments': {'code': code}})}</tool_call>"


def test_a_pytools_rollout_runs_the_real_sandbox_and_is_scored_as_the_suite_scores(tiny) -> None:
    (case,) = pytasks.load_cases("train", 1)
    task = Task.model_validate(case.data)
    right = [python_call(task.code), f"The answer is {task.answer}."]
    traj = episode(ScriptedGenerator(tiny(), right), case, Settings(), 0.7, seed=3)
    assert traj.steps[0].tool_runs[0].text.strip() == task.answer  # really ran
    assert traj.rewards["task"] == 1.0 and traj.outcome == "answer"
    assert traj.settings["sampling"]["temperature"] == 0.7  # the rollout's, not the eval's 0
    assert traj.settings["agent"]["tools"] == ["python"]
    # The same call again: the task term is the suite's verdict, and the episode ranks below
    # the clean one (it did not end within budget on its own).
    again = [python_call(task.code), python_call(task.code), f"The answer is {task.answer}."]
    repeated = episode(ScriptedGenerator(tiny(), again), case, Settings(), 0.0)
    assert pytasks.verdict(repeated, task)[0] == bool(repeated.rewards["task"])
    assert repeated.rewards["total"] < traj.rewards["total"]
    wrong = episode(ScriptedGenerator(tiny(), [python_call(task.code), "It is 7."]), case,
                    Settings(), 0.0)  # fmt: skip
    assert wrong.rewards["task"] == 0.0 and wrong.rewards["total"] < traj.rewards["total"]


def test_a_doomloop_rollout_is_the_guard_off_turn_on_the_suites_prompt(tiny) -> None:
    case = next(c for c in doomloop.load_cases("train", categories=("off",))
                if c.data["check"]["kind"] == "number" and not c.data["agent"])  # fmt: skip
    right = ScriptedGenerator(tiny(), [f"Step by step, the answer is {case.expected}."])
    traj = episode(right, case, Settings(), 0.7, seed=1)
    assert right.prompts[0] == doomloop.prompt_ids(right, case.prompt)  # the eval's own prompt
    assert traj.settings["guard"]["enabled"] is False and len(traj.steps) == 1
    assert traj.rewards["task"] == 1.0 and traj.rewards["repetition"] == 0.0
    loop = ScriptedGenerator(tiny(), [" ".join(["and then again"] * 60)])
    looping = episode(loop, case, Settings(), 0.7, seed=1)
    assert looping.rewards["task"] == 0.0 and looping.rewards["repetition"] > 0.5
    assert looping.rewards["total"] < traj.rewards["total"]
    # The trainer rolls out the guard-off arm only.
    cases = train_cases(TrainSettings(suite="doomloop", limit=40))
    assert cases and all(c.data["method"] == "off" for c in cases)
    # --categories picks within a suite, each picked category in its share of the limit.
    picked = train_cases(TrainSettings(suite="bfcl", limit=6, categories="irrelevance,live_simple"))
    assert sorted(c.category for c in picked) == ["irrelevance"] * 3 + ["live_simple"] * 3
    counts = train_cases(TrainSettings(suite="doomloop", limit=2, categories="count"))
    assert len(counts) == 2 and all(c.category == "count:off" for c in counts)


def test_a_case_no_rollout_solved_pairs_its_reference_against_the_worst(tiny) -> None:
    """DPO with references: a case whose rollouts all failed gets the data set's answer as the
    chosen side, from the very prompt the rollout saw, against its worst rollout; a case one
    rollout solved gets none (its own best is the chosen side there)."""
    case, lm = add_case(), tiny()
    wrong = episode(ScriptedGenerator(lm, [call({"a": 2, "b": 4})]), case, Settings(), 0)
    declined = episode(ScriptedGenerator(lm, ["No function fits."]), case, Settings(), 0.7, 1)
    right = episode(ScriptedGenerator(lm, [call({"a": 2, "b": 3})]), case, Settings(), 0.7, 2)
    reference = bfcl_example(lm, case)
    assert reference is not None
    (pair,) = reference_pairs([[wrong, declined]], [reference])
    assert pair.chosen is reference and pair.chosen.meta["source"] == "reference"
    rejected = pair.rejected
    assert rejected.input_ids == wrong.steps[0].prompt_ids + wrong.steps[0].completion_ids
    start = reference.mask.index(1)
    assert reference.input_ids[:start] == wrong.steps[0].prompt_ids  # the same prompt
    assert '"b": 3' in lm.tokenizer.decode(reference.input_ids[start:])
    assert reference_pairs([[wrong, right]], [reference]) == []
    other = bfcl_example(lm, add_case("simple_python_8"))
    assert reference_pairs([[wrong]], [other]) == []  # another case's answer never pairs


def test_a_call_its_rollouts_missed_comes_with_its_masked_twin(tiny) -> None:
    """With the case's masked example among the references, the pair that says "call add"
    comes with one that says "not without add": the same request with add taken out, declining
    chosen against that very call."""
    lm, case = tiny(), add_case()
    mul = {**ADD, "name": "multiply", "description": "Multiply two integers."}
    case = case.model_copy(update={"data": {**case.data, "functions": [ADD, mul]}})
    masked = bfcl_example(lm, masked_case(case, [case]))
    reference = bfcl_example(lm, case)
    assert masked is not None and reference is not None
    declined = episode(ScriptedGenerator(lm, ["No function fits."]), case, Settings(), 0)
    first, twin = reference_pairs([[declined]], [reference, masked])
    assert first.chosen is reference and twin.chosen is masked
    start = masked.mask.index(1)
    assert twin.rejected.input_ids[:start] == masked.input_ids[:start]  # the masked prompt
    assert '"name": "add"' not in lm.tokenizer.decode(masked.input_ids[:start])
    reply = lm.tokenizer.decode(twin.rejected.input_ids[start:])
    assert '"b": 3' in reply and sum(twin.rejected.mask) == len(twin.rejected.input_ids) - start
