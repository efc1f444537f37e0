"""The doom-loop suite: fixed prompts with checkable answers, the loop test, both arms decoded
alike, ended vs answered, the guard's catch and resample, and tool-repeat episodes."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from typing import Any

import pytest

from agent.loop import run_episode
from agent.settings import load_settings
from evals import doomloop, doomprompts, page, runner
from evals.common import split_of
from model.generate import Generator
from model.scripted import LOOP_TEXT, ScriptedGenerator


def test_cases_are_fixed_many_paired_and_split_disjoint() -> None:
    every = doomloop.load_cases("all")
    assert len(every) == 2 * sum(doomloop.PROMPTS.values()) and len(every) >= 2 * 200
    train, test = doomloop.load_cases("train"), doomloop.load_cases("test")
    assert not {c.id for c in train} & {c.id for c in test}
    assert len(train) + len(test) == len(every)
    assert len(test) >= 2 * 100  # at least 100 test prompts, each run both ways
    assert len({c.id for c in every}) == len(every)
    for split, cases in (("train", train), ("test", test)):
        assert {c.data["family"] for c in cases} == set(doomprompts.FAMILIES)
        for off, on in zip(cases[::2], cases[1::2], strict=True):
            base = off.id.removesuffix(":off")
            assert on.id == f"{base}:on" and split_of(base) == split
            assert (off.prompt, off.expected) == (on.prompt, on.expected)
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
    tool = next(c for c in every if c.data["family"] == "tool")
    assert tool.category == "tool:agent-off" and tool.data["agent"]


def test_categories_pick_families_and_arms() -> None:
    off = runner.load_suite_cases("doomloop", "test", None, None, "off")
    both = runner.load_suite_cases("doomloop", "test", None, None)
    assert {c.id for c in off} == {c.id for c in both if c.id.endswith(":off")}
    count = runner.load_suite_cases("doomloop", "test", 3, None, "count,on")
    assert len(count) == 3 and all(
        c.id.startswith("count-") and c.id.endswith(":on") for c in count
    )


def test_generators_are_deterministic_and_prompts_unique() -> None:
    """The same prompts, answers and checks in another process with another hash seed, and
    no prompt twice (a duplicate would waste a case, or sit in both splits)."""
    every = doomloop.load_cases("all")[::2]
    script = (
        "import json; from evals import doomloop as d; "
        "print(json.dumps([[c.prompt, c.expected, c.data] for c in d.load_cases('all')[::2]]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert json.loads(out.stdout) == [[c.prompt, c.expected, c.data] for c in every]
    assert len({c.prompt for c in every}) == len(every)
    assert doomprompts.problem("count", 0).prompt == (
        "Count from 505 to 541. Write every number, separated by commas."
    )
    assert len({doomprompts.problem("table", i).prompt for i in range(15)}) == 15


def test_old_families_answers_are_right() -> None:
    """Each puzzle family's answer, worked out again from the prompt text alone."""
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
            start = next(d for d in doomprompts.DAYS if p.startswith(f"Today is {d}"))
            assert case.expected == doomprompts.DAYS[(doomprompts.DAYS.index(start) + nums[0]) % 7]
        elif family == "order":
            taller = re.findall(r"(\w+) is taller than (\w+)", p)
            taller += [(b, a) for a, b in re.findall(r"(\w+) is shorter than (\w+)", p)]
            people = {x for pair in taller for x in pair}
            below = {lo for _, lo in taller}
            above = {hi for hi, _ in taller}
            want = (people - above) if "shortest" in p else (people - below)
            assert len(taller) == 3 and {case.expected} == want


def plain_answer(check: dict[str, Any]) -> str:
    """A reply that writes the answer plainly, the way a model that does not loop would."""
    if check["kind"] == "seq":
        return "Here they are:\n" + "\n".join(map(str, check["items"]))
    return "The primes are " + ", ".join(map(str, check["items"])) + "."


def test_every_sequence_answer_is_checked_and_fits(tiny: Any) -> None:
    """Every checkable list: the plain answer passes, one with an item dropped or changed
    fails, and the plain answer is neither a loop nor long (byte-level tokens, the worst case)."""
    tok = tiny("qwen2").tokenizer
    for case in doomloop.load_cases("all")[::2]:
        check = case.data["check"]
        if check["kind"] not in ("seq", "set"):
            continue
        text = plain_answer(check)
        assert doomprompts.answer_ok(text, case.expected, check), case.id
        items = check["items"]
        dropped = {**check, "items": items}
        assert not doomprompts.answer_ok(
            plain_answer({**check, "items": items[:3] + items[4:]}), case.expected, dropped
        ), case.id
        if check["of" if check["kind"] == "seq" else "kind"] in ("int", "set"):
            wrong = [*items[:-1], int(items[-1]) + 1 if check["kind"] == "seq" else 1]
            assert not doomprompts.answer_ok(plain_answer({**check, "items": wrong}), "", check)
        assert len(tok(text)["input_ids"]) < 3 * doomloop.MAX_NEW_TOKENS, case.id


@pytest.mark.slow
def test_plain_answers_fit_the_cap_and_never_trip_the_guard(embedded_lm, smollm2_lm) -> None:
    """With both embedded models' own tokenizers: every list answer, written plainly, takes
    under 60% of the token cap, and the guard's test stays quiet on it (a long right answer
    is not a loop)."""
    for lm in (embedded_lm, smollm2_lm):
        for case in doomloop.load_cases("all")[::2]:
            if case.data["check"]["kind"] in ("seq", "set"):
                ids = lm.tokenizer(plain_answer(case.data["check"]))["input_ids"]
                assert len(ids) < 0.6 * doomloop.MAX_NEW_TOKENS, (lm.spec, case.id, len(ids))
                assert not doomloop.looped(ids, "eos"), (lm.spec, case.id)


def test_checkers() -> None:
    ok = doomprompts.answer_ok
    assert ok("680 - 18 = 662. The answer is 662.", "662", {"kind": "number"})
    assert not ok("662 - 1 = 661", "662", {"kind": "number"})  # the last number counts
    assert ok("It comes to 1,204", "1204", {"kind": "number"})
    days = {"kind": "choice", "choices": doomprompts.DAYS}
    assert ok("From Monday, 63 days is 9 weeks: Monday.", "Monday", days)
    assert not ok("Monday plus 2 is Wednesday", "Monday", days)
    ints = {"kind": "seq", "of": "int", "items": [1024, 2048, 4096]}
    assert ok("2^10 = 1,024\n2^11 = 2,048\n2^12 = 4,096", "", ints)  # thousands separators
    assert ok("1024,2048,4096", "", ints) and not ok("1024, 4096, 2048", "", ints)
    words = {
        "kind": "seq",
        "of": "word",
        "items": ["three hundred forty-one", "three hundred forty-two"],
    }
    assert ok("Three hundred and forty-one\nthree hundred forty two", "", words)
    assert not ok("three hundred forty-two, three hundred forty-one", "", words)
    assert doomprompts.words(342) == "three hundred forty-two" and doomprompts.words(100) == (
        "one hundred"
    )
    letters = {"kind": "seq", "of": "letter", "items": ["Z", "Y", "X"]}
    assert ok("Z Y X", "", letters) and not ok("Z X Y", "", letters)
    binary = {"kind": "seq", "of": "binary", "items": ["101", "110"]}
    assert ok("5 = 101\n6 = 110", "", binary) and not ok("5 = 101\n6 = 111", "", binary)
    primes = {"kind": "set", "lo": 10, "hi": 20, "items": [11, 13, 17, 19]}
    assert ok("Between 10 and 20: 11, 13, 17, 19.", "", primes)
    assert not ok("11, 13, 15, 17, 19", "", primes) and not ok("11, 13, 17", "", primes)


def test_loop_test(tiny: Any) -> None:
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


def run(tiny: Any, case_id: str, outputs: list[str | None], **overrides: Any) -> Any:
    case = next(c for c in doomloop.load_cases("all") if c.id == case_id)
    gen = ScriptedGenerator(tiny("qwen2"), outputs)
    return doomloop.run_case(gen, case, load_settings(None, overrides)), gen


def test_ended_and_answered_are_scored_apart(tiny: Any) -> None:
    for method in ("off", "on"):
        right, _ = run(tiny, f"arith-0:{method}", ["40*17 = 680 and 3*6 = 18, so 662."])
        wrong, _ = run(tiny, f"arith-0:{method}", ["40*17 = 680 and 3*6 = 18, so 663."])
        assert (right.correct, right.score, right.details["answered"]) == (True, 1.0, True)
        assert (wrong.correct, wrong.score, wrong.details["answered"]) == (True, 0.0, False)
        assert right.details["ended"] and wrong.details["ended"] and not wrong.details["looped"]
        row = runner.summarize([right, wrong])["all"]  # accuracy: ended; mean score: answered
        assert (row["accuracy"], row["mean_score"], row["answered"]) == (1.0, 0.5, 1)
        assert page.cell(row) == "100% (2/2, CI 34–100%, loops 0%, 1 answered)"
    counted, _ = run(tiny, "count-0:off", [", ".join(map(str, range(505, 542))) + "."])
    skipped, _ = run(tiny, "count-0:off", [", ".join(map(str, range(505, 530))) + ", 541."])
    assert counted.details["answered"] and counted.score == 1.0
    assert skipped.correct and not skipped.details["answered"] and skipped.score == 0.0


def test_guard_off_lets_a_loop_run_and_sees_it(tiny: Any) -> None:
    result, gen = run(tiny, "arith-0:off", [None])  # guard enabled in settings: off anyway
    d = result.details
    assert d["looped"] and d["guard_would_fire"] and d["finish_reason"] == "length"
    assert d["tokens"] == doomloop.MAX_NEW_TOKENS and d["repetition_ratio"] > 0.9
    assert result.score == 0.0 and not result.correct and not d["ended"] and not d["answered"]
    prompt = gen.lm.tokenizer.decode(gen.prompts[0])
    assert doomloop.SYSTEM in prompt and "Compute 40*17 - 3*6" in prompt
    # A turn cut by the token limit did not end, even repeating too little to count as a loop.
    rng = random.Random(0)
    rambling = "".join(rng.choice("abcdefghij klmnopqrstuvwxyz") for _ in range(2000))
    cut, _ = run(tiny, "arith-0:off", [rambling])
    assert cut.details["finish_reason"] == "length" and not cut.details["looped"]
    assert not cut.correct and not cut.details["ended"]
    # A right answer said inside a loop is not an answer.
    looping, _ = run(tiny, "arith-0:off", ["The answer is 662. " * 60])
    assert looping.details["looped"] and not looping.details["answered"]


def test_guard_on_catches_the_loop_and_resamples_as_the_agent_does(tiny: Any) -> None:
    overrides = {"guard.enabled": False}  # the suite arms it whatever the settings say
    result, gen = run(tiny, "arith-0:on", [None, None], **overrides)
    d = result.details
    assert d["looped"] and d["caught"] and d["finish_reason"] == "doom_loop"
    assert d["final_finish_reason"] == "doom_loop" and not d["ended"] and not d["recovered"]
    assert d["steps"] == 2 and result.score == 0.0 and not result.correct
    assert d["tokens"] < doomloop.MAX_NEW_TOKENS  # stopped early, twice
    saved, gen = run(tiny, "arith-0:on", [None, "It is 662."], **overrides)
    d = saved.details
    assert d["looped"] and d["caught"] and d["recovered"] and d["ended"] and d["answered"]
    assert saved.correct and saved.score == 1.0 and saved.output == "It is 662."
    # The resample's prompt is the agent's own after a caught loop (nudge, no tools).
    agent = ScriptedGenerator(tiny("qwen2"), [None, "It is 662."])
    case = doomloop.case_of("arith", 0, "on")
    list(run_episode(agent, case.prompt, {}, doomloop.agent_settings(load_settings(None, {}), True)
                     .model_copy(update={"offline": True}), system=doomloop.SYSTEM))  # fmt: skip
    assert gen.prompts == agent.prompts


def test_both_arms_decode_alike_batched(tiny: Any) -> None:
    """Off and on first turns go through the same batched decoding: a row the guard did not
    catch is the same tokens in both arms, a caught row is a prefix of its off tokens."""
    cases = [c for c in doomloop.load_cases("test") if not c.data["agent"]][:12]
    settings = load_settings(
        None, {"eval.batch": 3, "guard.ngram": 2, "guard.max_repeats": 3, "guard.varied_repeats": 3}
    )
    gen = Generator(tiny("qwen2"))
    off = {c.id.split(":")[0]: d for c, d in doomloop.first_turns(gen, cases[::2], settings, False)}
    on = {c.id.split(":")[0]: d for c, d in doomloop.first_turns(gen, cases[1::2], settings, True)}
    assert off.keys() == on.keys() and len(off) == 6
    caught = 0
    for base, done in on.items():
        full = off[base].token_ids
        if done.finish_reason == "doom_loop":
            caught += 1
            assert full[: len(done.token_ids)] == done.token_ids and len(full) > len(done.token_ids)
        else:
            assert done.token_ids == full
    assert caught  # (a tiny random model with a 2-gram guard loops at once)
    results = list(doomloop.run_cases(gen, cases, settings))
    assert sorted(r.id for r in results) == sorted(c.id for c in cases)
    methods = [r.details["method"] for r in results]
    assert methods == sorted(methods)  # every off case before the first on one
    for r in results:
        one = doomloop.run_case(gen, next(c for c in cases if c.id == r.id), settings)
        assert (r.output, r.correct, r.details["tokens"]) == (
            one.output, one.correct, one.details["tokens"]
        )  # fmt: skip


def tool_call(code: str) -> str:
    return (
        "<tool_call>" + json.dumps({"name": "python", "arguments": {"code": code}}) + "</tool_call>"
    )


def test_tool_episodes_count_repeated_calls_as_loops(tiny: Any) -> None:
    case = doomloop.case_of("tool", 1, "off")  # 49**161 modulo 63789
    code = "print(pow(49, 161, 63789))"
    settings = load_settings(None, {})
    once = ScriptedGenerator(tiny("qwen2"), [tool_call(code), f"It is {case.expected}."])
    result = doomloop.result_of(case, doomloop.run_agent(once, case, settings), 0.0)
    d = result.details
    assert d["calls"] == 1 and not d["looped"] and d["ended"] and d["answered"]
    assert result.category == "tool:agent-off" and result.score == 1.0
    assert case.expected in once.lm.tokenizer.decode(once.prompts[1])  # the tool really ran
    twice = ScriptedGenerator(tiny("qwen2"), [tool_call(code), tool_call(code), case.expected])
    d = doomloop.run_agent(twice, case, settings)
    assert d["repeated_call"] and d["looped"] and not d["ended"] and not d["answered"]
    assert (d["steps"], d["calls"], d["outcome"]) == (2, 2, "cancelled")  # stopped at the repeat
    assert twice.outputs == [case.expected]  # the model was not asked again
    on = doomloop.case_of("tool", 1, "on")
    caught = ScriptedGenerator(tiny("qwen2"), [None, f"It is {case.expected}."])
    d = doomloop.run_agent(caught, on, settings)
    assert d["caught"] and d["looped"] and d["ended"] and d["answered"] and d["calls"] == 0
