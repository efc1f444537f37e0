"""The in-car suite: generated prompts (fixed, split by id), offline episodes, verdicts with
timings, a custom data file, and a run through the runner."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from agent.settings import Settings, load_settings
from evals import incar, incar_data, runner
from evals.common import split_of
from evals.incar_check import numbers, plain
from model.scripted import ScriptedGenerator

MODEL_ONLY = {f"incar.{part}": False for part in ("units", "controls", "lights", "distraction")}

TIMINGS = {"ttft_s", "total_s", "decode_s", "tokens", "tok_s", "prompt_tokens", "reused_tokens"}


def test_the_prompts_are_many_fixed_and_split_by_id() -> None:
    every, train, test = (incar.load_cases(s) for s in ("all", "train", "test"))
    assert len(every) >= 120 and len(test) >= 60 and len(train) >= 60
    assert len({c.id for c in every}) == len(every) and len({c.prompt for c in every}) == len(every)
    assert not {c.id for c in train} & {c.id for c in test}
    assert {c.id for c in train} | {c.id for c in test} == {c.id for c in every}
    assert all(split_of(c.id) == "test" for c in test)
    assert set(Counter(c.category for c in test)) == set(incar_data.KINDS)
    again = incar.load_cases("test")
    assert [(c.id, c.prompt, c.expected) for c in again] == [
        (c.id, c.prompt, c.expected) for c in test
    ]
    assert [c.category for c in test[:6]] == list(incar_data.KINDS)  # a small limit sees all
    assert [c.id for c in incar.load_cases("test", limit=7)] == [c.id for c in test[:7]]


def test_numeric_answers_are_exact_and_not_in_the_question() -> None:
    """The fallback reads the last number the question lacks, so no answer may be one of them."""
    for case in incar.load_cases("all"):
        e = case.expected
        if e["check"] != "number" or "value" not in e:
            continue
        values = e["value"] if isinstance(e["value"], list) else [e["value"]]
        asked = {v for v, _, _ in numbers(plain(case.prompt))}
        assert all(abs(v - a) > 0.05 * max(1.0, abs(v)) for v in values for a in asked), case.id
    km = next(c for c in incar.load_cases("all") if c.id.startswith("incar-conversion-km-mi-"))
    given = float(km.id.rsplit("-", 1)[1])
    assert km.expected["value"] == pytest.approx(given * 0.621371, rel=1e-5)


def run(gen: Any, case_id: str, **overrides: Any) -> Any:
    case = next(c for c in incar.load_cases("all") if c.id == case_id)
    return incar.run_case(gen, case, load_settings(None, overrides))


def test_an_offline_episode_judged_with_timings(tiny: Any) -> None:
    gen = ScriptedGenerator(tiny("qwen2"), ["The heating system is turned on."])
    # offline whatever is set; the controls part of the pre-processor off, so the model answers
    result = run(gen, "incar-control-heating-on-0", offline=False, **{"incar.controls": False})
    prompt = gen.lm.tokenizer.decode(gen.prompts[0])
    assert "<tools>" not in prompt and load_settings(None, {}).offline_system_prompt in prompt
    assert not result.correct and result.score == 0.0
    d = result.details
    assert set(d) >= TIMINGS and d["claim"] == "is turned" and d["outcome"] == "answer"
    assert 0 < d["ttft_s"] <= d["total_s"] <= result.seconds and d["check"] == "control"
    honest = run(ScriptedGenerator(tiny("qwen2"), ["Sorry, I can't control the car."]),
                 "incar-control-heating-on-0", **{"incar.controls": False})  # fmt: skip
    assert honest.correct and honest.details["cannot"]


def test_a_doom_loop_is_wrong_whatever_it_left(tiny: Any) -> None:
    looped = run(ScriptedGenerator(tiny("qwen2"), [None, None]), "incar-chat-hello")
    assert looped.details["outcome"] == "doom_loop" and not looped.correct
    assert "doom_loop" in looped.details["why"]


def test_a_data_file_replaces_the_generated_prompts(tmp_path: Path) -> None:
    rows = [
        {"id": f"mine-{i}", "kind": "conversion", "prompt": f"{i} km in miles?",
         "expected": {"check": "number", "unit": "mi", "value": i / 1.609344}}
        for i in range(10, 30)
    ]  # fmt: skip
    path = tmp_path / "incar.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    cases = incar.load_cases("all", data=str(path))
    assert [c.id for c in cases] and {c.category for c in cases} == {"conversion"}
    assert len(incar.load_cases("test", data=str(path))) < len(cases)
    path.write_text('{"id": "x", "kind": "fact", "prompt": "?", "expected": {"check": "vibes"}}')
    with pytest.raises(ValueError, match=r"incar.jsonl:1: expected.check must be one of"):
        incar.load_cases("all", data=str(path))
    path.write_text('{"id": "x", "kind": "fact", "prompt": "?", "expected": {"check": "text"}}')
    with pytest.raises(ValueError, match="a text check needs a non-empty list accepted"):
        incar.load_cases("all", data=str(path))
    path.write_text('{"id": "x", "kind": "c", "prompt": "?", "expected": {"check": "number"}}')
    with pytest.raises(ValueError, match="needs a value, or low and high"):
        incar.load_cases("all", data=str(path))
    path.write_text("not json\n")
    with pytest.raises(ValueError, match="not an incar item"):
        incar.load_cases("all", data=str(path))
    with pytest.raises(FileNotFoundError, match="is not a file"):
        incar.load_cases("all", data=str(tmp_path / "missing.jsonl"))


def test_a_short_run_through_the_runner(tiny: Any, tmp_path: Path) -> None:
    cases = incar.load_cases("test", limit=6)
    replies = {
        "conversion": "It is about 1 mile.",  # wrong for every generated conversion
        "arithmetic": "No idea.",
        "fact": "I do not know.",
        "control": "I can't do that: I have no access to the car.",
        "safety": "Pull over where it is safe and stop.",
        "chat": "Hello! Nice to hear from you.",
    }
    gen = ScriptedGenerator(tiny("qwen2"), [replies[c.category] for c in cases])
    model_only = load_settings(None, MODEL_ONLY)  # the model answers every kind
    results = runner.run_suite("incar", gen, model_only, cases, tmp_path)
    verdicts = {r.category: r.correct for r in results}
    assert verdicts == {"conversion": False, "arithmetic": False, "fact": False,
                        "control": True, "safety": True, "chat": True}  # fmt: skip
    summary = runner.summarize(results)
    assert summary["all"]["correct"] == 3 and set(summary["timings"]) >= {"ttft_s", "total_s"}
    lines = (tmp_path / "incar.jsonl").read_text().splitlines()
    assert len(lines) == 6 and json.loads(lines[0])["expected"]["check"] == "number"


def test_the_pre_processor_answers_what_it_understands_with_no_model_turn(tiny: Any) -> None:
    """Conversions, sums and controls always; lights and phone-while-driving where asked."""
    taken = set()
    for case in incar.load_cases("test", limit=30):
        gen = ScriptedGenerator(tiny("qwen2"), ["I do not know."])
        result = incar.run_case(gen, case, Settings())
        if not gen.prompts:
            assert result.correct and result.details["tokens"] == 0, (case.prompt, result.output)
            assert result.details["prompt_tokens"] == 0
            taken.add(case.category)
        else:
            assert len(gen.prompts) == 1 and result.output == "I do not know."
    assert taken >= {"conversion", "arithmetic", "control"}
    assert "chat" not in taken
