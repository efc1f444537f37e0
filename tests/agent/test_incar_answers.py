"""The in-car pre-processor: exact conversions and trip arithmetic in many phrasings, nothing
said where it does not understand, and its hook in offline episodes (on, off, online)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agent.events import drain
from agent.incar import answer, offline_answer
from agent.loop import run_episode
from agent.settings import load_settings
from evals.incar_check import judge
from model.scripted import ScriptedGenerator

CONVERSIONS = [  # question, words the answer must hold (the exact figure, rounded)
    ("How far is 30 km in miles?", "18.6 miles"),
    ("What is 100 km/h in miles per hour?", "62.1 mph"),
    ("how many miles is 42 kilometers", "26.1 miles"),
    ("The next exit is 5 miles away, how many km is that?", "8.05 km"),
    ("how much is 1,200 km in miles", "745.6 miles"),
    ("what's 65 mph in kph", "104.6 km/h"),
    ("How many km/h is seventy mph?", "112.7 km/h"),
    ("convert 2.5 bar into psi please", "36.3 psi"),
    ("My tyres want 220 kPa. What is that in PSI?", "31.9 psi"),
    ("What's 32 psi in bar?", "2.21 bar"),
    ("How many feet is 3.2 meters?", "10.5 feet"),
    ("A height limit of 12 ft, how many metres is that?", "3.66 m"),
    ("what is a mile in km", "1.61 km"),
    ("How many litres in a US gallon?", "3.79 litres"),
    ("what's 40 litres in imperial gallons", "8.8 imperial gallons"),
    ("Convert 100 kg to pounds", "220.5 lb"),
    ("What's 180 lbs in kilos?", "81.6 kg"),
    ("What's minus 10 celsius in fahrenheit?", "14 °F"),
    ("It's 85 degrees, what is that in celsius?", "29.4 °C"),
    ("What's 20 degrees in fahrenheit?", "68 °F"),
    ("Convert 20°C to F.", "68 °F"),
    ("what's 30 mpg in l/100km", "7.84 L/100 km"),
    ("My car does 45 mpg (UK). What's that in litres per 100 km?", "6.28 L/100 km"),
    ("I use 6.5 litres per 100 km, what is that in miles per gallon?", "36.2 mpg"),
    ("Convert 3 hours to minutes.", "180 minutes"),
    ("How many hours is 90 minutes?", "1.5 hours"),
]
ARITHMETIC = [
    ("If I drive 250 miles at 60 mph how long will it take?", "4 hours 10 minutes"),
    ("How long does 45 km take at 90 km/h?", "30 minutes"),
    ("How many minutes to drive 20 km at 50 km/h?", "24 minutes"),
    ("How far will I get in 2 hours 30 minutes at 100 km/h?", "250 km"),
    ("At 70 mph, how far do I go in half an hour?", "35 miles"),
    ("I drove 150 km in an hour and a half, what was my average speed?", "100 km/h"),
    ("How far can I go on 35 litres if I use 7 litres per 100 km?", "500 km"),
    ("How many gallons do I need for 300 miles at 30 mpg?", "10 US gallons"),
    ("My car uses 8 L/100 km. How much fuel for 250 km?", "20 litres"),
    ("I used 42 litres for 600 km. What's my fuel consumption?", "7 L/100 km"),
    ("Diesel is €1.65 per litre. What will 50 litres cost?", "82.50 euros"),
    (
        "Petrol is 1.79 a litre and my car uses 6 L/100 km. What does a 300 km trip cost?",
        "32.22",
    ),  # fmt: skip
    ("What is 12 times 7?", "= 84"),
    ("what's 15% of 80", "= 12"),
    ("What is (120 + 30) / 2?", "= 75"),
]
NOT_UNDERSTOOD = [  # the model answers these, as before
    "Turn on the heating.",
    "An orange engine light just came on. What does it mean?",
    "Set the temperature to 21 degrees.",
    "Set cruise control to 110 km/h.",
    "What is the capital of France?",
    "My tyres are at 32 psi. Is that OK?",  # no unit asked
    "Is 35 psi the same as 2.4 bar?",  # two quantities that make no trip
    "The speed limit is 50. Should I slow down?",
    "I have 3 kids and 200 km to go at 100 km/h, when do we arrive?",  # a number it can't place
    "What is 30 km in psi?",  # a unit of another dimension
    "How far is 30 km in miles and 20 kg in pounds?",  # two requests
    "Tell me about the 2020 Olympics.",
    "30 km to miles",  # not asked
    "What's 5'10 in cm?",
    "How long is 40 km/h?",
    "Call 0800 123 456.",
    "Play track 5.",
    "What year was the Eiffel Tower built?",
    "What's 100 km in miles per hour?",  # a distance is no speed
    "What is 10 m/s in km/h?",  # a unit it does not know
    "How much is 50 litres of fuel at 1.60?",  # a price with no "per litre"
]


@pytest.mark.parametrize(("question", "said"), CONVERSIONS + ARITHMETIC)
def test_the_exact_figure_in_one_short_sentence(question: str, said: str) -> None:
    reply = answer(question)
    assert reply is not None and said in reply, reply
    assert reply.endswith(".") and reply.count(". ") <= 1 and len(reply.split()) <= 25


def test_a_gallon_not_said_to_be_us_or_imperial_gets_both() -> None:
    reply = answer("How many litres are in 10 gallons?") or ""
    assert "37.9 litres" in reply and "45.5 litres" in reply
    assert reply.index("US") < reply.index("imperial")
    assert answer("How far can I go on 10 gallons at 7 L/100 km?") is None  # which one matters


@pytest.mark.parametrize("question", NOT_UNDERSTOOD)
def test_what_it_does_not_understand_is_left_to_the_model(question: str) -> None:
    assert answer(question) is None


def test_rounding_is_said_and_exact_figures_are_not_hedged() -> None:
    assert answer("What's 20 degrees in fahrenheit?") == "20 °C is 68 °F."
    assert answer("How far is 30 km in miles?") == "30 km is about 18.6 miles."


def episode(gen: Any, question: str, mode: str = "offline", **overrides: Any) -> Any:
    settings = load_settings(None, {"offline": mode == "offline", **overrides})
    events = list(run_episode(gen, question, {}, settings, mode=mode))  # type: ignore[arg-type]
    return events, drain(events)


def test_an_offline_episode_answers_a_conversion_without_the_model(tiny: Any) -> None:
    gen = ScriptedGenerator(tiny("qwen2"), [])  # any model turn would raise: none is queued
    events, traj = episode(gen, "How far is 30 km in miles?")
    assert traj.outcome == "answer" and traj.final_answer == "30 km is about 18.6 miles."
    assert gen.prompts == [] and traj.steps == [] and traj.meta["answered_by"] == "incar"
    assert [type(e).__name__ for e in events] == ["Final", "Done"]
    assert [m.role for m in traj.messages] == ["system", "user", "assistant"]


def test_the_model_answers_what_the_pre_processor_does_not_understand(tiny: Any) -> None:
    gen = ScriptedGenerator(tiny("qwen2"), ["Dublin."])
    _, traj = episode(gen, "What's the capital of Ireland?")
    assert len(gen.prompts) == 1 and traj.final_answer == "Dublin."
    assert "answered_by" not in traj.meta


def test_the_setting_turns_it_off_and_online_mode_never_uses_it(tiny: Any) -> None:
    off = ScriptedGenerator(tiny("qwen2"), ["About 52.8 miles."])
    _, traj = episode(off, "How far is 30 km in miles?", **{"incar.units": False})
    assert len(off.prompts) == 1 and traj.final_answer == "About 52.8 miles."
    online = ScriptedGenerator(tiny("qwen2"), ["About 52.8 miles."])
    _, traj = episode(online, "How far is 30 km in miles?", mode="online")
    assert len(online.prompts) == 1 and traj.final_answer == "About 52.8 miles."


@pytest.mark.parametrize("name", ["incar-heldout-1.jsonl", "incar-heldout-2.jsonl"])
def test_on_sets_written_apart_every_take_is_right_and_no_other_prompt_is_taken(name: str) -> None:
    """evals/data/incar-heldout-*.jsonl: 90 prompts each, written by helpers that saw neither
    this code nor the suite (the pre-processor was then tuned on them: see evals/README.md).
    Ids with "-nt-" are non-targets: how-to questions, statements, chat, and facts that use
    "turn", "call", "sign" or "play" otherwise."""
    path = Path(__file__).parents[2] / "evals" / "data" / name
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    settings = load_settings(None, {"offline": True})
    said = {r["id"]: offline_answer(r["prompt"], settings) for r in rows}
    taken = [r for r in rows if said[r["id"]]]
    wrong = [r["id"] for r in taken if not judge(r["expected"], said[r["id"]], r["prompt"])[0]]
    targets = [r["id"] for r in rows if "-nt-" not in r["id"]]
    assert wrong == [] and not any(said[i] for i in said if "-nt-" in i)
    assert sum(bool(said[i]) for i in targets) >= 0.9 * len(targets)
