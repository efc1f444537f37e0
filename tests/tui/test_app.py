"""The Textual app driven by its Pilot, with a scripted model, real tools and a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.widgets import Collapsible, Markdown, Static

from agent.log import default_log_path, find
from agent.settings import Settings, load_settings
from model.generate import Generator
from model.loader import ModelLoadError, load
from model.scripted import ScriptedGenerator
from tui import store
from tui.app import ChatApp
from tui.widgets import AssistantTurn, PromptBox, StatusBar

ANSWER = "Paris is the **capital** of France, and has been for a very long time."


def call(name: str, **arguments) -> str:
    return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"


def make_app(tiny, tmp_path: Path, outputs, delay: float = 0.0, **overrides) -> ChatApp:
    gen = ScriptedGenerator(tiny("qwen2"), outputs, delay_s=delay)
    settings = load_settings(None, {"agent.tools": [], **overrides})
    return ChatApp(settings, generator=gen, chats_dir=tmp_path / "chats")


async def submit(pilot, text: str, wait: bool = True) -> None:
    pilot.app.query_one(PromptBox).text = text
    await pilot.press("enter")
    if wait:
        await settle(pilot)


async def settle(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def status(app: ChatApp) -> str:
    return str(app.query_one(StatusBar).render())


def texts(app: ChatApp, selector: str) -> list[str]:
    out = []
    for w in app.query(selector):
        out.append(w.source if isinstance(w, Markdown) else str(w.render()))
    return out


async def test_a_question_streams_its_answer(tiny, tmp_path) -> None:
    app = make_app(tiny, tmp_path, [ANSWER], delay=0.04)  # 70 tokens: about 3 s
    async with app.run_test() as pilot:
        await submit(pilot, "What is the capital of France?", wait=False)
        await pilot.pause(0.8)
        partial = "".join(texts(app, ".step"))
        assert partial and ANSWER.startswith(partial.strip()) and len(partial) < len(ANSWER)
        await settle(pilot)
        assert texts(app, ".step") == [ANSWER]
        assert "1 step" in status(app) and "tok/s" in status(app)
    saved = store.load(None, tmp_path / "chats")
    assert saved.turns[0].answer == ANSWER and saved.turns[0].outcome == "answer"
    assert find(default_log_path(), saved.turns[0].episode_id).outcome == "answer"


async def test_a_tool_call_shows_as_a_panel(tiny, tmp_path) -> None:
    app = make_app(
        tiny,
        tmp_path,
        ["Let me compute.\n" + call("python", code="print(6 * 7)"), "It is 42."],
        **{"agent.tools": ["python"]},
    )
    async with app.run_test() as pilot:
        await submit(pilot, "What is 6 times 7?")
        (panel,) = app.query(Collapsible)
        assert "python(" in panel.title and "ok" in panel.title
        assert "42" in str(panel.query_one(".tool-output", Static).render())
        assert texts(app, ".step") == ["Let me compute.", "It is 42."]  # call markup hidden


async def test_a_repeated_call_shows_the_answer_from_its_result(tiny, tmp_path) -> None:
    """The issue's case: python("17 * 23") gives 391, then the model asks python("391")
    again and again; the screen shows an answer, not nothing."""
    first, again = call("python", code="17 * 23"), call("python", code="391")
    app = make_app(tiny, tmp_path, [first, again, again, again], **{"agent.tools": ["python"]})
    async with app.run_test() as pilot:
        await submit(pilot, "Compute 17 * 23 with python and tell me the result")
        assert texts(app, ".final") == ["The python result is: 391"]
        titles = [p.title for p in app.query(Collapsible)]
        assert "refused: a repeat" in titles[-1] and "ok" in titles[0]


async def test_escape_stops_mid_stream_and_keeps_the_partial_answer(tiny, tmp_path) -> None:
    app = make_app(tiny, tmp_path, [ANSWER * 3], delay=0.02)
    async with app.run_test() as pilot:
        await submit(pilot, "Tell me about Paris.", wait=False)
        await pilot.pause(0.4)
        await pilot.press("escape")
        await settle(pilot)
        shown = "".join(texts(app, ".step"))
        assert 0 < len(shown) < len(ANSWER * 3)
    turn = store.load(None, tmp_path / "chats").turns[0]
    assert turn.outcome == "cancelled" and turn.answer and (ANSWER * 3).startswith(turn.answer)
    assert find(default_log_path(), turn.episode_id).outcome == "cancelled"


async def test_offline_toggle_withholds_the_tools(tiny, tmp_path) -> None:
    app = make_app(tiny, tmp_path, ["On my way."], **{"agent.tools": ["python"]})
    async with app.run_test() as pilot:
        assert "online" in status(app)
        await submit(pilot, "/offline")
        assert "offline" in status(app)
        await submit(pilot, "Tell me a joke.")
        prompt = app.generator.lm.tokenizer.decode(app.generator.prompts[-1])
        assert Settings().offline_system_prompt in prompt and "<tools>" not in prompt
        await submit(pilot, "/offline")
        assert "online" in status(app)


async def test_offline_a_conversion_is_answered_exactly_without_the_model(tiny, tmp_path) -> None:
    app = make_app(tiny, tmp_path, [])  # no scripted output: a model turn would fail the turn
    async with app.run_test() as pilot:
        await submit(pilot, "/offline")
        await submit(pilot, "How far is 30 km in miles?")
        assert "30 km is about 18.6 miles." in texts(app, ".final")
        assert app.generator.prompts == []


async def test_offline_the_five_prompts_of_issue_23_need_no_model_turn(tiny, tmp_path) -> None:
    """Conversions, a car control and a warning light: exact or honest, from the pre-processor."""
    app = make_app(tiny, tmp_path, [])  # no scripted output: a model turn would fail the turn
    asked = {
        "How far is 30 km in miles?": "18.6 miles",
        "What is 100 km/h in miles per hour?": "62.1 mph",
        "How many litres are in 10 gallons?": "37.9",
        "Turn on the heating.": "I can't control the car's heating",
        "An orange engine light just came on. What does it mean?": "found a fault",
    }
    async with app.run_test() as pilot:
        await submit(pilot, "/offline")
        for question in asked:
            await submit(pilot, question)
        finals = texts(app, ".final")
    assert all(any(said in f for f in finals) for said in asked.values()), finals
    assert app.generator.prompts == []


async def test_attach_a_file_to_the_next_question(tiny, tmp_path) -> None:
    doc = tmp_path / "notes.txt"
    doc.write_text("The vault code is 77-ALPHA.")
    app = make_app(tiny, tmp_path, ["77-ALPHA"])
    async with app.run_test() as pilot:
        await submit(pilot, f"/attach {doc}")
        assert any("attached" in t for t in texts(app, ".notice"))
        await submit(pilot, "What is the vault code?")
        prompt = app.generator.lm.tokenizer.decode(app.generator.prompts[-1])
        assert "The vault code is 77-ALPHA." in prompt
        assert any("notes.txt" in t for t in texts(app, ".user"))
        await submit(pilot, "/attach /no/such/file")
        assert any("cannot attach" in t for t in texts(app, ".notice"))


async def test_resume_shows_and_continues_a_saved_conversation(tiny, tmp_path) -> None:
    chat = store.Chat(turns=[store.Turn(question="My name is Ada.", answer="Hello Ada.")])
    store.save(chat, tmp_path / "chats")
    resumed = store.load(chat.id[:4], tmp_path / "chats")
    gen = ScriptedGenerator(tiny("qwen2"), ["Your name is Ada."])
    app = ChatApp(load_settings(None, {"agent.tools": []}), generator=gen, chat=resumed,
                  chats_dir=tmp_path / "chats")  # fmt: skip
    async with app.run_test() as pilot:
        assert "My name is Ada." in texts(app, ".user")
        await submit(pilot, "What is my name?")
        assert "My name is Ada." in gen.lm.tokenizer.decode(gen.prompts[-1])
    assert len(store.load(chat.id, tmp_path / "chats").turns) == 2


async def test_commands_history_and_help(tiny, tmp_path) -> None:
    app = make_app(tiny, tmp_path, ["One.", "Two."])
    async with app.run_test() as pilot:
        await submit(pilot, "first question")
        await submit(pilot, "/nonsense")
        assert any("unknown command /nonsense" in t for t in texts(app, ".notice"))
        box = app.query_one(PromptBox)
        await pilot.press("up")
        assert box.text == "/nonsense"
        await pilot.press("up")
        assert box.text == "first question"
        await pilot.press("down", "down")
        assert box.text == ""
        box.text = "/he"
        await pilot.press("tab")
        assert box.text == "/help "
        await pilot.press("enter")
        await pilot.pause()
        assert any("/offline" in t for t in texts(app, "Markdown"))
        await pilot.press("ctrl+r")  # regenerate the last answer
        await settle(pilot)
        assert [t.answer for t in app.chat.turns] == ["Two."]


async def test_a_model_that_cannot_load_is_a_notice(tmp_path) -> None:
    def broken(settings, progress):
        raise ModelLoadError("no model at /nowhere; try --model smollm2")

    app = ChatApp(load_settings(None, {}), loader=broken, chats_dir=tmp_path / "chats")
    async with app.run_test() as pilot:
        await settle(pilot)
        notices = texts(app, ".notice")
        assert any("cannot load the model: no model at /nowhere" in t for t in notices)
        assert "no model" in status(app)


async def test_tiny_random_model_end_to_end(tiny, tmp_path) -> None:
    settings = load_settings(None, {"agent.tools": [], "sampling.max_new_tokens": 12})
    app = ChatApp(settings, loader=lambda s, progress: Generator(tiny("qwen2")),
                  chats_dir=tmp_path / "chats")  # fmt: skip
    async with app.run_test() as pilot:
        await settle(pilot)  # the model loads in a worker
        await submit(pilot, "hello")
        assert app.query(AssistantTurn) and "1 step" in status(app)
    assert store.load(None, tmp_path / "chats").turns[0].outcome in {"answer", "doom_loop"}


async def test_a_long_attachment_shows_rlm_sub_calls_nested(tiny, tmp_path) -> None:
    from evals.longcontext import make_case

    case = make_case("needle", 20_000, seed=2)
    doc = tmp_path / "long.txt"
    doc.write_text(case.text)
    outputs = ["(the model's draft)", case.answer]  # its turn, then the focused sub-call
    app = make_app(tiny, tmp_path, outputs, **{"rlm.inline_chars": 2000})
    async with app.run_test() as pilot:
        await submit(pilot, f"/attach {doc}")
        await submit(pilot, case.question)
        nested = [c for c in app.query(Collapsible) if "sub-call" in c.title]
        rows = [str(s.render()) for s in nested[0].query("Contents Static")]
        assert any(case.answer in row for row in rows)
        assert app.chat.turns[-1].answer == case.answer


async def test_a_full_log_and_an_unwritable_chats_folder_only_warn(
    tiny, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("EDGEAGENT_LOG", "/dev/full")  # every write is ENOSPC
    (tmp_path / "a-file").write_text("x")
    gen = ScriptedGenerator(tiny("qwen2"), [ANSWER, "Lyon is second."])
    settings = load_settings(None, {"agent.tools": []})
    app = ChatApp(settings, generator=gen, chats_dir=tmp_path / "a-file" / "chats")
    async with app.run_test() as pilot:
        await submit(pilot, "What is the capital of France?")
        await submit(pilot, "And the second city?")
        assert texts(app, ".step") == [ANSWER, "Lyon is second."]
        assert len(app.chat.turns) == 2
    assert sorted(w.split(":")[0] for w in app.warned) == [
        "cannot save the conversation",
        "cannot write the trajectory log /dev/full",
    ]


@pytest.mark.slow
async def test_the_shipped_model_computes_with_python_in_two_steps(tmp_path) -> None:
    """The trainer issue's check, on the real default model with its shipped adapter (on by
    default: evals/TRAINING.md): one python call, then the answer."""
    overrides = {"agent.tools": ["python"], "model.dtype": "bfloat16"}
    settings = load_settings(None, overrides)
    lm = load(settings.model.spec, adapter=settings.model.adapter, dtype="bfloat16")
    assert lm.adapter, "the default model ships with an adapter"
    app = ChatApp(settings, generator=Generator(lm), chats_dir=tmp_path / "chats")
    async with app.run_test() as pilot:
        await submit(pilot, "Compute 17 * 23 with python and tell me the result")
        # The model's own closing text is the last step on screen (".final" is for answers
        # the loop built).
        shown = texts(app, ".final") or texts(app, ".step")[-1:]
        assert shown and "391" in shown[-1], (status(app), texts(app, ".step"))
    (turn,) = store.load(None, tmp_path / "chats").turns
    assert len(find(default_log_path(), turn.episode_id).steps) <= 2
