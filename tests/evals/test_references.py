"""Reference answers as training examples: the eval's own prompt, the reply the template
renders, accepted by the suite's own scorer, the train split only."""

from __future__ import annotations

import pytest

from agent.hops import SPLIT_SYSTEM
from agent.settings import Settings
from evals import bfcl, references, runner, train, turns
from evals.common import split_of
from evals.pytasks_check import Task
from model.chat import parse
from model.tiny import tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def lm():
    return tiny_model("qwen2")


def _reply_text(lm, example) -> str:
    """The trained tokens as text, without the end token (as the eval's completion text)."""
    ids = [t for t, m in zip(example.input_ids, example.mask, strict=True) if m]
    assert ids[-1] == turns.end_id(lm)
    return lm.tokenizer.decode(ids[:-1])


def test_bfcl_references_are_scored_right_by_the_eval(lm) -> None:
    found = references.examples(lm, "bfcl", Settings(), per_category=3, max_tokens=4000)
    categories = {e.meta["category"] for e in found}
    assert {"simple_python", "parallel", "irrelevance", "live_multiple"} <= categories
    cases = {c.id: c for c in runner.load_suite_cases("bfcl", "train", None, None)}
    for example in found:
        assert example.meta["source"] == "reference" and split_of(example.meta["case"]) == "train"
        text = _reply_text(lm, example)
        verdict, _ = bfcl.score_output(cases[example.meta["case"]], text, lm.tool_format)
        assert verdict.valid, (example.meta["case"], text)
        # The prompt part is exactly what the eval decodes from.
        prompt = example.input_ids[: example.mask.index(1)]
        case = cases[example.meta["case"]]
        tools = [bfcl.to_tool(f) for f in case.data["functions"]]
        rendered = bfcl.render(lm.tokenizer, bfcl.build_messages(case), tools, lm.tool_format)
        assert prompt == turns.encode(lm, rendered)


def test_parallel_references_hold_every_call(lm) -> None:
    found = references.examples(lm, "bfcl", Settings(), per_category=2)
    parallel = [e for e in found if e.meta["category"] == "parallel"]
    assert parallel
    for e in parallel:
        assert len(parse(_reply_text(lm, e), lm.tool_format).calls) >= 2


def test_long_examples_are_dropped_not_cut(lm) -> None:
    found = references.examples(lm, "bfcl", Settings(), per_category=5, max_tokens=400)
    assert all(len(e.input_ids) <= 400 for e in found)
    assert all(e.input_ids[-1] == turns.end_id(lm) for e in found)


def test_doomloop_references_are_enumerations_the_suite_accepts(lm) -> None:
    found = references.examples(lm, "doomloop", Settings())
    families = {e.meta["category"].split(":")[0] for e in found}
    assert "count" in families and "arith" not in families and "tool" not in families
    assert all(split_of(e.meta["case"].split(":")[0]) == "train" for e in found)


def test_pytools_reference_is_a_real_episode_with_the_call_and_the_answer_trained(lm) -> None:
    found = references.examples(lm, "pytools", Settings(), per_category=1)
    assert found
    case = found[0].meta["case"]
    of_case = [e for e in found if e.meta["case"] == case]
    trained = " ".join(_reply_text(lm, e) for e in of_case)
    assert '"name": "python"' in trained and "The answer is" in trained  # both turns trained
    text = lm.tokenizer.decode(of_case[-1].input_ids)
    assert "tool output" in text  # the loop's own frame around the real sandbox output


def test_pytools_recovery_trains_the_fix_after_a_real_error_not_the_broken_call(lm) -> None:
    found = references.examples(lm, "pytools", Settings(), per_category=1)
    recovery = [e for e in found if e.meta["recovery"]]
    assert recovery and any(not e.meta["recovery"] for e in found)
    first = recovery[0]
    context = lm.tokenizer.decode(
        [t for t, m in zip(first.input_ids, first.mask, strict=True) if not m]
    )
    trained = " ".join(_reply_text(lm, e) for e in recovery if e.meta["case"] == first.meta["case"])
    case = next(c for c in runner.load_suite_cases("pytools", "train", None, None)
                if c.id == first.meta["case"])  # fmt: skip
    broken = turns.call_text(lm, references.broken_call(Task.model_validate(case.data), case.id))
    assert broken in context and broken not in trained  # the broken call: seen, not imitated
    assert "rror" in context.split(broken, 1)[1]  # followed by the real complaint
    assert '"name": "python"' in trained and "The answer is" in trained


def test_masked_references_drop_the_needed_function_and_decline(lm) -> None:
    found = references.examples(lm, "masked", Settings(), per_category=3, max_tokens=4000)
    assert {e.meta["category"] for e in found} == {f"masked/{c}" for c in references.MASKABLE}
    cases = {c.id: c for c in runner.load_suite_cases("bfcl", "train", None, None)}
    for example in found:
        case = cases[example.meta["case"].removesuffix(":masked")]
        needed = set(case.expected[0])
        prompt = lm.tokenizer.decode(example.input_ids[: example.mask.index(1)])
        assert not any(f'"{name}"' in prompt for name in needed), (case.id, needed)
        assert _reply_text(lm, example) == references.NO_FIT


def test_abstain_references_are_bfcls_own_no_call_cases_kept_once_beside_bfcls(
    lm, tmp_path
) -> None:
    found = references.examples(lm, "abstain", Settings(), per_category=4, max_tokens=4000)
    assert (
        sorted(e.meta["category"] for e in found) == ["irrelevance"] * 4 + ["live_irrelevance"] * 4
    )
    assert all(_reply_text(lm, e) == references.NO_FIT for e in found)
    assert all(split_of(e.meta["case"]) == "train" for e in found)
    job = train.Job(method="sft", out=tmp_path, log_path=tmp_path / "log.jsonl",
                    references={"bfcl": 2, "abstain": 4}, max_length=4000)  # fmt: skip
    both = train.reference_examples(lm, Settings(), job)
    assert len({tuple(e.input_ids) for e in both}) == len(both)  # bfcl's 2 are abstain's first 2
    no_call = [e for e in both if e.meta["category"].endswith("irrelevance")]
    bfcl_only = references.examples(lm, "bfcl", Settings(), per_category=2, max_tokens=4000)
    assert len(no_call) == 8 and len(both) == len(bfcl_only) + 4


def test_masking_borrows_functions_only_where_none_is_left_and_skips_renamed_copies() -> None:
    by: dict[str, list] = {}
    for case in runner.load_suite_cases("bfcl", "train", None, None):
        by.setdefault(case.category, []).append(case)
    simple = by["simple_python"]
    masked = references.masked_case(simple[0], simple)
    assert masked is not None and masked.category.endswith("irrelevance")
    assert masked.data["functions"] == simple[len(simple) // 2].data["functions"]
    parallel = by["parallel"]
    assert references.masked_case(parallel[0], parallel) is None  # several calls: not masked
    multiple = by["multiple"][0]
    name = next(iter(multiple.expected[0]))
    twin = {**next(f for f in multiple.data["functions"] if f["name"] == name), "name": name + "2"}
    copy = multiple.model_copy(update={"data": {**multiple.data, "functions": [
        *multiple.data["functions"], twin]}})  # fmt: skip
    assert references.masked_case(copy, [copy]) is None


def test_pytools_recovery_from_a_missing_import_drops_only_the_import() -> None:
    case = next(c for c in runner.load_suite_cases("pytools", "train", None, None)
                if "import math" in c.data["code"])  # fmt: skip
    broken = references.broken_call(Task.model_validate(case.data), case.id)
    code = broken.arguments["code"]
    assert "import" not in code and "math." in code
    assert code in case.data["code"]  # the rest untouched


def test_search_references_are_a_real_first_search_turn_on_training_worlds_only(lm) -> None:
    found = references.examples(lm, "searchqa", Settings(), per_category=2)
    assert {e.meta["category"] for e in found} == {"single/tools", "two-hop/tools"}
    test_ids = {
        c.data["question_id"] for c in runner.load_suite_cases("searchqa", "test", None, None)
    }
    for example in found:
        assert example.meta["case"].split(":")[0] not in test_ids
        prompt = lm.tokenizer.decode(example.input_ids[: example.mask.index(1)])
        assert "fetch_page" in prompt and "python" in prompt  # the tools `ask` offers
        call = parse(_reply_text(lm, example), lm.tool_format).calls
        assert [c.name for c in call] == ["web_search"]
        assert call[0].arguments["query"] in prompt  # the question, searched as asked


def test_split_references_teach_both_sides_in_the_research_policys_own_prompt(lm) -> None:
    found = references.examples(lm, "split", Settings(), per_category=3)
    by = {e.meta["category"]: _reply_text(lm, e) for e in found}
    assert set(by) == {"split/single/tools", "split/two-hop/tools"}
    two = by["split/two-hop/tools"]
    assert two.startswith("1. ") and "\n2. " in two and "#1" in two.split("\n2. ")[1]
    single = next(e for e in found if e.meta["category"] == "split/single/tools")
    prompt = lm.tokenizer.decode(single.input_ids[: single.mask.index(1)])
    assert SPLIT_SYSTEM in prompt and "Ada Lovelace" in prompt  # its worked examples
    reply = _reply_text(lm, single)  # the question, written back unchanged
    assert reply.startswith("1. ") and "\n" not in reply
    assert reply.removeprefix("1. ") in prompt.rsplit("user", 1)[1]


def _turns(lm, example) -> list[tuple[str, str]]:
    """(context before, reply) for each trained run of tokens: one model turn each."""
    out, start = [], None
    for at, m in enumerate([*example.mask, 0]):
        if m and start is None:
            start = at
        elif not m and start is not None:
            context = lm.tokenizer.decode(example.input_ids[:start])
            out.append((context, lm.tokenizer.decode(example.input_ids[start : at - 1])))
            start = None
    return out


def test_read_references_are_whole_free_choice_episodes_from_search_to_answer(lm) -> None:
    found = references.examples(lm, "read", Settings(), per_category=2)
    assert {e.meta["category"] for e in found} == {"read/single/tools", "read/two-hop/tools"}
    test_ids = {
        c.data["question_id"] for c in runner.load_suite_cases("searchqa", "test", None, None)
    }
    episodes: dict[str, list] = {}  # a turn's prompt renders earlier calls as the template
    for example in found:  # does, so each model turn may be an example of its own
        episodes.setdefault(example.meta["case"], []).append(example)
    for case, examples in episodes.items():
        assert case.split(":")[0] not in test_ids
        turns = [turn for example in examples for turn in _turns(lm, example)]
        hops = 2 if examples[0].meta["category"] == "read/two-hop/tools" else 1
        names = [[c.name for c in parse(reply, lm.tool_format).calls] for _, reply in turns]
        assert names == [["web_search"], ["fetch_page"]] * hops + [[]]
        for context, reply in turns[1:]:  # what each turn says comes from what came before it
            call = parse(reply, lm.tool_format).calls
            said = call[0].arguments.get("url", "") if call else reply.rstrip(".")
            assert said in context  # a URL a search listed; the answer, as the page says it
        if hops == 2:  # the second search names what the first page said
            first_page = turns[2][0].rsplit("web_search", 1)[0]
            query = parse(turns[2][1], lm.tool_format).calls[0].arguments["query"]
            assert any(w in first_page for w in query.split() if w[:1].isupper())
