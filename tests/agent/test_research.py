"""Multi-hop research in real episodes: a scripted model, the real local search index and
fetch_page on a small corpus with distractors, the real loop and research policy."""

from __future__ import annotations

import json
from pathlib import Path

from agent.events import Notice
from agent.loop import run_episode
from agent.research import NOT_ANSWERED
from agent.settings import Settings, load_settings
from agent.toolbox import toolbox
from agent.trajectory import Trajectory
from model.scripted import CHOICE, ScriptedGenerator

PAGES = {
    "zorvath-bridge.md": "# Zorvath Bridge\n\nThe Zorvath Bridge crosses the Oder. It opened in "
    "1931 and was designed by Elspeth Varnock. It is sometimes confused with the Kell Tower.",
    "elspeth-varnock.md": "# Elspeth Varnock\n\nElspeth Varnock was an engineer. Elspeth "
    "Varnock was born in 1868 in Halvern. Varnock retired in 1931.",
    "kell-tower.md": "# Kell Tower\n\nThe Kell Tower was designed by Orrin Task, born in 1790. "
    "It faces the Zorvath Bridge.",
    "halvern.md": "# Halvern\n\nHalvern is a town on the Oder, founded in 1602.",
}
TWO_HOP = "In what year was the designer of the Zorvath Bridge born?"
SPLIT = "1. Who designed the Zorvath Bridge?\n2. In what year was #1 born?"
READ = CHOICE + "\n</tool_call>"  # the steered turn: the loop's URL or query, then the end


def call(name: str, **arguments: object) -> str:
    return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"


def corpus(tmp_path: Path, pages: dict[str, str] = PAGES) -> tuple[Settings, dict[str, str]]:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in pages.items():
        (folder / name).write_text(text)
    urls = {name: (folder / name).resolve().as_uri() for name in pages}
    overrides = {"search.corpus_dir": str(folder), "agent.split_question": True}
    return load_settings(None, overrides), urls


def episode(
    tiny, settings: Settings, question: str, outputs: list[str]
) -> tuple[ScriptedGenerator, Trajectory, list[str]]:
    gen = ScriptedGenerator(tiny("qwen2"), outputs)
    with toolbox(settings, question=question) as tools:
        events = list(run_episode(gen, question, tools, settings))
    notices = [e.text for e in events if isinstance(e, Notice)]
    return gen, events[-1].trajectory, notices


def runs(traj: Trajectory, tool: str) -> list[dict]:
    return [r.call.arguments for s in traj.steps for r in s.tool_runs if r.call.name == tool]


def test_a_two_hop_question_is_split_searched_on_and_answered(tiny, tmp_path) -> None:
    settings, urls = corpus(tmp_path)
    outputs = [
        call("web_search", query="Zorvath Bridge designer born"),  # the model's own search
        READ,  # the steered read of its best hit
        SPLIT,  # the split, asked before the first answer
        "It was designed by Elspeth Varnock.",  # lookup 1 on the bridge's page: the bridge
        READ,  # the loop's search for lookup 2
        READ,  # the steered read of its best unread hit
        "1868",  # lookup 2, on the pages read
    ]
    gen, traj, notices = episode(tiny, settings, TWO_HOP, outputs)
    assert traj.outcome == "answer" and traj.final_answer == "1868"
    assert runs(traj, "fetch_page") == [
        {"url": urls["zorvath-bridge.md"]},
        {"url": urls["elspeth-varnock.md"]},
    ]
    query = "In what year was Elspeth Varnock born?"
    assert runs(traj, "web_search")[1] == {"query": query}
    search = traj.steps[2]
    assert search.prefill.endswith('"query": "')  # the loop wrote the call, held to the query
    assert [o for o in gen.options if o][1] == [gen.encode(query + '"}}')]
    assert traj.meta["plan"] == SPLIT.replace("1. ", "").replace("2. ", "").splitlines()
    assert traj.meta["lookups"] == [
        {"question": "Who designed the Zorvath Bridge?", "answer": "Elspeth Varnock"}
    ]
    last = traj.steps[-1].sub_episodes[-1].task  # both pages, the newest first
    assert last.endswith(f"Question: {query}")
    assert last.index("born in 1868") < last.index("designed by Elspeth Varnock")
    assert any("Elspeth Varnock" in n for n in notices)


def test_a_single_hop_question_is_still_one_read(tiny, tmp_path) -> None:
    settings, urls = corpus(tmp_path)
    question = "In what year did the Zorvath Bridge open?"
    for split in [f"1. {question}", "1. What is the Zorvath Bridge?\n2. When did #1 open?"]:
        outputs = [call("web_search", query="Zorvath Bridge opened"), READ, split, "1931"]
        _, traj, _ = episode(tiny, settings, question, outputs)
        assert traj.final_answer == "1931" and traj.meta["plan"] == [question], split
        assert runs(traj, "fetch_page") == [{"url": urls["zorvath-bridge.md"]}]
        assert len(runs(traj, "web_search")) == 1


def test_a_bridge_that_is_no_new_thing_reads_the_same_page_again(tiny, tmp_path) -> None:
    """A split that looks right but whose first answer is a name the question gave, or a
    value: the page read is asked the question itself (a second harmless read of it)."""
    settings, urls = corpus(tmp_path)
    question = "In what year did the Zorvath bridge open?"
    split = "1. Which bridge is it?\n2. In what year did #1 open?"
    outputs = [call("web_search", query="Zorvath bridge"), READ, split, "the Zorvath Bridge"]
    _, traj, _ = episode(tiny, settings, question, [*outputs, "1931"])
    assert traj.final_answer == "1931" and len(runs(traj, "fetch_page")) == 1
    split_sub, first, again = traj.steps[1].sub_episodes
    assert first.task.endswith("Question: Which bridge is it?")
    assert again.task.endswith(f"Question: {question}") and traj.meta["plan"] == [question]
    # a value is no bridge either: a one-lookup question split in two
    question = "How long is the main span of the Zorvath Bridge?"
    split = "1. What is the main span of the Zorvath Bridge?\n2. How long is #1?"
    outputs = [call("web_search", query="Zorvath span"), READ, split, "The main span is 612 m."]
    _, traj, _ = episode(tiny, settings, question, [*outputs, "612 metres"])
    assert traj.final_answer == "612 metres" and len(runs(traj, "fetch_page")) == 1


def test_a_page_without_the_bridge_ends_on_one_not_found_sentence(tiny, tmp_path) -> None:
    pages = {  # no page says who designed the bridge
        "zorvath-bridge.md": "# Zorvath Bridge\n\nThe Zorvath Bridge crosses the Oder.",
        "kell-tower.md": "# Kell Tower\n\nThe Kell Tower faces the Zorvath Bridge.",
        "halvern.md": "# Halvern\n\nHalvern is a town on the Oder.",
    }
    settings, urls = corpus(tmp_path, pages)
    outputs = [
        call("web_search", query="Zorvath Bridge"),
        READ,
        SPLIT,
        "NOT FOUND",  # lookup 1 on the bridge's page
        READ,  # the loop searches for lookup 1 itself ...
        READ,  # ... and reads its best unread hit
        "NOT FOUND",
        *[READ, "NOT FOUND"] * 3,  # any further unread hit of that search, until none is left
    ]
    gen, traj, _ = episode(tiny, settings, TWO_HOP, outputs)
    assert traj.outcome == "answer" and traj.final_answer == f"{NOT_ANSWERED}."
    assert traj.final_answer.count(".") == 1 and "\n" not in traj.final_answer
    read = [r["url"] for r in runs(traj, "fetch_page")]
    assert read[0] == urls["zorvath-bridge.md"] and len(read) == len(set(read)) >= 2
    assert runs(traj, "web_search")[1] == {"query": "Who designed the Zorvath Bridge?"}
    assert all(step.prefill for step in traj.steps[1:])  # the model never wandered off


def test_a_found_bridge_whose_next_page_is_missing_says_what_was_found(tiny, tmp_path) -> None:
    pages = {k: v for k, v in PAGES.items() if k != "elspeth-varnock.md"}
    settings, _ = corpus(tmp_path, pages)
    outputs = [call("web_search", query="Zorvath Bridge"), READ, SPLIT, "Elspeth Varnock"]
    outputs += [READ, READ, "NOT FOUND"] + [READ, "NOT FOUND"] * 3
    _, traj, _ = episode(tiny, settings, TWO_HOP, outputs)
    answer = traj.final_answer or ""
    assert answer == (
        f"{NOT_ANSWERED}; they say only that the answer to "
        '"Who designed the Zorvath Bridge?" is Elspeth Varnock.'
    )


def test_splitting_off_is_the_older_research(tiny, tmp_path) -> None:
    settings, _ = corpus(tmp_path)
    settings.agent.split_question = False
    outputs = [call("web_search", query="Zorvath Bridge opened"), READ, "1931"]
    _, traj, _ = episode(tiny, settings, "When did the Zorvath Bridge open?", outputs)
    assert traj.final_answer == "1931" and "plan" not in traj.meta
    assert [s.mode for s in traj.steps[1].sub_episodes] == ["sub"]  # the answer alone
