"""Snapshots of the app's main screens (pytest-textual-snapshot); --snapshot-update redraws."""

from __future__ import annotations

import json

from agent.settings import load_settings
from model.scripted import ScriptedGenerator
from tui.app import ChatApp
from tui.widgets import PromptBox

SIZE = (100, 32)


def app(tiny, tmp_path, outputs, **overrides) -> ChatApp:
    settings = load_settings(None, {"agent.tools": [], "agent.log": False, **overrides})
    gen = ScriptedGenerator(tiny("qwen2"), outputs)
    return ChatApp(settings, generator=gen, chats_dir=tmp_path / "chats")


async def steady(pilot) -> None:
    """No cursor blink: a loaded machine would catch the cursor on or off at random."""
    pilot.app.query_one(PromptBox).cursor_blink = False


async def ask(pilot, text: str) -> None:
    await steady(pilot)
    pilot.app.query_one(PromptBox).text = text
    await pilot.press("enter")
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    pilot.app.status()  # timings differ run to run; the layout is what is compared


def test_welcome_screen(snap_compare, tiny, tmp_path) -> None:
    assert snap_compare(app(tiny, tmp_path, []), terminal_size=SIZE, run_before=steady)


def test_exchange_with_a_search_panel(snap_compare, tiny, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("EDGEAGENT_CACHE", str(tmp_path / "cache"))
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "bridge.md").write_text("# Zorvath Bridge\n\nIts main span is 612 metres long.")
    query = {"name": "web_search", "arguments": {"query": "Zorvath Bridge span"}}
    outputs = [
        f"I will look it up.\n<tool_call>{json.dumps(query)}</tool_call>",
        "The main span is **612 metres**.",
    ]
    overrides = {
        "agent.tools": ["search"],
        "search.corpus_dir": str(corpus),
        "search.base_url": "http://docs.test/",
    }
    the_app = app(tiny, tmp_path, outputs, **overrides)

    async def run_before(pilot) -> None:
        await ask(pilot, "How long is the Zorvath Bridge?")

    assert snap_compare(the_app, terminal_size=SIZE, run_before=run_before)


def test_offline_mode_and_help(snap_compare, tiny, tmp_path) -> None:
    async def run_before(pilot) -> None:
        await ask(pilot, "/offline")
        await ask(pilot, "Turn on the heating.")
        await ask(pilot, "/help")

    the_app = app(tiny, tmp_path, [])  # offline, a car control gets no model turn
    assert snap_compare(the_app, terminal_size=SIZE, run_before=run_before)
