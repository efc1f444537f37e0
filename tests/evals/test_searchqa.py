"""The search-QA suite: cases, the corpus server, and real episodes with a scripted model."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.settings import Settings, load_settings
from evals import searchqa
from evals.common import EvalCase, split_of
from evals.corpus import ASK, Question, read_questions, write_corpus
from model.scripted import CHOICE, ScriptedGenerator
from tools.fetch import FetchSettings, fetch_tool


@pytest.fixture(autouse=True)
def cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Indexes and the default corpus go to a throwaway cache, not the user's."""
    folder = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("EDGEAGENT_CACHE", str(folder))
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("searchqa")
    write_corpus(folder, seed=5, n_entities=12)
    return folder


def case_for(data: Path, hops: int, variant: str = "tools") -> EvalCase:
    cases = searchqa.load_cases("all", data=data)
    return next(c for c in cases if c.data["hops"] == hops and c.data["variant"] == variant)


def call(name: str, **arguments: object) -> str:
    return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"


class Scripted(ScriptedGenerator):
    """Replays its outputs; where the loop already began one (a steer such as the opening of a
    fetch_page call written into the prompt), replays only the rest of it."""

    def _token_source(self, ids: list[int], *rest: Any) -> tuple[int, Iterator[int]]:
        tail = self.lm.tokenizer.decode(ids[-100:])
        wanted = self.outputs[0] if self.outputs else None
        if wanted:
            flat = wanted.replace("<tool_call>{", "<tool_call>\n{")
            for n in range(len(flat), 9, -1):
                if tail.endswith(flat[:n]):
                    self.outputs[0] = flat[n:]
                    break
        return super()._token_source(ids, *rest)


def settings(**overrides: object) -> Settings:
    return load_settings(None, {"agent.tools": ["search", "fetch"], **overrides})


# --- cases ------------------------------------------------------------------------------------


def test_every_question_gives_three_adjacent_cases_in_one_split(data: Path) -> None:
    every = searchqa.load_cases("all", data=data)
    test, train = searchqa.load_cases("test", data=data), searchqa.load_cases("train", data=data)
    assert len(test) + len(train) == len(every) and test and train
    variants = ("tools", "tools-free-choice", "notools")
    assert variants == searchqa.VARIANTS
    for at in range(0, len(every), 3):
        group = every[at : at + 3]
        qid = group[0].data["question_id"]
        assert [c.id for c in group] == [f"{qid}:{v}" for v in variants]
        assert len({(c.prompt, c.expected) for c in group}) == 1
    assert all(split_of(c.data["question_id"]) == "test" for c in test)
    categories = {c.category for c in every}
    assert categories == {f"{k}/{v}" for k in ("single", "two-hop") for v in variants}
    assert [c.id for c in searchqa.load_cases("all", limit=3, data=data)] == [
        c.id for c in every[:3]
    ]


def test_categories_pick_variants_and_kinds(data: Path) -> None:
    every = searchqa.load_cases("all", data=data)
    tools = searchqa.load_cases("all", data=data, categories=searchqa.expand("tools"))
    assert tools == [c for c in every if c.data["variant"] == "tools"]
    picked = searchqa.load_cases("all", data=data, categories=searchqa.expand(" two-hop, tools"))
    assert picked and {c.category for c in picked} == {"two-hop/tools"}
    assert len(picked) == sum(c.category == "two-hop/tools" for c in every)
    with pytest.raises(ValueError, match="three-hop"):
        searchqa.load_cases("all", data=data, categories=("three-hop",))


def test_any_folder_with_questions_jsonl_is_data(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("# Kettles\n\nThe Brimble kettle boils in 40 seconds.\n")
    q = Question(id="brimble", question="How fast does the Brimble kettle boil?",
                 answer="40 seconds", docs=["notes.md"])  # fmt: skip
    (tmp_path / "questions.jsonl").write_text(q.model_dump_json() + "\n")
    (case, _free, _notools) = searchqa.load_cases("all", data=str(tmp_path))
    assert case.category == "single/tools" and case.expected == "40 seconds"
    assert searchqa.doc_url(tmp_path, "notes.md").endswith("/notes.md")
    with pytest.raises(FileNotFoundError, match="questions.jsonl"):
        searchqa.load_cases("all", data=tmp_path / "nowhere")


def test_default_data_is_generated_once_into_the_cache(cache: Path) -> None:
    cases = searchqa.load_cases("test", limit=4)
    assert len(cases) == 4
    questions = searchqa.default_data_dir() / "questions.jsonl"
    assert questions.is_relative_to(cache) and questions.is_file()
    stamp = questions.stat().st_mtime_ns
    assert [c.id for c in searchqa.load_cases("test", limit=4)] == [c.id for c in cases]
    assert questions.stat().st_mtime_ns == stamp


def test_training_cases_add_a_second_world_and_hold_no_test_question() -> None:
    cases = searchqa.training_cases()
    test = {c.data["question_id"] for c in searchqa.load_cases("test")}
    assert not test & {c.data["question_id"] for c in cases}
    default = searchqa.default_data_dir()
    world = [c for c in cases if c.data["folder"] != str(default)]
    assert world and {c.data["folder"] for c in world} == {str(searchqa.default_data_dir(1))}
    taken = {d for q in read_questions(default / "questions.jsonl") for d in q.docs}
    assert not any(taken & set(c.data["docs"]) for c in world)
    kinds = {c.data["relation"] for c in world if c.data["hops"] == 1}
    assert kinds == set(ASK)  # a question on every kind of fact
    assert {c.category for c in cases} == {"single/tools", "two-hop/tools"}


# --- the server -------------------------------------------------------------------------------


def test_the_server_serves_documents_that_fetch_page_reads(data: Path) -> None:
    case = case_for(data, hops=1)
    url = searchqa.doc_url(data, case.data["docs"][0])
    assert url.startswith("http://127.0.0.1:")
    port = int(url.split(":")[2].split("/")[0])
    fetch = fetch_tool(FetchSettings(allow_hosts=[f"127.0.0.1:{port}"]))
    result = fetch.run({"url": url})
    assert result.error is None and case.expected in result.text
    blocked = fetch_tool(FetchSettings()).run({"url": url})  # loopback needs the allowlist
    assert blocked.error is not None and "loopback" in blocked.error


def test_urls_are_stable_and_named_after_the_data_folder(tmp_path: Path, data: Path) -> None:
    url = searchqa.doc_url(data, "docs/people/x.md")
    assert url == searchqa.doc_url(data, "docs/people/x.md")
    assert url.endswith(f"/{data.name}/people/x.md")
    twin = tmp_path / data.name  # another folder with the same name gets its own prefix
    (twin / "docs").mkdir(parents=True)
    assert searchqa.doc_url(twin, "docs/people/x.md").endswith(f"/{data.name}-2/people/x.md")


def status(url: str, raw_path: str) -> int:
    """GET a raw path (no client-side normalization of '..')."""
    host, port = url.split("/")[2].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    conn.request("GET", raw_path)
    return conn.getresponse().status


def test_the_server_serves_only_documents(data: Path) -> None:
    url = searchqa.doc_url(data, case_for(data, hops=1).data["docs"][0])
    prefix = "/" + url.split("/")[3]
    assert status(url, url.split(url.split("/")[2], 1)[1]) == 200
    assert status(url, f"{prefix}/../questions.jsonl") == 404
    assert status(url, f"{prefix}/%2e%2e/questions.jsonl") == 404
    assert status(url, "/unknownprefix/people/x.md") == 404
    (data / "docs" / ".hidden.md").write_text("# secret\n")
    assert status(url, f"{prefix}/.hidden.md") == 404


# --- episodes ---------------------------------------------------------------------------------


def test_search_fetch_answer_is_correct_and_recorded(tiny, data: Path) -> None:
    case = case_for(data, hops=1)
    url = searchqa.doc_url(data, case.data["docs"][0])
    script = [
        call("web_search", query=case.prompt),
        call("fetch_page", url=url),
        f"1. {case.prompt}",  # the split (on by default): one lookup
        f"According to the page, the answer is {case.expected}.",
    ]
    gen = Scripted(tiny("qwen2"), script)
    result = searchqa.run_case(gen, case, settings(offline=True))  # tools run all the same
    d = result.details
    assert result.correct and result.score == 1.0 and d["contains"] and d["em"] == 0.0
    assert d["tools"] == ["web_search", "fetch_page"] and d["searched"] and d["fetched"]
    assert d["evidence_found"] == d["evidence_fetched"] == d["evidence_docs"] == 1
    assert d["outcome"] == "answer" and d["steps"] >= 2 and result.category == "single/tools"
    assert url in gen.lm.tokenizer.decode(gen.prompts[1])  # the search hit
    assert case.expected in gen.lm.tokenizer.decode(gen.prompts[-1])  # the page it answers from


def test_two_hop_fetches_both_documents(tiny, data: Path) -> None:
    case = case_for(data, hops=2)
    first, second = (searchqa.doc_url(data, d) for d in case.data["docs"])
    script = [call("fetch_page", url=first), call("fetch_page", url=second), case.expected]
    # URLs the model knew without searching: the loop would refuse them as guesses by default.
    free = settings(**{"agent.fetch_seen_urls_only": False})
    result = searchqa.run_case(Scripted(tiny("qwen2"), script), case, free)
    d = result.details
    assert result.correct and d["em"] == 1.0 and not d["searched"]
    assert d["evidence_fetched"] == d["evidence_docs"] == 2 and d["evidence_found"] == 0


def test_two_hop_is_split_searched_on_and_answered_over_http(tiny, data: Path) -> None:
    """The steered default on a generated two-hop case: the model's search, the loop's read of
    its best hit, the split, the bridge, the loop's search for the second lookup and its read,
    all over the real corpus server and BM25 index; the model writes only the split and the
    answers (the steered URLs and query are what a model held to them writes)."""
    case = case_for(data, hops=2)
    first, second = case.data["relation"].split(">")
    name = Path(case.data["docs"][0]).stem.replace("-", " ").title()  # the first entity
    split = f"1. {ASK[first].format(ref=name)}\n2. {ASK[second].format(ref='#1')}"
    steered = CHOICE + "\n</tool_call>"
    via = case.data["via"]
    script = [call("web_search", query=case.prompt), steered, split, via, steered, steered]
    split_on = settings(**{"agent.split_question": True})
    result = searchqa.run_case(Scripted(tiny("qwen2"), [*script, case.expected]), case, split_on)
    d = result.details
    assert result.correct and d["outcome"] == "answer" and d["steered_turns"] == 3
    assert d["tools"] == ["web_search", "fetch_page"] * 2
    assert d["fetched_urls"] == [searchqa.doc_url(data, doc) for doc in case.data["docs"]]
    assert d["plan"] == [line[3:] for line in split.splitlines()]
    assert d["lookups"] == [{"question": d["plan"][0], "answer": via}]


def test_free_choice_does_not_force_a_fetch(tiny, data: Path) -> None:
    """After the same search, the default variant starts a fetch of the best hit and answers
    through a focused call; free choice leaves both to the model, which here answers at once."""
    steered, free = case_for(data, 1, "tools"), case_for(data, 1, "tools-free-choice")
    answer = f"From the snippets: {steered.expected}."
    gen = Scripted(tiny("qwen2"), [call("web_search", query=steered.prompt), answer])
    result = searchqa.run_case(gen, free, settings())
    d = result.details
    assert result.category == "single/tools-free-choice" and result.output == answer
    assert d["tools"] == ["web_search"] and not d["fetched"] and d["steered_turns"] == 0
    assert not d["focused_answer"] and len(gen.prompts) == 2
    assert all(not options for options in gen.options)  # no turn held to chosen URLs
    url = searchqa.doc_url(data, steered.data["docs"][0])
    split = f"1. {steered.prompt}"  # the question split (on by default): one lookup
    script = [call("web_search", query=steered.prompt), call("fetch_page", url=url), split, answer]
    gen = Scripted(tiny("qwen2"), script)
    d = searchqa.run_case(gen, steered, settings()).details
    assert d["fetched"] and d["steered_turns"] == 1 and d["focused_answer"]
    assert any(gen.options)  # the read was held to the search's hits


def test_free_choice_fetches_what_the_model_picks(tiny, data: Path) -> None:
    case = case_for(data, 2, "tools-free-choice")
    first, second = (searchqa.doc_url(data, d) for d in case.data["docs"])
    script = [call("fetch_page", url=first), call("fetch_page", url=second), case.expected]
    result = searchqa.run_case(Scripted(tiny("qwen2"), script), case, settings())
    d = result.details  # URLs never shown to it: the default would refuse them as guesses
    assert result.correct and d["fetched_urls"] == [first, second] and not d["searched"]
    assert d["steered_turns"] == 0 and not d["focused_answer"]


def test_a_wrong_answer_is_incorrect(tiny, data: Path) -> None:
    case = case_for(data, hops=1)
    script = [call("web_search", query="zzxq qqzz"), "I think it is Nowhereville."]
    result = searchqa.run_case(Scripted(tiny("qwen2"), script), case, settings())
    assert not result.correct and result.score == 0.0
    assert result.details["searched"] and not result.details["fetched"]


def test_notools_runs_offline_with_no_tools(tiny, data: Path) -> None:
    case = case_for(data, hops=1, variant="notools")
    gen = Scripted(tiny("qwen2"), [f"It is {case.expected}."])
    result = searchqa.run_case(gen, case, settings())
    assert result.correct and result.category == "single/notools"
    assert result.details["tools"] == [] and result.details["evidence_docs"] == 0
    prompt = gen.lm.tokenizer.decode(gen.prompts[0])
    assert "web_search" not in prompt and Settings().offline_system_prompt in prompt
