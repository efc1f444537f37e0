"""The doom-loop suite: fixed prompts with right answers, the loop test, guard off and on."""

from __future__ import annotations

import re
from typing import Any

from agent.settings import load_settings
from evals import doomloop
from evals.common import split_of
from model.generate import Generator
from model.scripted import LOOP_TEXT, ScriptedGenerator


def test_cases_are_fixed_paired_and_split_disjoint() -> None:
    every = doomloop.load_cases("all")
    assert len(every) == len(doomloop.FAMILIES) * doomloop.PER_FAMILY * 2
    train, test = doomloop.load_cases("train"), doomloop.load_cases("test")
    assert not {c.id for c in train} & {c.id for c in test}
    assert len(train) + len(test) == len(every)
    for split, cases in (("train", train), ("test", test)):
        assert {c.data["family"] for c in cases} == set(doomloop.FAMILIES)
        for off, on in zip(cases[::2], cases[1::2], strict=True):
            base = off.id.removesuffix(":off")
            assert on.id == f"{base}:on" and split_of(base) == split
    first = every[0]
    assert (first.id, first.prompt, first.expected) == (
        "arith-0:off",
        "Compute 40*17 - 3*6 step by step.",
        "662",
    )
    assert [c.id for c in doomloop.load_cases("all", limit=4)] == [
        "arith-0:off",
        "arith-0:on",
        "chain-0:off",
        "chain-0:on",
    ]


def test_answers_are_right() -> None:
    """Each family's answer, worked out again from the prompt text alone."""
    for case in doomloop.load_cases("all")[::2]:
        p, family = case.prompt, case.data["family"]
        nums = [int(n) for n in re.findall(r"\d+", p)]
        if family == "arith":
            a, b, c, d = nums
            assert case.expected == str(a * b - c * d)
        elif family == "chain":
            a, b, c, d, e = nums
            assert ((a + b) * c - d) % e == 0 and case.expected == str(((a + b) * c - d) // e)
        elif family == "collatz":
            n, steps = nums[0], 0
            while n != 1:
                n, steps = (n // 2 if n % 2 == 0 else 3 * n + 1), steps + 1
            assert case.expected == str(steps) and nums[1:] == [3, 1, 1]
        elif family == "weekday":
            start = next(d for d in doomloop.DAYS if p.startswith(f"Today is {d}"))
            assert case.expected == doomloop.DAYS[(doomloop.DAYS.index(start) + nums[0]) % 7]
        else:
            taller = re.findall(r"(\w+) is taller than (\w+)", p)
            taller += [(b, a) for a, b in re.findall(r"(\w+) is shorter than (\w+)", p)]
            people = {x for pair in taller for x in pair}
            below = {lo for _, lo in taller}
            above = {hi for hi, _ in taller}
            want = (people - above) if "shortest" in p else (people - below)
            assert len(taller) == 3 and {case.expected} == want


def test_scorers(tiny: Any) -> None:
    tok = tiny("qwen2").tokenizer
    loop = tok(LOOP_TEXT * 40)["input_ids"][:512]
    fresh = list(range(1000, 1512))  # (byte tokens repeat 4-grams even in fresh prose)
    assert doomloop.looped(loop, "length") and not doomloop.looped(fresh, "length")
    assert doomloop.looped(fresh, "doom_loop")
    # A short loop that ended by itself: the guard's test still calls it a loop...
    assert doomloop.looped(tok(LOOP_TEXT * 8)["input_ids"], "eos")
    # ...and mostly repeating text cut off by the limit counts even below the guard's n-gram.
    stutter = tok("ab " * 300)["input_ids"]
    wide = doomloop.GuardSettings(ngram=64, max_repeats=1000)  # never fires
    assert doomloop.looped(stutter, "length", wide) and not doomloop.looped(stutter, "eos", wide)
    assert doomloop.answer_correct("680 - 18 = 662. The answer is 662.", "662")
    assert not doomloop.answer_correct("662 - 1 = 661", "662")  # the last number counts
    assert doomloop.answer_correct("It comes to 1,204", "1204")
    days = doomloop.DAYS
    assert doomloop.answer_correct("From Monday, 63 days is 9 weeks: Monday.", "Monday", days)
    assert not doomloop.answer_correct("Monday plus 2 is Wednesday", "Monday", days)
    assert not doomloop.answer_correct("I don't know", "Dana", ["Dana", "Chen"])


def run(tiny: Any, case_id: str, outputs: list[str | None], **overrides: Any) -> Any:
    case = next(c for c in doomloop.load_cases("all") if c.id == case_id)
    gen = ScriptedGenerator(tiny("qwen2"), outputs)
    return doomloop.run_case(gen, case, load_settings(None, overrides)), gen


def test_guard_off_lets_a_loop_run_and_sees_it(tiny: Any) -> None:
    result, gen = run(tiny, "arith-0:off", [None])  # guard enabled in settings: off anyway
    d = result.details
    assert d["looped"] and d["guard_would_fire"] and d["finish_reason"] == "length"
    assert d["tokens"] == doomloop.MAX_NEW_TOKENS and d["repetition_ratio"] > 0.9
    assert result.score == 0.0 and not result.correct and not d["correct_answer"]
    prompt = gen.lm.tokenizer.decode(gen.prompts[0])
    assert doomloop.SYSTEM in prompt and "Compute 40*17 - 3*6" in prompt
    clean, _ = run(tiny, "arith-0:off", ["40*17 = 680 and 3*6 = 18, so 680 - 18 = 662."])
    assert clean.score == 1.0 and not clean.details["looped"] and clean.details["correct_answer"]
    assert clean.details["finish_reason"] == "eos"


def test_guard_on_catches_the_loop(tiny: Any) -> None:
    overrides = {"guard.enabled": False}  # the suite arms it whatever the settings say
    result, gen = run(tiny, "arith-0:on", [None, None], **overrides)
    d = result.details
    assert d["looped"] and d["finish_reason"] == "doom_loop" and d["outcome"] == "doom_loop"
    assert not d["recovered"] and d["steps"] == 2 and result.score == 0.0
    assert d["tokens"] < doomloop.MAX_NEW_TOKENS  # stopped early, twice
    assert "<tools>" not in gen.lm.tokenizer.decode(gen.prompts[0])
    saved, _ = run(tiny, "arith-0:on", [None, "It is 662."], **overrides)
    assert saved.details["looped"] and saved.details["recovered"] and saved.score == 0.0
    assert saved.details["correct_answer"] and saved.output == "It is 662."
    clean, _ = run(tiny, "order-0:on", ["So the shortest is Farah."])
    assert clean.score == 1.0 and clean.details["finish_reason"] == "eos"
    assert clean.details["correct_answer"] and clean.details["steps"] == 1


def test_run_cases_batches_the_off_cases_and_agrees_with_run_case(tiny: Any) -> None:
    cases = doomloop.load_cases("test")[:5]  # off and on cases, paired
    settings = load_settings(None, {"eval.batch": 3})
    gen = Generator(tiny("qwen2"))
    results = list(doomloop.run_cases(gen, cases, settings))
    assert sorted(r.id for r in results) == sorted(c.id for c in cases)
    methods = [r.details["method"] for r in results]
    assert methods == sorted(methods)  # every off case before the first on episode
    for r in results:
        one = doomloop.run_case(gen, next(c for c in cases if c.id == r.id), settings)
        assert (r.output, r.correct, r.details["tokens"]) == (
            one.output, one.correct, one.details["tokens"]
        )  # fmt: skip
