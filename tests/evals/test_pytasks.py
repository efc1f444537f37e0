"""The Python-tool suite: fixed, disjoint splits; a checker that wants the value stated; every
reference call printing its answer in the real sandbox; real agent episodes with a scripted
model, counting repeated calls and empty answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from agent.settings import load_settings
from evals import page, pytasks, runner
from evals.common import split_of
from evals.pytasks_check import Task, judge, numbers
from evals.pytasks_data import FAMILIES, KINDS, PER_FAMILY, tasks
from model.scripted import ScriptedGenerator
from tools.sandbox import Sandbox, SandboxSettings


def test_splits_are_disjoint_sized_and_follow_the_id_hash() -> None:
    train, test = pytasks.load_cases("train"), pytasks.load_cases("test")
    assert len(FAMILIES) >= 14
    assert (len(train), len(test)) == (20 * len(FAMILIES), 7 * len(FAMILIES)) == (360, 126)
    assert len(pytasks.load_cases("all")) == len(train) + len(test)
    for split, cases in (("train", train), ("test", test)):
        assert {split_of(c.id) for c in cases} == {split}  # the trainer's guard agrees
        assert Counter(c.data["family"] for c in cases) == dict.fromkeys(
            FAMILIES, PER_FAMILY[split]
        )
        assert {c.category for c in cases} == set(KINDS)
    every = train + test
    assert len({c.id for c in every}) == len(every)
    assert not {c.prompt for c in train} & {c.prompt for c in test}
    assert not {c.data["code"] for c in train} & {c.data["code"] for c in test}
    assert len({c.prompt for c in every}) == len({c.data["code"] for c in every}) == len(every)
    first = pytasks.load_cases("test", limit=len(FAMILIES))
    assert [c.data["family"] for c in first] == list(FAMILIES)  # one of each, in turn


def test_most_questions_ask_for_python_and_several_phrasings_are_used() -> None:
    every = tasks("all")
    named = sum("python" in t.question.lower() for t in every) / len(every)
    assert 0.6 < named < 0.95
    for family in FAMILIES:
        openings = {" ".join(t.question.split()[:2]) for t in every if t.family == family}
        assert len(openings) >= 2, family


def test_the_set_is_the_same_in_another_process() -> None:
    script = (
        "import json; from evals.pytasks_data import tasks; "
        "print(json.dumps([t.model_dump() for t in tasks('all')]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "123", "PYTHONPATH": str(Path(__file__).parents[2])}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, check=True)  # fmt: skip
    assert json.loads(out.stdout) == [t.model_dump() for t in tasks("all")]
    first = pytasks.load_cases("test")[0]
    assert (first.id, first.prompt, first.expected) == (
        "pytools-multiply-1", "What is 996 * 616?", "613536"
    )  # fmt: skip


def test_every_reference_prints_its_answer_in_the_real_sandbox() -> None:
    """All of both splits: the trainer takes these calls as the labelled right move."""
    with Sandbox(SandboxSettings(timeout_s=10)) as sandbox:
        for task in tasks("all"):
            outcome = sandbox.run(task.code)
            assert outcome.ok and outcome.stdout.strip() == task.answer, (task.id, outcome)


def test_every_answer_is_right_and_no_question_answers_itself() -> None:
    for task in tasks("all"):
        assert judge(task, task.answer)[0], task.id
        assert judge(task, f"The result is {task.answer}.")[0], task.id
        assert not judge(task, task.question)[0], task.id  # no echo of the question scores
        assert not judge(task, "I computed it with python.")[0], task.id


def task(**fields: Any) -> Task:
    base = {"id": "t", "family": "f", "kind": "arithmetic", "question": "q", "code": "print()"}
    return Task(**{**base, **fields})


def test_numbers_are_read_whole_with_thousands_commas() -> None:
    product = task(answer="391", check="int")
    assert judge(product, "The result is 391.")[0]
    assert judge(product, "17 * 23 = **391**")[0]
    assert judge(product, "391")[0]
    assert not judge(product, "The result is 3910.")[0]
    assert not judge(product, "It is 39.1 or 1391")[0]
    assert not judge(product, "I computed it.")[0]
    assert not judge(product, "")[0]
    big = task(answer="121645100408832000", check="int")
    assert judge(big, "19! = 121,645,100,408,832,000")[0]
    assert not judge(big, "about 1.2e17")[0]
    assert not judge(big, "121645100408832001")[0]  # exact, not as a float
    negative = task(answer="-12", check="int")
    assert judge(negative, "The sum is -12.")[0] and not judge(negative, "The sum is 12.")[0]
    assert numbers("5-3, --7 and 2,5") == [5, 3, 7, 2, 5]
    mean = task(answer="451.33", check="float", tol=0.01)
    assert judge(mean, "The mean is 451.3333333333333")[0]
    assert judge(mean, "about 451.33")[0] and not judge(mean, "about 451.3")[0]


def test_a_quoted_list_is_not_an_answer() -> None:
    pick = task(answer="9", check="int", echo=["[3, 9, 4]"])
    assert judge(pick, "The largest number in [3, 9, 4] is 9.")[0]
    assert not judge(pick, "max([3, 9, 4])")[0]
    assert not judge(pick, "[3, 9, 4]")[0]


def test_strings_and_lists() -> None:
    upper = task(answer="QUICK BROWN FOX", check="text", case_sensitive=True, kind="string")
    assert judge(upper, "In upper case: 'QUICK BROWN FOX'")[0]
    assert not judge(upper, "quick brown fox")[0] and not judge(upper, "Quick Brown Fox")[0]
    reverse = task(answer="enitnarauq", check="text", kind="string")
    assert judge(reverse, "Reversed, it is Enitnarauq.")[0]
    assert not judge(reverse, "enitnarau q")[0] and not judge(reverse, "quarantine")[0]
    numbers_sorted = task(answer="-5, 2, 9", check="list", kind="list")
    assert numbers_sorted.items == ["-5", "2", "9"]
    for right in ("[-5, 2, 9]", "Sorted: -5, 2 and 9.", "1. -5\n2. 2\n3. 9"):
        assert judge(numbers_sorted, right)[0], right
    for wrong in ("[2, -5, 9]", "-5, 9, 2", "5, 2, 9", "-5, 2"):
        assert not judge(numbers_sorted, wrong)[0], wrong
    words = task(answer="apple, fig, pear", check="list", kind="list")
    assert judge(words, "The sorted list is: Apple, fig and pear.")[0]
    assert not judge(words, "fig, apple, pear")[0]


# --- episodes -----------------------------------------------------------------------------------


def call(code: str) -> str:
    return (
        "<tool_call>" + json.dumps({"name": "python", "arguments": {"code": code}}) + "</tool_call>"
    )


def run(tiny: Any, script: list[str | None], case_index: int = 0) -> Any:
    case = pytasks.load_cases("test")[case_index]
    generator = ScriptedGenerator(tiny("qwen2"), script)
    result = pytasks.run_case(generator, case, load_settings(None, {}))
    return result, generator


def test_one_call_then_the_answer_is_right(tiny: Any) -> None:
    case = pytasks.load_cases("test")[0]
    result, gen = run(tiny, [call(case.data["code"]), f"The result is {case.expected}."])
    d = result.details
    assert result.correct and result.score == 1.0 and result.category == "arithmetic"
    assert (d["steps"], d["tool_calls"], d["repeated_identical_calls"]) == (2, 1, 0)
    assert not d["empty_answer"] and d["answered_by"] == "model" and d["outcome"] == "answer"
    assert d["finish_reason"] == "eos"
    assert case.expected in gen.lm.tokenizer.decode(gen.prompts[1])  # the sandbox really ran
    offered = gen.lm.tokenizer.decode(gen.prompts[0])
    assert '"name": "python", "description"' in offered  # the python tool, and only it
    assert '"name": "web_search", "description"' not in offered


def test_repeated_calls_and_results_fed_back_are_counted(tiny: Any) -> None:
    case = pytasks.load_cases("test")[0]
    code = case.data["code"]
    result, _ = run(tiny, [call(code), call(code), f"It is {case.expected}."])
    d = result.details
    assert (d["tool_calls"], d["repeated_identical_calls"], d["result_as_code"]) == (2, 1, 0)
    assert d["codes"] == [code, code]
    assert result.correct  # the model's own, right answer: the repeat is counted apart
    result, _ = run(tiny, [call(code), call(f"print('{case.expected}')"), "I printed it."])
    d = result.details
    assert (d["repeated_identical_calls"], d["result_as_code"]) == (0, 1)
    assert not result.correct  # "I printed it." states nothing
    schema = '<tool_call>{"name": "python", "arguments": {"type": "object"}}</tool_call>'
    result, _ = run(tiny, [schema, f"It is {case.expected}."])  # its schema, not code
    assert result.details["codes"] == ['{"type": "object"}'] and result.details["tool_errors"] == 1


def test_an_empty_reply_is_recorded_and_the_fallback_is_wrong(tiny: Any) -> None:
    case = pytasks.load_cases("test")[0]
    result, _ = run(tiny, [call(case.data["code"]), ""])
    d = result.details
    assert d["empty_answer"] and d["answered_by"] == "fallback"
    assert case.expected in result.output  # the loop's fallback does state it...
    assert not result.correct  # ...but it is not the model's answer


def test_a_forced_answer_is_judged_without_the_loops_note(tiny: Any) -> None:
    """At the step limit the model answers without tools; "(Stopped after 4 steps.)" is the
    loop's, and states no answer even where the answer is 4."""
    case = next(c for c in pytasks.load_cases("test") if c.expected.isdigit() and
                2 <= int(c.expected) <= 6)  # fmt: skip
    steps = int(case.expected)
    settings = load_settings(None, {"agent.max_steps": steps})
    for closing, right in (("I am not sure.", False), (f"The answer is {case.expected}.", True)):
        script = [call(f"print({k})") for k in range(steps)] + [closing]
        gen = ScriptedGenerator(tiny("qwen2"), script)
        result = pytasks.run_case(gen, case, settings)
        assert result.details["outcome"] == "step_limit" and not gen.outputs
        assert f"(Stopped after {steps} steps.)" in result.output
        assert result.correct is right and result.details["answered_by"] == "model"


def test_a_short_run_through_the_runner_and_the_page(tiny: Any, tmp_path: Path) -> None:
    cases = pytasks.load_cases("test", limit=3)
    script: list[str | None] = []
    script += [call(cases[0].data["code"]), f"It is {cases[0].expected}."]  # right
    script += [call(cases[1].data["code"]), ""]  # empty
    script += [call(cases[2].data["code"]), call(cases[2].data["code"]), "Done."]  # repeat
    gen = ScriptedGenerator(tiny("qwen2"), script)
    done = runner.run_suite("pytools", gen, load_settings(None, {}), cases, tmp_path)
    assert [r.correct for r in done] == [True, False, False] and not gen.outputs
    row = runner.summarize(done)["all"]
    assert (row["correct"], row["empty_answer"], row["repeated_identical_calls"]) == (1, 1, 1)
    assert "33% (1/3, CI 6–79%, 1 empty, 1 repeated a call)" in page.cell(row)
    assert "pytools" in page.MEANING and (tmp_path / "pytools.jsonl").is_file()


def test_a_data_file_replaces_the_generated_tasks(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    row = {"id": "mine-1", "family": "multiply", "kind": "arithmetic", "answer": "391",
           "question": "Compute 17 * 23 with python.", "check": "int",
           "code": "print(17 * 23)"}  # fmt: skip
    path.write_text(json.dumps(row) + "\n\n")
    cases = pytasks.load_cases("all", data=str(path))
    assert [(c.id, c.category, c.expected) for c in cases] == [("mine-1", "arithmetic", "391")]
    path.write_text(json.dumps({**row, "check": "number"}) + "\n")
    with pytest.raises(ValueError, match="mine.jsonl:1: not a pytools task"):
        pytasks.load_cases("all", data=str(path))
    with pytest.raises(FileNotFoundError, match="is not a file"):
        pytasks.load_cases("all", data=str(tmp_path / "missing.jsonl"))
