"""The latency suite: fixed offline prompts, timings in the details, the budget and the loop."""

from __future__ import annotations

from typing import Any

import pytest

from agent.settings import load_settings
from evals import latency
from model.generate import Generator
from model.scripted import ScriptedGenerator

TIMINGS = {"ttft_s", "total_s", "decode_s", "tokens", "tok_s", "prompt_tokens", "reused_tokens"}


def test_cases_are_fixed_and_split_disjoint() -> None:
    every = latency.load_cases("all")
    train, test = latency.load_cases("train"), latency.load_cases("test")
    assert len(every) == len(latency.PROMPTS) >= 20
    assert train and test and not {c.id for c in train} & {c.id for c in test}
    assert {c.id for c in train} | {c.id for c in test} == {c.id for c in every}
    assert every[0].id == "latency-heating-on" and every[0].prompt == "Turn on the heating."
    assert [c.id for c in latency.load_cases("test", limit=2)] == [c.id for c in test[:2]]


def run(gen: Generator, case_id: str = "latency-joke", **overrides: Any) -> Any:
    case = next(c for c in latency.load_cases("all") if c.id == case_id)
    return latency.run_case(gen, case, load_settings(None, overrides))


def test_offline_answer_with_timings(tiny: Any) -> None:
    gen = ScriptedGenerator(tiny("qwen2"), ["A car walks into a bar."])
    result = run(gen, offline=False)  # the suite is offline whatever the settings say
    prompt = gen.lm.tokenizer.decode(gen.prompts[0])
    assert "<tools>" not in prompt and "web_search" not in prompt
    assert load_settings(None, {}).offline_system_prompt in prompt
    assert "Tell me a short joke." in prompt
    d = result.details
    assert set(d) >= TIMINGS and d["answered"] and d["outcome"] == "answer"
    assert d["tokens"] == len(gen.encode("A car walks into a bar.")) + 1  # and the stop token
    assert 0 < d["ttft_s"] <= d["total_s"] <= result.seconds
    assert result.score == 1.0 and result.correct and result.output == "A car walks into a bar."


def test_a_loop_or_silence_is_a_failure(tiny: Any) -> None:
    looped = run(ScriptedGenerator(tiny("qwen2"), [None, None]))
    assert looped.details["outcome"] == "doom_loop" and not looped.details["answered"]
    assert looped.score == 0.0 and looped.details["finish_reason"] == "doom_loop"
    silent = run(ScriptedGenerator(tiny("qwen2"), [""]))
    assert silent.score == 0.0 and not silent.details["answered"]


def test_over_budget_is_a_failure(tiny: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    assert latency.within_budget("Done.", "answer", 4.9, 5.0)
    assert not latency.within_budget("Done.", "answer", 5.1, 5.0)
    assert not latency.within_budget("  ", "answer", 0.1, 5.0)
    monkeypatch.setattr(latency, "BUDGET_S", 0.0)
    late = run(ScriptedGenerator(tiny("qwen2"), ["A car walks into a bar."]))
    assert late.details["answered"] and late.score == 0.0 and late.details["budget_s"] == 0.0


def test_a_real_tiny_model_reports_real_timings(tiny: Any) -> None:
    # Not a conversion: the in-car pre-processor answers those with no model turn to time.
    result = run(Generator(tiny("qwen2")), "latency-tyre", **{"sampling.max_new_tokens": 500})
    d = result.details
    assert 0 < d["tokens"] <= latency.MAX_NEW_TOKENS  # capped for short answers
    assert d["ttft_s"] > 0 and d["decode_s"] > 0 and d["prompt_tokens"] > 20
    if d["tokens"] > 1:
        assert d["tok_s"] == pytest.approx((d["tokens"] - 1) / d["decode_s"])
