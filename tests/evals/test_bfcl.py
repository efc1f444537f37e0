"""The BFCL suite: loading (a folder of BFCL's layout, and the installed package when present),
the split, the schema conversion, run_case end to end on scripted model outputs, and batched
runs giving the one-by-one results."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path
from typing import Any

import pytest

from agent.settings import Settings
from evals import bfcl
from evals.common import CaseResult, EvalCase, split_of
from model.chat import ToolFormat
from model.generate import Generator
from model.scripted import ScriptedGenerator

TRIANGLE = {
    "name": "calculate_triangle_area",
    "description": "Calculate the area of a triangle given its base and height.",
    "parameters": {
        "type": "dict",
        "properties": {
            "base": {"type": "integer", "description": "The base of the triangle."},
            "height": {"type": "float", "description": "The height of the triangle."},
            "unit": {"type": "string", "description": "The unit of measure."},
        },
        "required": ["base", "height"],
    },
}
WEATHER = {
    "name": "get_weather",
    "description": "Current weather in a city.",
    "parameters": {
        "type": "dict",
        "properties": {"city": {"type": "string", "description": "The city."}},
        "required": ["city"],
    },
}
HAS_PACKAGE = importlib.util.find_spec("bfcl_eval") is not None


def question(*messages: tuple[str, str]) -> list[list[dict[str, str]]]:
    return [[{"role": role, "content": content} for role, content in messages]]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A small folder with BFCL's layout: 30 simple cases, 2 parallel, 2 irrelevance."""
    simple = [
        {
            "id": f"simple_python_{i}",
            "question": question(("user", f"Area of a triangle, base {i}, height 5?")),
            "function": [TRIANGLE],
        }
        for i in range(30)
    ]
    answers = [
        {
            "id": f"simple_python_{i}",
            "ground_truth": [
                {TRIANGLE["name"]: {"base": [i], "height": [5.0], "unit": ["", "units"]}}
            ],
        }
        for i in range(30)
    ]
    parallel = [
        {
            "id": f"parallel_{i}",
            "question": question(("system", "Be brief."), ("user", "Weather in Paris and Rome?")),
            "function": [WEATHER],
        }
        for i in range(2)
    ]
    par_answers = [
        {
            "id": f"parallel_{i}",
            "ground_truth": [
                {"get_weather": {"city": ["Paris"]}},
                {"get_weather": {"city": ["Rome"]}},
            ],
        }
        for i in range(2)
    ]
    irrelevance = [
        {
            "id": f"irrelevance_{i}",
            "question": question(("user", "Who wrote Hamlet?")),
            "function": [WEATHER],
        }
        for i in range(2)
    ]
    write_jsonl(tmp_path / "BFCL_v4_simple_python.json", simple)
    write_jsonl(tmp_path / "possible_answer" / "BFCL_v4_simple_python.json", answers)
    write_jsonl(tmp_path / "BFCL_v4_parallel.json", parallel)
    write_jsonl(tmp_path / "possible_answer" / "BFCL_v4_parallel.json", par_answers)
    write_jsonl(tmp_path / "BFCL_v4_irrelevance.json", irrelevance)
    return tmp_path


def test_loading_a_folder_and_the_split(data: Path) -> None:
    everything = bfcl.load_cases("all", data=data)
    assert len(everything) == 34
    case = next(c for c in everything if c.id == "simple_python_3")
    assert case.category == "simple_python" and case.suite == "bfcl"
    assert case.expected == [
        {TRIANGLE["name"]: {"base": [3], "height": [5.0], "unit": ["", "units"]}}
    ]
    assert case.data["functions"] == [TRIANGLE] and "base 3" in case.prompt
    train, test = bfcl.load_cases("train", data=data), bfcl.load_cases("test", data=data)
    train_ids, test_ids = {c.id for c in train}, {c.id for c in test}
    assert train_ids and test_ids and not train_ids & test_ids
    assert train_ids | test_ids == {c.id for c in everything}
    assert all(split_of(c.id) == "test" for c in test)
    assert [c.id for c in bfcl.load_cases("test", data=data)] == [c.id for c in test]


def test_limit_interleaves_categories(data: Path) -> None:
    first = bfcl.load_cases("all", limit=3, data=data)
    assert [c.category for c in first] == ["simple_python", "parallel", "irrelevance"]
    only = bfcl.load_cases("all", data=data, categories=["parallel"])
    assert [c.id for c in only] == ["parallel_0", "parallel_1"]
    with pytest.raises(ValueError, match="simple"):
        bfcl.load_cases("all", data=data, categories=["simple"])


def test_missing_data_is_a_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(bfcl.BfclDataMissing, match="no BFCL_v4_simple_python.json"):
        bfcl.load_cases("all", data=tmp_path)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(bfcl.BfclDataMissing) as e:
        bfcl.data_dir()
    assert "pip install --no-deps bfcl-eval==2026.3.23" in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.skipif(not HAS_PACKAGE, reason="bfcl-eval is not installed (install.sh installs it)")
def test_installed_package_data() -> None:
    cases = bfcl.load_cases("all")
    by_category: dict[str, int] = {}
    for c in cases:
        by_category[c.category] = by_category.get(c.category, 0) + 1
    assert set(by_category) == set(bfcl.CATEGORIES)
    assert by_category["simple_python"] == 400 and by_category["parallel"] == 200
    assert len({c.id for c in cases}) == len(cases)
    test = bfcl.load_cases("test")
    assert 0.4 < len(test) / len(cases) < 0.6
    answered = [c for c in cases if not c.category.endswith("relevance")]
    assert all(c.expected for c in answered) and len(answered) == len(cases) - 240 - 884 - 16


def test_categories_and_groups(tmp_path: Path) -> None:
    assert bfcl.expand("non-live") == bfcl.CATEGORIES[:5]
    assert bfcl.expand("parallel, live,parallel") == ("parallel", *bfcl.CATEGORIES[5:])
    for name in ("simple_python", "live_simple"):  # a folder with two categories' data
        row = {"id": f"{name}_0", "question": [[{"role": "user", "content": "hi"}]],
               "function": []}  # fmt: skip
        (tmp_path / f"BFCL_v4_{name}.json").write_text(json.dumps(row) + "\n")
    picked = bfcl.load_cases("all", data=tmp_path, categories=bfcl.expand("live"))
    assert [c.id for c in picked] == ["live_simple_0"]
    with pytest.raises(ValueError, match="unknown BFCL categories \\['livee'\\]"):
        bfcl.load_cases("all", data=tmp_path, categories=bfcl.expand("livee"))


def test_type_mapping() -> None:
    schema = bfcl.to_json_schema(
        {
            "type": "dict",
            "properties": {
                "a": {"type": "float", "description": "x", "default": 1.5},
                "b": {"type": "tuple", "items": {"type": "float"}},
                "c": {"type": "any"},
                "d": {"type": "dict", "properties": {"e": {"type": "integer"}}},
                "f": {
                    "type": "array",
                    "items": {"type": "dict", "properties": {"g": {"type": "bool"}}},
                },
                "h": {"type": "boolean", "optional": True},
                "i": {"type": "string", "enum": ["x", "y"]},
            },
            "required": ["a"],
        }
    )
    props = schema["properties"]
    assert schema["type"] == "object" and schema["required"] == ["a"]
    assert props["a"] == {"type": "number", "description": "x", "default": 1.5}
    assert props["b"] == {"type": "array", "items": {"type": "number"}}
    assert props["c"] == {"type": "string"}
    assert props["d"] == {"type": "object", "properties": {"e": {"type": "integer"}}}
    assert props["f"]["items"] == {"type": "object", "properties": {"g": {"type": "boolean"}}}
    assert props["h"] == {"type": "boolean"} and props["i"]["enum"] == ["x", "y"]
    tool = bfcl.to_tool(TRIANGLE)
    assert tool["type"] == "function" and tool["function"]["name"] == TRIANGLE["name"]
    assert tool["function"]["parameters"]["properties"]["height"]["type"] == "number"


def hermes(*calls: tuple[str, dict[str, Any]]) -> str:
    return "".join(
        f"<tool_call>{json.dumps({'name': n, 'arguments': a})}</tool_call>\n" for n, a in calls
    )


def run(tiny: Any, case: EvalCase, output: str | None, arch: str = "qwen2") -> Any:
    gen = ScriptedGenerator(tiny(arch), [output])
    result = bfcl.run_case(gen, case, Settings())
    return result, gen.lm.tokenizer.decode(gen.prompts[0])


def find(data: Path, case_id: str) -> EvalCase:
    return next(c for c in bfcl.load_cases("all", data=data) if c.id == case_id)


def test_run_case_right_and_wrong_calls(tiny: Any, data: Path) -> None:
    case = find(data, "simple_python_7")
    right, prompt = run(tiny, case, hermes(("calculate_triangle_area", {"base": 7, "height": 5})))
    assert right.correct and right.score == 1.0 and right.details["error"] == ""
    assert right.details["calls"] == [
        {"name": "calculate_triangle_area", "arguments": {"base": 7, "height": 5}}
    ]
    assert bfcl.SYSTEM_PROMPT in prompt and '"type": "number"' in prompt
    assert "Area of a triangle, base 7, height 5?" in prompt
    wrong, _ = run(tiny, case, hermes(("calculate_triangle_area", {"base": 8, "height": 5})))
    assert not wrong.correct and wrong.score == 0.0 and "'base'" in wrong.details["error"]
    prose, _ = run(tiny, case, "The area is 17.5 square units.")
    assert not prose.correct and "got 0" in prose.details["error"]
    broken, _ = run(tiny, case, '<tool_call>{"name": "calculate_triangle_area", "arguments": [}')
    assert not broken.correct and "unreadable" in broken.details["error"]


def test_run_case_parallel_irrelevance_and_the_guard(tiny: Any, data: Path) -> None:
    case = find(data, "parallel_1")
    both = hermes(("get_weather", {"city": "rome"}), ("get_weather", {"city": "Paris"}))
    result, prompt = run(tiny, case, both)
    assert result.correct, result.details
    assert "Be brief.\n\n" + bfcl.SYSTEM_PROMPT in prompt  # the case's system turn, merged
    one, _ = run(tiny, case, hermes(("get_weather", {"city": "Paris"})))
    assert not one.correct
    irrelevant = find(data, "irrelevance_0")
    assert run(tiny, irrelevant, "Shakespeare wrote Hamlet.")[0].correct
    assert not run(tiny, irrelevant, hermes(("get_weather", {"city": "London"})))[0].correct
    looped, _ = run(tiny, irrelevant, None)  # a model that repeats itself forever
    assert looped.details["finish_reason"] == "doom_loop"
    assert looped.details["new_tokens"] <= bfcl.MAX_NEW_TOKENS


def test_run_case_in_the_pythonic_format(tiny: Any, data: Path) -> None:
    case = find(data, "simple_python_4")
    text = "<|tool_call_start|>[calculate_triangle_area(base=4, height=5.0)]<|tool_call_end|>"
    result, prompt = run(tiny, case, text, arch="lfm2")
    assert result.correct and "<|tool_list_start|>" in prompt
    wrong = "<|tool_call_start|>[calculate_triangle_area(base=4)]<|tool_call_end|>"
    assert not run(tiny, case, wrong, arch="lfm2")[0].correct


def test_run_cases_batched_gives_the_results_of_one_by_one(tiny: Any, data: Path) -> None:
    cases = bfcl.load_cases("all", data=data)
    settings = Settings()
    settings.sampling.max_new_tokens = 12  # the tiny model writes noise: keep it short
    gen = Generator(tiny("qwen2"))
    settings.eval.batch = 1
    alone = {r.id: r for r in bfcl.run_cases(gen, cases, settings)}
    settings.eval.batch = 3
    start = time.perf_counter()
    together = list(bfcl.run_cases(gen, cases, settings))
    wall = time.perf_counter() - start
    assert sorted(r.id for r in together) == sorted(alone) and len(together) == len(cases)
    for r in together:
        assert r.output == alone[r.id].output and r.correct == alone[r.id].correct
        assert r.details["prompt_tokens"] == alone[r.id].details["prompt_tokens"]
    assert sum(r.seconds for r in together) == pytest.approx(wall, rel=0.2, abs=0.05)


def test_an_unreadable_call_is_no_call_as_in_bfcl(data: Path) -> None:
    """BFCL's eval_runner: a decode that fails means no call, right where none fits."""
    broken = '<tool_call>{"name": "get_weather", "arguments": [}'
    irrelevant = find(data, "irrelevance_0")
    verdict, parsed = bfcl.score_output(irrelevant, broken, ToolFormat.HERMES)
    assert verdict.valid and parsed.errors and "no call" in verdict.error
    simple = find(data, "simple_python_2")
    assert not bfcl.score_output(simple, broken, ToolFormat.HERMES)[0].valid
    relevance = irrelevant.model_copy(update={"category": "live_relevance", "id": "live_rel_0"})
    assert not bfcl.score_output(relevance, broken, ToolFormat.HERMES)[0].valid
    called = hermes(("get_weather", {"city": "Oslo"}))
    assert bfcl.score_output(relevance, called, ToolFormat.HERMES)[0].valid


def test_rescore_judges_saved_outputs_again_without_the_model(data: Path) -> None:
    def saved(case_id: str, output: str, correct: bool) -> CaseResult:
        return CaseResult(suite="bfcl", id=case_id, category=case_id.rsplit("_", 1)[0],
                          score=float(correct), correct=correct, output=output,
                          details={"error": "old", "prompt_tokens": 9})  # fmt: skip

    stale = [
        saved("irrelevance_1", '<tool_call>{"name": "get_weather", "arguments": [}', False),
        saved(
            "simple_python_3", hermes(("calculate_triangle_area", {"base": 3, "height": 5})), False
        ),  # fmt: skip
        saved(
            "simple_python_4", hermes(("calculate_triangle_area", {"base": 9, "height": 5})), True
        ),  # fmt: skip
        saved("gone_1", "anything", True),  # no longer in the data: kept as it was
    ]
    fresh = bfcl.rescore(stale, ToolFormat.HERMES, data=data, note="abc1234")
    assert [r.correct for r in fresh] == [True, True, False, True]
    assert [r.score for r in fresh] == [1.0, 1.0, 0.0, 1.0]
    assert fresh[1].details == {"error": "", "prompt_tokens": 9, "rescored": "abc1234",
                                "calls": [{"name": "calculate_triangle_area",
                                           "arguments": {"base": 3, "height": 5}}]}  # fmt: skip
    assert "'base'" in fresh[2].details["error"] and fresh[2].output == stale[2].output
    assert fresh[3] == stale[3]
