"""The doom-loop suite: how often the model repeats itself forever on hard little problems.

A fixed, generated set of prompts (`FAMILIES` x `PER_FAMILY`, the same on every machine):
two-product arithmetic, chained operations, orderings from chained comparisons, Collatz step
counts and weekday arithmetic, each with its right answer. Every prompt is run two ways, as
two cases next to each other in the same split (`<id>:off`, `<id>:on`; categories `arith:off`):
- off: one greedy generation of up to `MAX_NEW_TOKENS` with the guard disabled. It looped when
  the guard's own test (`model.guard.is_doom_loop`, with `settings.guard`) fires on its tokens,
  or when it ran out of tokens with `repetition_ratio` (4-grams) at or above `RATIO_LOOP`.
- on: an offline agent episode (`agent.loop.run_episode`, no tools) with the guard enabled:
  greedy first, and on a caught loop the loop's nudge and one resample at
  `agent.resample_temperature` (seed 0, so repeatable). It looped when the guard fired on any
  turn; `recovered` says the resample then answered.
Score 1 when it did not loop, so the mean score is 1 - loop ratio; `details.correct_answer` is a
bonus check of the answer (the last number, or the last of the puzzle's names, said).

Greedy only, one sample per prompt: the cheapest setting, and the one where small models loop
most. A whole run (`run_cases`) decodes the off cases several at once (`model.batch`).
Not here: the guard itself (`model.guard`), what the app does after a loop (`agent.loop`).
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

from agent.loop import run_episode
from agent.settings import Settings
from evals.common import CaseResult, EvalCase, Split, in_split
from model.batch import complete_many
from model.chat import render
from model.generate import Completion, Generator, SamplingSettings
from model.guard import GuardSettings, is_doom_loop, repetition_ratio
from model.messages import Message

SUITE = "doomloop"
METHODS = ("off", "on")
PER_FAMILY = 7
MAX_NEW_TOKENS = 512
RATIO_LOOP = 0.5  # share of repeated 4-grams in a completion cut off by the token limit
SYSTEM = "You are a helpful assistant. Work through problems step by step, then give the answer."
NAMES = ["Alice", "Bruno", "Chen", "Dana", "Emeka", "Farah", "Goran", "Hana"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
NUMBER = re.compile(r"(?<![\w.])-?\d+(?:,\d{3})*(?:\.\d+)?")

Problem = tuple[str, str, list[str]]  # prompt, answer, the names an answer picks from


# --- problems ---------------------------------------------------------------------------------


def arith(rng: random.Random) -> Problem:
    a, b, c, d = rng.randint(11, 49), rng.randint(11, 49), rng.randint(2, 9), rng.randint(2, 19)
    return f"Compute {a}*{b} - {c}*{d} step by step.", str(a * b - c * d), []


def chain(rng: random.Random) -> Problem:
    a, b, c, e = rng.randint(3, 30), rng.randint(3, 30), rng.randint(3, 9), rng.randint(2, 7)
    r = rng.randint(2, min(12, ((a + b) * c - 1) // e))  # so that d below is positive
    d = (a + b) * c - r * e
    prompt = (
        f"Start with {a}. Add {b}, multiply the result by {c}, subtract {d}, then divide by {e}. "
        "What number do you get? Show each step."
    )
    return prompt, str(r), []


def order(rng: random.Random) -> Problem:
    people = rng.sample(NAMES, 4)  # tallest first
    facts = []
    for hi, lo in zip(people, people[1:], strict=False):
        facts.append(
            f"{hi} is taller than {lo}." if rng.random() < 0.5 else f"{lo} is shorter than {hi}."
        )
    rng.shuffle(facts)
    ask_shortest = rng.random() < 0.5
    question = "Who is the shortest?" if ask_shortest else "Who is the tallest?"
    answer = people[-1] if ask_shortest else people[0]
    return f"{' '.join(facts)} {question} Explain your reasoning.", answer, people


def collatz_steps(n: int) -> int:
    steps = 0
    while n != 1:
        n, steps = (n // 2 if n % 2 == 0 else 3 * n + 1), steps + 1
    return steps


def collatz(rng: random.Random) -> Problem:
    n = rng.choice([k for k in range(6, 40) if collatz_steps(k) <= 20])
    prompt = (
        f"Start with {n}. If the number is even, halve it; if it is odd, multiply it by 3 and "
        "add 1. Repeat until you reach 1. How many steps does it take? List every step."
    )
    return prompt, str(collatz_steps(n)), []


def weekday(rng: random.Random) -> Problem:
    start, n = rng.randrange(7), rng.randint(20, 400)
    prompt = (
        f"Today is {DAYS[start]}. What day of the week will it be in {n} days? Think it through."
    )
    return prompt, DAYS[(start + n) % 7], DAYS


FAMILIES: dict[str, Callable[[random.Random], Problem]] = {
    "arith": arith,
    "chain": chain,
    "order": order,
    "collatz": collatz,
    "weekday": weekday,
}


def problem(family: str, index: int) -> Problem:
    return FAMILIES[family](random.Random(f"doomloop:{family}:{index}"))


def load_cases(split: Split, limit: int | None = None, data: Any = None) -> list[EvalCase]:
    """The fixed prompts of `split`, families interleaved, off and on next to each other.
    `data` is accepted for the common interface and ignored: the set is generated."""
    cases: list[EvalCase] = []
    for index in range(PER_FAMILY):
        for family in FAMILIES:
            base = f"{family}-{index}"
            if not in_split(base, split):
                continue
            prompt, answer, choices = problem(family, index)
            cases += [
                EvalCase(
                    suite=SUITE,
                    id=f"{base}:{method}",
                    category=f"{family}:{method}",
                    prompt=prompt,
                    expected=answer,
                    data={"family": family, "method": method, "choices": choices},
                )
                for method in METHODS
            ]
    return cases[:limit] if limit is not None else cases


# --- scorers ----------------------------------------------------------------------------------


def looped(tokens: list[int], finish_reason: str, guard: GuardSettings | None = None) -> bool:
    """A doom loop: the guard's test fires, or the text ran out of tokens mostly repeating."""
    armed = (guard or GuardSettings()).model_copy(update={"enabled": True})
    if finish_reason == "doom_loop" or is_doom_loop(tokens, armed):
        return True
    return finish_reason == "length" and repetition_ratio(tokens) >= RATIO_LOOP


def answer_correct(output: str, expected: str, choices: list[str] | None = None) -> bool:
    """The last number said, or the last of `choices` named, is the expected answer."""
    if choices:
        spots = [(m.start(), c) for c in choices for m in re.finditer(rf"\b{c}\b", output, re.I)]
        return bool(spots) and max(spots)[1].lower() == expected.lower()
    said = [m.group().replace(",", "") for m in NUMBER.finditer(output)]
    return bool(said) and float(said[-1]) == float(expected)


# --- running ----------------------------------------------------------------------------------


def run_off(generator: Generator, case: EvalCase, settings: Settings) -> dict[str, Any]:
    done = generator.complete(off_prompt(generator, case), *off_sampling(settings))
    return off_details(done, settings)


def off_prompt(generator: Generator, case: EvalCase) -> list[int]:
    lm = generator.lm
    messages = [Message(role="system", content=SYSTEM), Message(role="user", content=case.prompt)]
    return generator.encode(render(lm.tokenizer, messages, None, lm.tool_format))


def off_sampling(settings: Settings) -> tuple[SamplingSettings, GuardSettings]:
    """Greedy, `MAX_NEW_TOKENS`, the guard disabled."""
    sampling = settings.sampling.model_copy(
        update={"temperature": 0.0, "max_new_tokens": MAX_NEW_TOKENS}
    )
    return sampling, settings.guard.model_copy(update={"enabled": False})


def off_details(done: Completion, settings: Settings) -> dict[str, Any]:
    tokens = done.token_ids
    return {
        "output": done.text,
        "looped": looped(tokens, done.finish_reason, settings.guard),
        "guard_would_fire": is_doom_loop(
            tokens, settings.guard.model_copy(update={"enabled": True})
        ),
        "repetition_ratio": round(repetition_ratio(tokens), 3),
        "finish_reason": done.finish_reason,
        "tokens": len(tokens),
    }


def on_settings(settings: Settings) -> Settings:
    agent = settings.agent.model_copy(update={"tools": [], "log": False})
    sampling = settings.sampling.model_copy(
        update={"temperature": 0.0, "max_new_tokens": MAX_NEW_TOKENS, "seed": 0}
    )
    guard = settings.guard.model_copy(update={"enabled": True})
    update = {"offline": True, "agent": agent, "sampling": sampling, "guard": guard}
    return settings.model_copy(update=update)


def run_on(generator: Generator, case: EvalCase, settings: Settings) -> dict[str, Any]:
    traj = None
    events = run_episode(
        generator, case.prompt, {}, on_settings(settings), system=SYSTEM, mode="offline"
    )
    for event in events:
        traj = event.trajectory or traj
    assert traj is not None, "an episode always ends with a done event"
    caught = any(s.finish_reason == "doom_loop" for s in traj.steps)
    return {
        "output": traj.final_answer or "",
        "looped": caught,
        "recovered": caught and traj.outcome == "answer",
        "outcome": traj.outcome,
        "finish_reason": traj.steps[0].finish_reason if traj.steps else "",
        "steps": len(traj.steps),
        "tokens": traj.sampled_tokens,
        "trajectory_id": traj.id,
    }


def run_case(generator: Generator, case: EvalCase, settings: Settings) -> CaseResult:
    start = time.perf_counter()
    details = (run_off if case.data["method"] == "off" else run_on)(generator, case, settings)
    return result_of(case, details, time.perf_counter() - start)


def run_cases(
    generator: Generator, cases: list[EvalCase], settings: Settings
) -> Iterator[CaseResult]:
    """The off cases first, up to `eval.batch` decoding at once (they are single greedy
    generations), then the on episodes one by one; each result as it finishes. A batched
    case's `seconds` is the wall time since the result before it, so they add up."""
    off = [c for c in cases if c.data["method"] == "off"]
    prompts = [off_prompt(generator, c) for c in off]
    last = time.perf_counter()
    batch = settings.eval.batch
    for index, done in complete_many(generator, prompts, *off_sampling(settings), slots=batch):
        now = time.perf_counter()
        yield result_of(off[index], off_details(done, settings), now - last)
        last = now
    yield from (run_case(generator, c, settings) for c in cases if c.data["method"] != "off")


def result_of(case: EvalCase, details: dict[str, Any], seconds: float) -> CaseResult:
    output = details.pop("output")
    trajectory_id = details.pop("trajectory_id", None)
    details["correct_answer"] = answer_correct(output, case.expected, case.data["choices"])
    return CaseResult(
        suite=SUITE,
        id=case.id,
        category=case.category,
        score=0.0 if details["looped"] else 1.0,
        correct=not details["looped"],
        output=output,
        expected=case.expected,
        details={"method": case.data["method"], "family": case.data["family"], **details},
        seconds=seconds,
        trajectory_id=trajectory_id,
    )
