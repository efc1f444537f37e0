"""The doom-loop suite: how often the model repeats itself forever, and whether it still ends
with a right answer, with the repetition guard off and on.

Prompts come from `evals.doomprompts` (16 families: long counting, enumeration, tables and
templates, hard little sums and puzzles, python-tool tasks; `PROMPTS` of each, 255 in all,
about half in each split), each with its answer. Every prompt is run two ways, as two cases
next to each other in the same split (`<id>:off`, `<id>:on`; categories `count:off`, `count:on`):
- off: one greedy generation of up to `MAX_NEW_TOKENS`, guard disabled.
- on: the same generation with the guard armed, as the agent runs it: the guard ends a caught
  row; a caught row then gets the agent's nudge (`agent.loop.LOOP_NUDGE`, after the question,
  as `agent.loop` does) and one resample at `agent.resample_temperature`, seed 0.
Both arms decode the same way: every first turn goes through `model.batch` at `eval.batch`
rows (1: one by one), greedy, in the model's dtype, on the same prompt; the arms differ only
where the guard cut a row. A resample runs alone through `Generator.complete` with its own
seed, exactly the agent's call, so it does not depend on which rows share a batch.

The `tool` family runs as agent episodes with the python tool, one by one (`agent.loop`,
greedy, guard disabled or armed; categories `tool:agent-off`, `tool:agent-on`): the right move
is one call, then the answer. An episode stops at its first repeated call.

Per case: `looped` (the model looped: an n-gram of `settings.guard` recurred `max_repeats`
times in a turn's tokens, counted alone as the guard did before it also asked for exact
repetition, so the suite's figures keep their meaning; or a turn ran out of tokens with
`repetition_ratio` at least `RATIO_LOOP`; in agent episodes also the same call twice); `ended`
(the case's last turn stopped by itself, an end token or stop string, and did not loop: off,
the one turn; on, the first turn or, after a caught loop, the resample; a turn cut by the token
limit never ended); `answered` (it ended, and the answer is right by the problem's check).
`correct` is `ended`; `score` is 1.0 when `answered`, so the runner's accuracy is the ended
rate and its mean score the answered rate; `loop_ratio` is the looped rate.

Not here: the prompts (`evals.doomprompts`), the guard (`model.guard`), the agent (`agent.loop`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from agent.events import ToolStart
from agent.loop import LOOP_NUDGE, run_episode
from agent.settings import Settings
from agent.toolbox import toolbox
from agent.trajectory import Step, Trajectory
from evals.common import CaseResult, EvalCase, Split, in_split
from evals.doomprompts import AGENT_FAMILIES, FAMILIES, answer_ok, problem
from model.batch import complete_many
from model.chat import render
from model.generate import Completion, Generator, SamplingSettings
from model.guard import GuardSettings, is_doom_loop, repetition_ratio
from model.messages import Message, ToolCall

SUITE = "doomloop"
METHODS = ("off", "on")
PER_FAMILY = 15
# Tool tasks have twice as many, so that their own category has some size.
PROMPTS = {family: PER_FAMILY * (2 if family in AGENT_FAMILIES else 1) for family in FAMILIES}
MAX_NEW_TOKENS = 384  # every list answer, written bare, takes under 60% of it
RATIO_LOOP = 0.5  # share of repeated 4-grams in a turn cut off by the token limit
SYSTEM = "You are a helpful assistant. Work through problems step by step, then give the answer."


def load_cases(
    split: Split, limit: int | None = None, data: Any = None, categories: tuple[str, ...] = ()
) -> list[EvalCase]:
    """The fixed prompts of `split`, families interleaved, off and on next to each other;
    `categories` (from `expand`) keeps only the families and arms it names. `data` is accepted
    for the common interface and ignored: the set is generated."""
    families = [f for f in FAMILIES if f in categories] or list(FAMILIES)
    methods = [m for m in METHODS if m in categories] or list(METHODS)
    cases: list[EvalCase] = []
    for index in range(max(PROMPTS.values())):
        for family in families:
            base = f"{family}-{index}"
            if index < PROMPTS[family] and in_split(base, split):
                cases += [case_of(family, index, method) for method in methods]
    return cases[:limit] if limit is not None else cases


def expand(names: str) -> tuple[str, ...]:
    """Comma-separated families and arms (off: guard off, on: guard on), checked."""
    picked = tuple(n.strip() for n in names.split(",") if n.strip())
    unknown = sorted(set(picked) - set(FAMILIES) - set(METHODS))
    if unknown:
        raise ValueError(
            f"unknown doom-loop families or arms {unknown}; known: {', '.join(FAMILIES)}, "
            f"or the arms {', '.join(METHODS)}"
        )
    return picked


def case_of(family: str, index: int, method: str) -> EvalCase:
    prompt, answer, check = problem(family, index)
    agent = family in AGENT_FAMILIES
    return EvalCase(
        suite=SUITE,
        id=f"{family}-{index}:{method}",
        category=f"{family}:{'agent-' if agent else ''}{method}",
        prompt=prompt,
        expected=answer,
        data={"family": family, "method": method, "agent": agent, "check": check},
    )


# --- the loop test ------------------------------------------------------------------------------


def looped(tokens: list[int], finish_reason: str, guard: GuardSettings | None = None) -> bool:
    """A doom loop: one of the guard's n-grams recurred `max_repeats` times (counting alone,
    whether or not the text between the repeats was the same: a counter that runs on counts
    here, where the guard lets it go to `varied_repeats`), or the text ran out of tokens mostly
    repeating."""
    g = guard or GuardSettings()
    counting = g.model_copy(update={"enabled": True, "varied_repeats": g.max_repeats})
    if finish_reason == "doom_loop" or is_doom_loop(tokens, counting):
        return True
    return finish_reason == "length" and repetition_ratio(tokens) >= RATIO_LOOP


def stopped(tokens: list[int], finish_reason: str, guard: GuardSettings | None = None) -> bool:
    """A turn that ended by itself (an end token or a stop string), not in a loop. A turn cut
    by the token limit did not, even where it repeats too little to count as a loop."""
    return finish_reason in ("eos", "stop") and not looped(tokens, finish_reason, guard)


# --- single completions, both arms ------------------------------------------------------------


def prompt_ids(generator: Generator, prompt: str, nudge: bool = False) -> list[int]:
    """The chat the agent would send with no tools; `nudge` adds its doom-loop nudge after the
    question (the agent drops the looping turn and asks again)."""
    lm = generator.lm
    return generator.encode(render(lm.tokenizer, messages(prompt, nudge), None, lm.tool_format))


def messages(prompt: str, nudge: bool = False) -> list[Message]:
    """The chat of one prompt: the suite's system prompt, the question, the nudge if asked."""
    out = [Message(role="system", content=SYSTEM), Message(role="user", content=prompt)]
    return out + ([Message(role="user", content=LOOP_NUDGE)] if nudge else [])


def sampling_of(settings: Settings, guard_on: bool) -> tuple[SamplingSettings, GuardSettings]:
    """Greedy, `MAX_NEW_TOKENS`, the guard armed or disabled: every first turn of both arms."""
    sampling = settings.sampling.model_copy(
        update={"temperature": 0.0, "max_new_tokens": MAX_NEW_TOKENS, "seed": 0}
    )
    return sampling, settings.guard.model_copy(update={"enabled": guard_on})


def first_turns(
    generator: Generator, cases: list[EvalCase], settings: Settings, guard_on: bool
) -> Iterator[tuple[EvalCase, Completion]]:
    """Each case's first turn, `eval.batch` rows at a time, in the order they finish."""
    prompts = [prompt_ids(generator, c.prompt) for c in cases]
    done = complete_many(
        generator, prompts, *sampling_of(settings, guard_on), slots=settings.eval.batch
    )
    for index, completion in done:
        yield cases[index], completion


def resample(generator: Generator, case: EvalCase, settings: Settings) -> Completion:
    """The agent's second try after a caught loop: nudged, hotter, seed 0, guard armed."""
    sampling, guard = sampling_of(settings, guard_on=True)
    sampling.temperature = settings.agent.resample_temperature
    return generator.complete(prompt_ids(generator, case.prompt, nudge=True), sampling, guard)


def off_details(case: EvalCase, done: Completion, settings: Settings) -> dict[str, Any]:
    ended = stopped(done.token_ids, done.finish_reason, settings.guard)
    return {
        "output": done.text,
        "looped": looped(done.token_ids, done.finish_reason, settings.guard),
        "ended": ended,
        "answered": ended and answer_ok(done.text, case.expected, case.data["check"]),
        "guard_would_fire": is_doom_loop(
            done.token_ids, settings.guard.model_copy(update={"enabled": True})
        ),
        "repetition_ratio": round(repetition_ratio(done.token_ids), 3),
        "finish_reason": done.finish_reason,
        "tokens": len(done.token_ids),
    }


def on_details(
    case: EvalCase, first: Completion, second: Completion | None, settings: Settings
) -> dict[str, Any]:
    last = second or first
    loop_first = looped(first.token_ids, first.finish_reason, settings.guard)
    ended = stopped(last.token_ids, last.finish_reason, settings.guard)
    return {
        "output": last.text,
        "looped": loop_first,
        "caught": first.finish_reason == "doom_loop",
        "recovered": second is not None and ended,
        "ended": ended,
        "answered": ended and answer_ok(last.text, case.expected, case.data["check"]),
        "repetition_ratio": round(repetition_ratio(first.token_ids), 3),
        "finish_reason": first.finish_reason,
        "final_finish_reason": last.finish_reason,
        "steps": 1 if second is None else 2,
        "tokens": len(first.token_ids) + (len(second.token_ids) if second else 0),
    }


# --- agent episodes with the python tool --------------------------------------------------------


def agent_settings(settings: Settings, guard_on: bool) -> Settings:
    agent = settings.agent.model_copy(update={"tools": ["python"], "log": False})
    sampling, guard = sampling_of(settings, guard_on)
    return settings.model_copy(
        update={"offline": False, "agent": agent, "sampling": sampling, "guard": guard}
    )


class _Held:
    """A log sink that only keeps the episode's trajectory, so it can be read after the
    episode is stopped early (a stopped episode sends no done event)."""

    traj: Trajectory | None = None

    def start(self, traj: Trajectory) -> None:
        self.traj = traj

    def step(self, episode_id: str, step: Step) -> None:
        pass

    def end(self, traj: Trajectory) -> None:
        pass


def run_agent(generator: Generator, case: EvalCase, settings: Settings) -> dict[str, Any]:
    """One episode, stopped at its first repeated call: the verdict is fixed then (looped, not
    ended), and the agent's further refusals and retries cost minutes an episode on 2 cores."""
    episode = agent_settings(settings, case.data["method"] == "on")
    held, seen = _Held(), set()
    with toolbox(episode, question=case.prompt) as tools:
        events = run_episode(generator, case.prompt, tools, episode, log=held)
        for event in events:
            if isinstance(event, ToolStart):
                key = call_key(event.call)
                if key in seen:
                    events.close()  # the agent marks the episode cancelled
                    break
                seen.add(key)
    assert held.traj is not None, "an episode always starts"
    return agent_details(case, held.traj, settings.guard)


def call_key(call: ToolCall) -> str:
    return call.name + json.dumps(call.arguments, sort_keys=True, default=str)


def agent_details(case: EvalCase, traj: Trajectory, guard: GuardSettings) -> dict[str, Any]:
    """Looped: some call made twice with the same arguments, or some turn looped. Ended: it
    answered, with no repeated call, and its last turn stopped by itself."""
    calls = [call_key(c) for s in traj.steps for c in s.calls]
    repeated = len(calls) != len(set(calls))
    turns = [looped(s.completion_ids, s.finish_reason, guard) for s in traj.steps]
    answer = traj.final_answer or ""
    last = traj.steps[-1] if traj.steps else None
    ended = traj.outcome == "answer" and not repeated
    ended = ended and last is not None and stopped(last.completion_ids, last.finish_reason, guard)
    return {
        "output": answer,
        "looped": repeated or any(turns),
        "repeated_call": repeated,
        "caught": any(s.finish_reason == "doom_loop" for s in traj.steps),
        "ended": ended,
        "answered": ended and answer_ok(answer, case.expected, case.data["check"]),
        "calls": len(calls),
        "outcome": traj.outcome,
        "steps": len(traj.steps),
        "tokens": traj.sampled_tokens,
        "trajectory_id": traj.id,
    }


def answered(case: EvalCase, traj: Trajectory, guard: GuardSettings | None = None) -> bool:
    """Whether an episode of `case` (a rollout) ended by itself, without a loop or a repeated
    call, with the right answer: the eval's `answered`."""
    if case.data["agent"]:
        return bool(agent_details(case, traj, guard or GuardSettings())["answered"])
    last = traj.steps[-1] if traj.steps else None
    return (
        last is not None
        and stopped(last.completion_ids, last.finish_reason, guard)
        and answer_ok(traj.final_answer or "", case.expected, case.data["check"])
    )


# --- running ------------------------------------------------------------------------------------


def run_case(generator: Generator, case: EvalCase, settings: Settings) -> CaseResult:
    """One case alone (the runner uses `run_cases`)."""
    return next(iter(run_cases(generator, [case], settings)))


def run_cases(
    generator: Generator, cases: list[EvalCase], settings: Settings
) -> Iterator[CaseResult]:
    """The off first turns, then the on ones (a caught row resampled as soon as it is caught),
    both batched alike; then the agent episodes one by one. Each result as it finishes; a
    case's `seconds` is the wall time since the result before it, so they add up."""
    clock = [time.perf_counter()]

    def result(case: EvalCase, details: dict[str, Any]) -> CaseResult:
        now = time.perf_counter()
        seconds, clock[0] = now - clock[0], now
        return result_of(case, details, seconds)

    single = [c for c in cases if not c.data["agent"]]
    off = [c for c in single if c.data["method"] == "off"]
    for case, done in first_turns(generator, off, settings, guard_on=False):
        yield result(case, off_details(case, done, settings))
    on = [c for c in single if c.data["method"] == "on"]
    for case, done in first_turns(generator, on, settings, guard_on=True):
        second = resample(generator, case, settings) if done.finish_reason == "doom_loop" else None
        yield result(case, on_details(case, done, second, settings))
    for case in (c for c in cases if c.data["agent"]):
        yield result(case, run_agent(generator, case, settings))


def result_of(case: EvalCase, details: dict[str, Any], seconds: float) -> CaseResult:
    output = details.pop("output")
    trajectory_id = details.pop("trajectory_id", None)
    return CaseResult(
        suite=SUITE,
        id=case.id,
        category=case.category,
        score=1.0 if details["answered"] else 0.0,
        correct=details["ended"],
        output=output,
        expected=case.expected,
        details={"method": case.data["method"], "family": case.data["family"], **details},
        seconds=seconds,
        trajectory_id=trajectory_id,
    )
