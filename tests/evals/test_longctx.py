"""The long-context suite: fixed cases in both splits, the scorers, direct cuts, RLM runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agent.settings import load_settings
from evals import longctx
from evals.common import split_of
from evals.longcontext import make_case
from model.scripted import ScriptedGenerator


def test_cases_are_fixed_paired_and_split_disjoint() -> None:
    train, test = longctx.load_cases("train"), longctx.load_cases("test")
    assert len(train) == len(test) == 3 * 3 * longctx.SEEDS_PER_SPLIT * 2
    assert not {c.id for c in train} & {c.id for c in test}
    assert [c.id for c in longctx.load_cases("test")] == [c.id for c in test]
    # The seeds are chosen once from the fixed hash split: the same ids on every machine.
    assert test[0].id == "needle-10000-3:direct" and train[0].id == "needle-10000-0:direct"
    for split, cases in (("train", train), ("test", test)):
        assert {c.category for c in cases} == {
            f"{k}-{s}:{m}"
            for k in longctx.KINDS
            for s in ("10k", "100k", "1M")
            for m in longctx.METHODS
        }
        for direct, rlm in zip(cases[::2], cases[1::2], strict=True):
            base = direct.id.removesuffix(":direct")
            assert rlm.id == f"{base}:rlm" and split_of(base) == split
            assert direct.prompt == rlm.prompt and direct.expected == rlm.expected
        sizes = [c.data["chars"] for c in cases]
        assert sizes == sorted(sizes)  # the smallest texts first
    case = next(c for c in test if c.id.startswith("count-100000-"))
    made = make_case("count", 100_000, case.data["seed"])
    assert case.prompt == made.question and case.expected == made.answer
    assert longctx.case_text(case) == made.text


def test_limit_takes_small_cases_of_every_kind_and_method() -> None:
    first = longctx.load_cases("all", limit=6)
    assert [c.category for c in first] == [
        f"{k}-10k:{m}" for k in ("needle", "multikey", "count") for m in ("direct", "rlm")
    ]


def test_scorers() -> None:
    assert longctx.count_correct("There are 42 marked lines.", "42")
    assert not longctx.count_correct("There are 41 marked lines.", "42")
    assert longctx.count_correct("1,204 lines", 1204) and longctx.count_correct("42.0", "42")
    assert not longctx.count_correct("No idea.", "42")
    assert not longctx.count_correct("41, or maybe 42", "42")  # the first number counts
    question = "How many lines between day 10 and day 20 are marked?"
    assert longctx.count_correct("From day 10 to 20: 7 lines.", "7", question)
    assert longctx.is_correct("needle", "The combination is 1480-vesper.", "1480-VESPER")
    assert not longctx.is_correct("needle", "It is 1480.", "1480-VESPER")
    assert longctx.is_correct("multikey", "Code 58213 opens it", "58213")
    assert not longctx.is_correct("multikey", "Code 158213 opens it", "58213")
    assert longctx.is_correct("count", "There are 42 marked lines.", "42")


def test_custom_jsonl(tmp_path: Path) -> None:
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "long.txt").write_text("line\n" * 30_000)
    big = {"id": "big", "question": "How many lines?", "answer": "30000", "kind": "count"}
    rows = [
        {**big, "text_path": "texts/long.txt"},
        {"id": "small", "question": "Vault code?", "answer": "77-ALPHA", "text": "Code: 77-ALPHA."},
    ]
    path = tmp_path / "cases.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cases = longctx.load_cases("all", data=path)
    assert [c.id for c in cases] == ["small:direct", "small:rlm", "big:direct", "big:rlm"]
    assert [c.category for c in cases[::2]] == ["custom-10k:direct", "count-1M:direct"]
    assert longctx.case_text(cases[2]) == "line\n" * 30_000
    assert longctx.load_cases("all", limit=1, data=str(path))[0].id == "small:direct"
    path.write_text(json.dumps({"id": "x", "question": "q", "answer": "a"}) + "\n")
    with pytest.raises(ValueError, match="line 1: needs exactly one of text, text_path"):
        longctx.load_cases("all", data=path)


def run(tiny: Any, case_id: str, outputs: list[str | None], **overrides: Any) -> tuple[Any, Any]:
    case = next(c for c in longctx.load_cases("all") if c.id == case_id)
    gen = ScriptedGenerator(tiny("qwen2"), outputs)
    return longctx.run_case(gen, case, load_settings(None, overrides)), gen


def test_direct_keeps_the_first_whole_lines_that_fit(tiny: Any) -> None:
    case_id = longctx.load_cases("test")[0].id  # a needle at 10k characters
    made = make_case("needle", 10_000, int(case_id.split("-")[2].split(":")[0]))
    result, gen = run(tiny, case_id, [f"The combination is {made.answer}."])
    assert result.correct and result.score == 1.0 and result.details["method"] == "direct"
    prompt = gen.lm.tokenizer.decode(gen.prompts[0])
    # The tiny model's window is 2048 tokens (one a byte), so a 10k text is cut.
    assert result.details["truncated"] and len(gen.prompts[0]) + longctx.ANSWER_TOKENS <= 2048
    kept = made.text[: result.details["kept_chars"]]
    assert f"Document:\n{kept}\n[The document goes on" in prompt
    assert made.text[len(kept)] == "\n"  # whole lines only
    assert prompt.index(kept) < prompt.index(f"Question: {made.question}")
    assert "<tools>" not in prompt
    wrong, _ = run(tiny, case_id, ["I could not find it."])
    assert not wrong.correct and wrong.score == 0.0


def test_direct_keeps_a_short_text_whole(tiny: Any) -> None:
    gen = ScriptedGenerator(tiny("qwen2"), ["77-ALPHA"])
    output, details = longctx.run_direct(gen, "Code?", "Code: 77-ALPHA.", load_settings(None, {}))
    assert output == "77-ALPHA" and not details["truncated"]
    assert "goes on" not in gen.lm.tokenizer.decode(gen.prompts[0])


def test_rlm_searches_instead_of_reading(tiny: Any) -> None:
    case = next(c for c in longctx.load_cases("test") if c.id.startswith("count-100000"))
    made = make_case("count", 100_000, case.data["seed"])
    outputs = ["(the model's draft)", f"There are {made.answer} marked lines."]
    result, gen = run(tiny, case.id.replace(":direct", ":rlm"), outputs, offline=True)
    assert result.correct and result.details["mode"] == "rlm", result.details
    assert result.details["outcome"] == "answer" and result.trajectory_id
    first = gen.lm.tokenizer.decode(gen.prompts[0])
    assert len(first) < 10_000 and f": {made.answer}" in first  # counted before turn one
    wrong, _ = run(tiny, case.id.replace(":direct", ":rlm"), ["draft", "There are 3."])
    assert not wrong.correct


def test_direct_on_a_1m_text_tokenizes_only_a_prefix(tiny: Any) -> None:
    gen = ScriptedGenerator(tiny("qwen2"), [])
    text = "a line of text\n" * 70_000
    kept = longctx.first_tokens(gen, text, 1000)
    assert kept and len(kept) <= 1000 and text.startswith(kept + "\n")
    assert longctx.first_tokens(gen, "short\ntext", 1000) == "short\ntext"
