"""RLM mode: long attachments searched in the sandbox, with a scripted model and the real one."""

from __future__ import annotations

import json

import pytest

from agent.attach import AttachError, load_attachment, run_with_attachment
from agent.rlm import key_terms
from agent.settings import load_settings
from evals.longcontext import make_case
from model.scripted import ScriptedGenerator

SMALL_INLINE = {"rlm.inline_chars": 2000}


def call(name: str, **arguments) -> str:
    return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"


def rlm(tiny, text: str, question: str, outputs, overrides=None):
    gen = ScriptedGenerator(tiny("qwen2"), outputs)
    settings = load_settings(None, {**SMALL_INLINE, **(overrides or {})})
    events = list(run_with_attachment(gen, question, text, settings))
    return gen, events[-1].trajectory


def test_key_terms_prefer_codes_quotes_and_markers() -> None:
    assert key_terms("Which code opens locker K-4821?")[0] == "K-4821"
    assert key_terms("How many lines are marked [ALERT amber]?")[0] == "[ALERT amber]"
    assert key_terms('What did "the amber flood gauge" report?')[0] == "the amber flood gauge"
    assert "Varnock" in key_terms("Where was Elspeth Varnock born?")
    assert key_terms("what is it?") == []


def test_short_attachment_goes_inline(tiny) -> None:
    gen, traj = rlm(tiny, "The vault code is 77-ALPHA.", "What is the vault code?", ["77-ALPHA"])
    first = gen.lm.tokenizer.decode(gen.prompts[0])
    assert "The vault code is 77-ALPHA." in first and traj.mode == "online"
    assert traj.task == "What is the vault code?" and traj.final_answer == "77-ALPHA"


def test_long_attachment_never_enters_the_prompt(tiny) -> None:
    case = make_case("multikey", 50_000, seed=3)
    gen, traj = rlm(
        tiny,
        case.text,
        case.question,
        [
            call("search_context", query=case.question.split()[-1].rstrip("?")),
            "(the model's own draft, replaced by the focused answer)",
            case.answer,  # the focused sub-query's answer
        ],
    )
    first = gen.lm.tokenizer.decode(gen.prompts[0])
    assert len(first) < 6000 < len(case.text)
    assert "50," in first or f"{case.chars:,}" in first  # the model is told the length
    target = case.question.split()[-1].rstrip("?")
    assert f"Locker {target} opens with code {case.answer}" in first  # evidence before turn one
    assert traj.mode == "rlm" and traj.outcome == "answer" and traj.final_answer == case.answer
    assert traj.steps[0].tool_runs[0].call.name == "search_context"
    focused = traj.steps[-1].sub_episodes[0]
    assert focused.mode == "sub" and case.question in focused.task


def test_count_evidence_and_tools(tiny) -> None:
    case = make_case("count", 30_000, seed=1)
    marker = case.question.split("marked ")[1].rstrip("?")
    gen, traj = rlm(
        tiny,
        case.text,
        case.question,
        [
            call("count_lines", query=marker),
            call("read_context", start=0, length=50),
            case.answer,
        ],
        {"rlm.max_steps": 2},
    )
    assert f"lines containing {marker!r}: {case.answer}" in gen.lm.tokenizer.decode(gen.prompts[0])
    runs = [s.tool_runs[0] for s in traj.steps[:2]]
    assert runs[0].text.endswith(f"lines containing {marker!r}: {case.answer}")
    assert case.text[:50] in runs[1].text
    assert traj.final_answer == case.answer


def test_a_query_found_nowhere_is_an_empty_result_the_answer_never_reads(tiny) -> None:
    # The whole question as the query occurs nowhere: "0 lines" would read as the answer.
    case = make_case("count", 30_000, seed=1)
    gen, traj = rlm(
        tiny,
        case.text,
        case.question,
        [
            call("count_lines", query=case.question),
            call("search_context", query=case.question),
            "(the model's own draft, replaced by the focused answer)",
            case.answer,  # the focused sub-query's answer
        ],
        {"rlm.max_steps": 3},
    )
    runs = [s.tool_runs[0] for s in traj.steps[:2]]
    assert [r.error_kind for r in runs] == ["empty", "empty"]
    assert "shorter phrase" in runs[0].text and ": 0" not in runs[0].text
    focused = traj.steps[-1].sub_episodes[0]
    assert case.question in focused.task and "occurs nowhere" not in focused.task
    assert traj.final_answer == case.answer


def test_llm_query_and_final_from_python(tiny) -> None:
    case = make_case("needle", 20_000, seed=2)
    code = (
        "at = context.find('combination')\n"
        "piece = context[at - 20:at + 80]\n"
        "FINAL(llm_query('What is the combination?', piece))"
    )
    gen, traj = rlm(tiny, case.text, case.question, [call("python", code=code), case.answer])
    step = traj.steps[0]
    assert traj.outcome == "answer" and traj.final_answer == case.answer
    (sub,) = step.sub_episodes
    assert sub.mode == "sub" and "What is the combination?" in sub.task
    assert case.answer in sub.task  # the piece of the context was handed to the sub-call


def test_llm_query_depth_is_limited(tiny) -> None:
    case = make_case("needle", 20_000, seed=2)
    code = "print(llm_query('q', 'text'))"
    _, traj = rlm(
        tiny, case.text, case.question, [call("python", code=code), "x", "y"], {"rlm.max_depth": 0}
    )
    assert "nest 0 deep at most" in traj.steps[0].tool_runs[0].text


def test_attachment_errors(tmp_path) -> None:
    settings = load_settings(None, {})
    with pytest.raises(AttachError, match="no such file"):
        load_attachment(str(tmp_path / "nope.txt"), settings)
    with pytest.raises(AttachError, match="cannot attach http://127.0.0.1"):
        load_attachment("http://127.0.0.1:9/x", settings)  # private address, not allowlisted
    (tmp_path / "doc.txt").write_text("hello")
    assert load_attachment(str(tmp_path / "doc.txt"), settings) == "hello"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b" \n\t\n", "the file is empty"),
        (b"\x7fELF\x02\x01\x01\x00\x00\x00", "binary file"),
        (bytes(range(1, 32)) * 40, "binary file"),  # control characters, no NUL
        (b"%PDF-1.7\n" + bytes(range(128, 256)) * 20, "binary file"),
    ],
)
def test_empty_and_binary_attachments_are_refused(tmp_path, content: bytes, message: str) -> None:
    (tmp_path / "f").write_bytes(content)
    with pytest.raises(AttachError, match=message):
        load_attachment(str(tmp_path / "f"), load_settings(None, {}))
    with pytest.raises(AttachError, match="it is a folder"):
        load_attachment(str(tmp_path), load_settings(None, {}))


@pytest.mark.parametrize(
    "content",
    [
        "Le phare de Brest, été comme hiver.\n".encode("latin-1") * 50,  # not UTF-8, still text
        b"\x1b[32mINFO\x1b[0m service started\n" * 50,  # a colored log
        "Ünïcödé text with a tab\tand a form feed\f\n".encode() * 50,
    ],
)
def test_text_that_is_not_clean_utf8_is_still_attached(tmp_path, content: bytes) -> None:
    (tmp_path / "f.txt").write_bytes(content)
    assert load_attachment(str(tmp_path / "f.txt"), load_settings(None, {})).strip()


def test_offline_refuses_the_sandbox(tiny) -> None:
    settings = load_settings(None, {**SMALL_INLINE, "offline": True})
    gen = ScriptedGenerator(tiny("qwen2"), [])
    with pytest.raises(AttachError, match="--offline"):
        list(run_with_attachment(gen, "q", "x" * 5000, settings))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["needle", "multikey", "count"])
def test_embedded_model_answers_a_100k_case(embedded_lm, kind: str) -> None:
    from model.generate import Generator

    case = make_case(kind, 100_000, seed=0)
    events = list(
        run_with_attachment(
            Generator(embedded_lm), case.question, case.text, load_settings(None, {})
        )
    )
    assert case.answer in (events[-1].trajectory.final_answer or "")


def test_long_fetched_pages_are_searched_not_clipped(tiny, tmp_path) -> None:
    """A page past inline_chars becomes `context`; the model reads the passages that match
    the question, and a second page replaces the first."""
    from agent.loop import run_episode
    from agent.toolbox import toolbox

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    pages = {}
    for name, code in [("a.txt", "1111-ZETA"), ("b.txt", "2222-KILN")]:
        case = make_case("needle", 40_000, seed=len(pages))
        text = case.text.replace(case.answer, code)
        (corpus / name).write_text(text)
        pages[name] = (text, code, case.question)
    question = "What is the combination for the vault?"
    overrides = {**SMALL_INLINE, "search.corpus_dir": str(corpus)}
    # The script fetches without searching first, which the loop refuses by default.
    settings = load_settings(None, {**overrides, "agent.fetch_seen_urls_only": False})
    urls = [(corpus / n).resolve().as_uri() for n in pages]
    gen = ScriptedGenerator(
        tiny("qwen2"), [call("fetch_page", url=urls[0]), call("fetch_page", url=urls[1]), "done"]
    )
    with toolbox(settings, question=question) as tools:
        traj = list(run_episode(gen, question, tools, settings))[-1].trajectory
    first, second = (s.tool_runs[0] for s in traj.steps[:2])
    for run, (text, code, _) in zip([first, second], pages.values(), strict=True):
        assert run.error is None and "combination" in run.text and code in run.text
        assert "stored in the python variable `context`" in run.text
        assert len(run.text) < 4000 < len(text)
    assert "1111-ZETA" not in second.text  # the second page's search saw the second page


def test_scaffold_parts_switch_off_as_settings(tiny) -> None:
    """rlm.model_turns off: the focused answer on the prefetched evidence is the whole episode.
    rlm.prefetch and rlm.focused_answer off: nothing before turn one, the model's turn answers."""
    case = make_case("multikey", 30_000, seed=4)
    gen, traj = rlm(tiny, case.text, case.question, [case.answer], {"rlm.model_turns": False})
    assert len(gen.prompts) == 1 and traj.mode == "rlm" and traj.final_answer == case.answer
    assert len(traj.steps) == 1 and not traj.steps[0].tool_runs and not traj.steps[0].sub_episodes
    assert case.answer in gen.lm.tokenizer.decode(gen.prompts[0])  # the evidence
    own = "I could not find it."
    off = {"rlm.prefetch": False, "rlm.focused_answer": False}
    gen, traj = rlm(tiny, case.text, case.question, [own], off)
    first = gen.lm.tokenizer.decode(gen.prompts[0])
    assert case.answer not in first and "automatic search" not in first and "<tools>" in first
    assert "search results you are given" not in first  # its system prompt promises none
    assert len(gen.prompts) == 1 and traj.final_answer == own  # no focused sub-call
    defaults = load_settings(None, {}).rlm
    assert defaults.prefetch and defaults.focused_answer and defaults.model_turns
