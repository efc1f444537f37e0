"""The in-car latency suite: how fast short spoken-style requests get an answer, offline.

A fixed list of short prompts (car controls, media, navigation, conversions, small talk) run
as offline agent episodes (`agent.loop.run_episode` with `settings.offline`: no tools, the
offline system prompt), greedy, at most `MAX_NEW_TOKENS` tokens. Details carry the timings the
runner summarises (mean, median, p90): `ttft_s` (the first turn's time to first token),
`total_s` (the whole episode), `decode_s`, `tokens`, `tok_s`, plus `prompt_tokens` and
`reused_tokens` (the generator keeps its prefix cache between cases, as the app does between
turns, so the system prompt is usually cached; the first case of a run pays for it).
Score 1 when the episode answered (non-empty, no doom loop) within `BUDGET_S` seconds.

Not here: whether the answer is right: `evals.incar` runs the same kind of episode (this suite
uses its `offline_episode`) on over 200 checkable prompts and reports these timings beside the
verdicts, so it is the one to read; this one stays for the committed runs on the results page.
Nor the app's own startup time, or model loading.
"""

from __future__ import annotations

from typing import Any

from agent.settings import Settings
from evals.common import CaseResult, EvalCase, Split, guard_stops, in_split
from evals.incar import MAX_NEW_TOKENS, offline_episode, timings
from model.generate import Generator

SUITE = "latency"
BUDGET_S = 5.0  # total seconds for one answer: a driver waits about this long
__all__ = ["MAX_NEW_TOKENS", "load_cases", "run_case", "timings", "within_budget"]
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


def within_budget(answer: str, outcome: str | None, total_s: float, budget_s: float) -> bool:
    """Answered (non-empty, the episode ended on an answer, so no doom loop) in time."""
    return bool(answer.strip()) and outcome == "answer" and total_s <= budget_s


def run_case(generator: Generator, case: EvalCase, settings: Settings) -> CaseResult:
    traj, total_s = offline_episode(generator, case.prompt, settings)
    answer = (traj.final_answer or "").strip()
    # The loop's fallback text stands in for a model that said nothing: not an answer here.
    said = traj.meta.get("answered_by") != "fallback"
    ok = within_budget(answer, traj.outcome, total_s, BUDGET_S) and said
    details = {
        **timings(traj, total_s),
        "outcome": traj.outcome,
        "finish_reason": traj.steps[0].finish_reason if traj.steps else "",
        "guard_stops": guard_stops(traj.steps),
        "answered": bool(answer) and traj.outcome == "answer" and said,
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
