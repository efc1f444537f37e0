"""Requests to operate the car, phone or radio: recognised in many phrasings, answered honestly
with no model turn, and everything else (questions about how, statements, emergencies, chat)
left to the model."""

from __future__ import annotations

from typing import Any

import pytest

from agent.controls import HINTS, reply, request
from agent.events import drain
from agent.loop import run_episode
from agent.settings import load_settings
from evals.incar_check import judge
from evals.incar_data import items
from model.scripted import ScriptedGenerator

REQUESTS = [  # none of these is in the in-car suite
    ("Hey, could you please turn the heating up?", "climate"),
    ("Wind down my window.", "car"),
    ("Can you ring the garage?", "phone"),
    ("Turn the AC off please", "climate"),
    ("I want you to play the news", "media"),
    ("Reply to Tom's text", "phone"),
    ("Louder please", "media"),
    ("Navigate home", "navigation"),
    ("Open the windows a bit", "car"),
    ("Demist the windscreen", "climate"),
    ("Make it warmer in here", "climate"),
    ("Lower the temperature to 19 degrees", "climate"),
    ("Send a text to mum saying I'm late", "phone"),
    ("Dim the dashboard lights", "car"),
    ("Take me to the airport", "navigation"),
    ("Put some music on", "media"),
    ("Pause the podcast", "media"),
    ("Switch off the fog lights", "car"),
    ("Honk the horn", "car"),
    ("Could you close the sunroof?", "car"),
    ("Find a charging station nearby", "navigation"),
    ("Answer the call", "phone"),
    ("It's freezing, warm it up.", None),  # "it" is nothing named: left to the model
]
LEFT_TO_THE_MODEL = [
    "How do I turn on the fog lights?",
    "Can I open the window at speed?",
    "It's cold in here.",
    "Stop the car!",
    "Turn left at the next junction.",
    "Let's play a word game",
    "Play a game with me",
    "Cool, thanks.",
    "Tell me a joke",
    "Make me laugh",
    "Set a reminder for 5 pm",
    "Find the capital of France",
    "Why is the engine light on?",
    "Keep going.",
    "The heating isn't working.",
    "Is the boot open?",
    "I turned on the wipers but they don't move.",
    "Give me a fun fact",
    "The wind is strong today",
    "",
]


@pytest.mark.parametrize(("message", "kind"), REQUESTS)
def test_requests_in_many_phrasings_are_recognised_by_kind(message: str, kind: str | None) -> None:
    assert request(message) == kind


@pytest.mark.parametrize("message", LEFT_TO_THE_MODEL)
def test_questions_statements_and_emergencies_are_left_to_the_model(message: str) -> None:
    assert request(message) is None and reply(message) is None


def test_the_in_car_suite_controls_and_nothing_else_of_it() -> None:
    """Both splits: 1 of 38 controls ("Skip." style bare words aside) may pass to the model;
    no conversion, fact, safety or chat prompt may be taken for a request."""
    suite = items()
    missed = [p for _, kind, p, _ in suite if kind == "control" and request(p) is None]
    taken = [p for _, kind, p, _ in suite if kind != "control" and request(p) is not None]
    assert taken == [] and len(missed) <= 1, (taken, missed)


@pytest.mark.parametrize("kind", sorted(HINTS))
def test_every_reply_says_it_cannot_and_claims_nothing(kind: str) -> None:
    ok, details = judge({"check": "control"}, HINTS[kind], "Turn on the heating.")
    assert ok, details
    assert len(HINTS[kind].split()) <= 20  # one short sentence, read aloud to a driver


def episode(gen: Any, question: str, mode: str = "offline", **overrides: Any) -> Any:
    settings = load_settings(None, {"offline": mode == "offline", **overrides})
    return drain(list(run_episode(gen, question, {}, settings, mode=mode)))  # type: ignore[arg-type]


def test_an_offline_episode_answers_a_control_without_the_model(tiny: Any) -> None:
    gen = ScriptedGenerator(tiny("qwen2"), [])  # any model turn would raise: none is queued
    traj = episode(gen, "Turn on the seat heating, please.")
    assert traj.final_answer == HINTS["climate"] and gen.prompts == []


def test_the_setting_hands_controls_back_to_the_model_and_online_never_uses_it(tiny: Any) -> None:
    off = ScriptedGenerator(tiny("qwen2"), ["The heating is on."])
    traj = episode(off, "Turn on the heating.", **{"incar.controls": False})
    assert len(off.prompts) == 1 and traj.final_answer == "The heating is on."
    online = ScriptedGenerator(tiny("qwen2"), ["Done."])
    traj = episode(online, "Turn on the heating.", mode="online")
    assert len(online.prompts) == 1 and traj.final_answer == "Done."
