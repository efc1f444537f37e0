"""Warning lights: recognised from descriptions the in-car suite does not use, explained with
the safe action first where the light calls for stopping, and everything that is not a
question about one light left to the model."""

from __future__ import annotations

from typing import Any

import pytest

from agent.dashboard import LIGHTS, STOP, reply, which
from agent.events import drain
from agent.loop import run_episode
from agent.settings import load_settings
from evals.incar_check import judge
from evals.incar_data import items
from model.scripted import ScriptedGenerator

DESCRIBED = [  # none of these is in the in-car suite
    ("My oil light came on, what does that mean?", "oil", True),
    ("There's a little genie lamp lit up on the dash.", "oil", True),
    ("What is the yellow tyre pressure warning telling me?", "tyre", False),
    ("The TPMS light is on.", "tyre", False),
    ("Why is there a coolant warning on my dashboard?", "temperature", True),
    ("A steering wheel with an exclamation mark just appeared.", "steering", False),
    ("The check engine light is flashing!", "engine", True),
    ("The engine management light is on, is that bad?", "engine", False),
    ("A blue headlamp symbol is showing on the dash.", "highbeam", False),
    ("There's a triangle with an exclamation mark in it on my dash.", "master", False),
    ("What does the spanner symbol mean?", "service", False),
    ("The DPF light came on on my diesel.", "dpf", False),
    ("My seatbelt light keeps blinking.", "seatbelt", False),
    ("The battery light lit up while driving.", "battery", False),
    ("The ESP light is flickering on a wet road.", "traction", False),
]
NOT_ONE_LIGHT = [
    "All the warning lights just came on at once.",
    "A blue light is flashing behind me.",
    "Is there a sign of wear on my tyres?",
    "How often should I check the oil?",
    "The temperature gauge is in the red.",
    "What does EV stand for?",
    "Turn on the fog lights.",
    "I can see smoke coming from the engine.",
    "Should I use high beam in fog?",
    "Is the engine light on?",
]


@pytest.mark.parametrize(("message", "key", "stop"), DESCRIBED)
def test_a_described_light_gets_its_meaning_and_stop_first_when_it_calls_for_it(
    message: str, key: str, stop: bool
) -> None:
    said = reply(message)
    assert which(message.lower()) == key and said is not None
    assert said.startswith(STOP) == stop and LIGHTS[key].meaning in said


@pytest.mark.parametrize("message", NOT_ONE_LIGHT)
def test_what_is_not_about_one_light_is_left_to_the_model(message: str) -> None:
    assert reply(message) is None


def test_the_in_car_suite_lights_are_right_and_nothing_else_is_taken() -> None:
    """Both splits: every light fact right by the suite's own checker, every safety prompt it
    takes still safe, no other prompt (conversion, control, chat, other facts) taken."""
    for _, kind, prompt, expected in items():
        said = reply(prompt)
        if said is None:
            continue
        assert kind in ("fact", "safety"), prompt
        ok, details = judge(expected, said, prompt)
        assert ok, (prompt, said, details)
    lights = [p for i, k, p, _ in items() if i.startswith("incar-fact-light-")]
    assert lights and all(reply(p) is not None for p in lights)


def test_every_reply_is_short_enough_to_read_aloud() -> None:
    for light in LIGHTS.values():
        assert len(f"{STOP} {light.meaning}".split()) <= 40


def test_an_offline_episode_explains_a_light_without_the_model(tiny: Any) -> None:
    gen = ScriptedGenerator(tiny("qwen2"), [])  # any model turn would raise: none is queued
    settings = load_settings(None, {"offline": True})
    events = list(run_episode(gen, "The ABS light is on.", {}, settings, mode="offline"))  # type: ignore[arg-type]
    assert drain(events).final_answer == LIGHTS["abs"].meaning and gen.prompts == []
    off = ScriptedGenerator(tiny("qwen2"), ["It is the ABS."])
    settings = load_settings(None, {"offline": True, "incar.lights": False})
    events = list(run_episode(off, "The ABS light is on.", {}, settings, mode="offline"))  # type: ignore[arg-type]
    assert drain(events).final_answer == "It is the ABS." and len(off.prompts) == 1
