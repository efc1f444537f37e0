"""The in-car latency suite: how fast short spoken-style requests get an answer, offline.

A fixed list of short prompts (car controls, media, navigation, conversions, small talk) run
as offline agent episodes (`agent.loop.run_episode` with `settings.offline`: no tools, the
offline system prompt), greedy, at most `MAX_NEW_TOKENS` tokens. Details carry the timings the
runner summarises (mean, median, p90): `ttft_s` (the first turn's time to first token),
`total_s` (the whole episode), `decode_s`, `tokens`, `tok_s`, plus `prompt_tokens` and
`reused_tokens` (the generator keeps its prefix cache between cases, as the app does between
turns, so the system prompt is usually cached; the first case of a run pays for it).
Score 1 when the episode answered (non-empty, no doom loop) within `BUDGET_S` seconds.

Not here: whether the answer is right (nothing here can check that a heater turned on), the
app's own startup time, or model loading.
"""

from __future__ import annotations

import time
from typing import Any

from agent.loop import run_episode
from agent.settings import Settings
from agent.trajectory import Trajectory
from evals.common import CaseResult, EvalCase, Split, in_split
from model.generate import Generator

SUITE = "latency"
BUDGET_S = 5.0  # total seconds for one answer: a driver waits about this long
MAX_NEW_TOKENS = 96  # a one- or two-sentence answer; more is a failure of concision anyway
PROMPTS: dict[str, tuple[str, str]] = {  # id: (category, prompt)
    "heating-on": ("controls", "Turn on the heating."),
    "ac-22": ("controls", "Set the air conditioning to 22 degrees."),
    "window-down": ("controls", "Open the driver's window halfway."),
    "seat-heat": ("controls", "My seat is cold, can you warm it up?"),
    "defrost": ("controls", "The windscreen is fogging up."),
    "jazz": ("media", "Play some jazz."),
    "volume": ("media", "Turn the volume down a bit."),
    "next-song": ("media", "Skip this song."),
    "podcast": ("media", "Resume my podcast."),
    "fuel": ("navigation", "Find the nearest petrol station."),
    "home": ("navigation", "Take me home."),
    "eta": ("navigation", "How long until we arrive?"),
    "coffee": ("navigation", "I need a coffee stop in the next half hour."),
    "km-miles": ("conversion", "How far is 30 km in miles?"),
    "mph": ("conversion", "What is 100 km/h in miles per hour?"),
    "litres": ("conversion", "How many litres are in 10 gallons?"),
    "tyre": ("question", "What should my tyre pressure be roughly?"),
    "warning": ("question", "An orange engine light just came on. What does it mean?"),
    "tired": ("question", "I'm getting tired. What should I do?"),
    "joke": ("chat", "Tell me a short joke."),
    "hello": ("chat", "Good morning!"),
}


def load_cases(split: Split, limit: int | None = None, data: Any = None) -> list[EvalCase]:
    """The fixed prompts of `split`, in list order. `data` is accepted for the common
    interface and ignored."""
    cases = [
        EvalCase(suite=SUITE, id=f"latency-{key}", category=category, prompt=prompt)
        for key, (category, prompt) in PROMPTS.items()
        if in_split(f"latency-{key}", split)
    ]
    return cases[:limit] if limit is not None else cases


def offline_settings(settings: Settings) -> Settings:
    """In-car mode: offline (no tools, the offline system prompt), greedy, short answers."""
    agent = settings.agent.model_copy(update={"log": False})
    sampling = settings.sampling.model_copy(
        update={
            "temperature": 0.0,
            "max_new_tokens": min(settings.sampling.max_new_tokens, MAX_NEW_TOKENS),
        }
    )
    return settings.model_copy(update={"offline": True, "agent": agent, "sampling": sampling})


def timings(traj: Trajectory, total_s: float) -> dict[str, Any]:
    """The numbers the runner summarises, from the episode's steps."""
    steps = traj.steps
    tokens = traj.sampled_tokens
    decode_s = sum(s.decode_s for s in steps)
    return {
        "ttft_s": steps[0].ttft_s if steps else total_s,
        "total_s": total_s,
        "decode_s": decode_s,
        "tokens": tokens,
        "tok_s": (tokens - len(steps)) / decode_s if decode_s > 0 and tokens > len(steps) else 0.0,
        "prompt_tokens": len(steps[0].prompt_ids) if steps else 0,
        "reused_tokens": steps[0].reused_tokens if steps else 0,
    }


def within_budget(answer: str, outcome: str | None, total_s: float, budget_s: float) -> bool:
    """Answered (non-empty, the episode ended on an answer, so no doom loop) in time."""
    return bool(answer.strip()) and outcome == "answer" and total_s <= budget_s


def run_case(generator: Generator, case: EvalCase, settings: Settings) -> CaseResult:
    start = time.perf_counter()
    traj = None
    events = run_episode(generator, case.prompt, {}, offline_settings(settings), mode="offline")
    for event in events:
        traj = event.trajectory or traj
    total_s = time.perf_counter() - start
    assert traj is not None, "an episode always ends with a done event"
    answer = (traj.final_answer or "").strip()
    ok = within_budget(answer, traj.outcome, total_s, BUDGET_S)
    details = {
        **timings(traj, total_s),
        "outcome": traj.outcome,
        "finish_reason": traj.steps[0].finish_reason if traj.steps else "",
        "answered": bool(answer) and traj.outcome == "answer",
        "budget_s": BUDGET_S,
    }
    return CaseResult(
        suite=SUITE,
        id=case.id,
        category=case.category,
        score=1.0 if ok else 0.0,
        correct=ok,
        output=answer,
        details=details,
        seconds=total_s,
        trajectory_id=traj.id,
    )
