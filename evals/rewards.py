"""Rewards for training: plain functions of a finished `Trajectory` and what it should have done.

Each term is in [0, 1] and reuses the eval scorers, so the trainer optimizes what the evals
measure:
- `task_success`: a text answer scored by `evals.scoring` (the mean of "contains the answer" and
  token F1: 1.0 for the bare answer, about 0.75 for it in a short sentence, less when padded or
  buried in a list of guesses, which "contains" alone would reward); a BFCL case by
  `evals.ast_check` on the calls of the first step (BFCL cases are single-turn; the loop
  already parsed them into `step.calls`/`step.parse_errors`); an in-car case by the suite's
  own checker (`evals.incar_check.judge`); a python-tool task as its suite scores it
  (`evals.pytasks.verdict`: the model's own closing answer states the value); a doom-loop
  prompt as its guard-off arm does (`evals.doomloop.answered`). An unreadable
  call fails here in every category, stricter than `evals.bfcl.score_output`, which (as BFCL)
  counts it as no call, right in the irrelevance categories: a broken call should not be
  learnt as a way to decline.
- `well_formed_calls`: the share of steps whose tool calls could all be read.
- `valid_arguments`: the share of tool runs that were not refused for their arguments (bad or
  non-JSON arguments, a tool that does not exist: `ToolRun.error_kind`, never the wording);
  unreadable calls are the term above's.
- `within_budget`: 1 when the episode ended with an answer, 0 at a step, token or time limit, a
  doom loop, a refused repeated call, or any other end.
- `repetition_penalty`: n-gram repetition of the sampled tokens (`model.guard.repetition_ratio`,
  per step, weighted by length), subtracted.

`total` = task · clean · w_task + well_formed · w_format + valid_arguments · w_args
+ within_budget · w_budget − repetition · w_repetition, where clean is 1 when the episode
ended with an answer within budget and repeated no call (same name and arguments), else 0: a
step-limit "answer" is the model's last words, not its answer, and a right answer reached by
calling the same thing twice must never be the chosen side of a pair (`no_repeats`, also
recorded).
The shaping terms are small next to the task (0.3 at most) so that no well-behaved wrong episode
outranks a right one; GRPO compares rewards within a group, so only their order and spacing
matter, not their scale. Only the episode's own steps count; sub-episodes are not scored here.

`verifiable` scores an ordinary chat or ask episode, which has no reference answer: only what
the episode's typed record shows. Its behaviour terms are `well_formed`, `valid_arguments`,
`within_budget` (as above), `no_repeats` (the share of calls that are not the same name and
arguments as an earlier call of the episode), `no_loops` (the share of steps the doom-loop
guard did not stop, `Step.finish_reason`) and `own_answer` (1 for a non-empty final answer the
model wrote; 0 for an empty one or one the loop built for it, `meta["answered_by"]`).
`total` = their mean − repetition · w_repetition: exactly 1.0 for a flawless episode, so the
SFT bar of 1.0 keeps only those. `acceptable` says whether an episode may ever be preferred:
it ended with its own answer, never looped and repeated no call.

Not here: running episodes, learned reward models, judging answers with a model.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from pydantic import BaseModel

from agent.trajectory import Trajectory
from evals import doomloop, pytasks
from evals.ast_check import check
from evals.common import EvalCase
from evals.incar_check import judge
from evals.pytasks_check import Task
from evals.scoring import contains_answer, f1
from model.guard import repetition_ratio

REPETITION_NGRAM = 8  # longer than any phrase prose repeats, shorter than any loop's span
# The error kinds (`ToolRun.error_kind`) that refuse a call for its arguments or its name.
ARGUMENT_KINDS = frozenset({"arguments", "unknown_tool"})
# `meta["answered_by"]` values of answers the model did not write: the loop's fallback built
# from tool results (an empty reply, a repeated call), the in-car pre-processor's exact answer.
NOT_OWN = frozenset({"fallback", "incar"})
ACCEPTABLE = ("no_repeats", "no_loops", "own_answer", "within_budget")  # all 1.0 to be preferred

Expected = str | Sequence[str] | EvalCase


class RewardWeights(BaseModel):
    task: float = 1.0
    well_formed: float = 0.1
    valid_arguments: float = 0.1
    within_budget: float = 0.1
    repetition: float = 0.5


def answer_score(prediction: str, answers: str | Sequence[str]) -> float:
    """The mean of "contains the answer" and token F1, in [0, 1]."""
    return 0.5 * float(contains_answer(prediction, answers)) + 0.5 * f1(prediction, answers)


def task_success(traj: Trajectory, expected: Expected) -> float:
    """How right the episode was: its final answer against the answers (a string, several, or a
    text EvalCase with its aliases), or a BFCL EvalCase's expected calls."""
    if isinstance(expected, EvalCase) and expected.suite == "bfcl":
        return calls_success(traj, expected)
    if isinstance(expected, EvalCase) and expected.suite == "incar":
        return incar_success(traj, expected)
    if isinstance(expected, EvalCase) and expected.suite == pytasks.SUITE:
        return float(pytasks.verdict(traj, Task.model_validate(expected.data))[0])
    if isinstance(expected, EvalCase) and expected.suite == doomloop.SUITE:
        return float(doomloop.answered(expected, traj))
    if isinstance(expected, EvalCase):
        answers = [str(expected.expected), *expected.data.get("aliases", [])]
        return answer_score(traj.final_answer or "", answers)
    return answer_score(traj.final_answer or "", expected)


def incar_success(traj: Trajectory, case: EvalCase) -> float:
    """1.0 when the in-car checker accepts the answer, as the suite scores it: the loop's
    fallback text is not the model's answer."""
    if traj.meta.get("answered_by") == "fallback":
        return 0.0
    return float(judge(case.expected, (traj.final_answer or "").strip(), case.prompt)[0])


def calls_success(traj: Trajectory, case: EvalCase) -> float:
    """1.0 when the first step's calls pass BFCL's AST check for `case`, else 0.0."""
    if not traj.steps or traj.steps[0].parse_errors:
        return 0.0
    step = traj.steps[0]
    return float(
        check(case.category, step.calls, case.data["functions"], case.expected or []).valid
    )


def well_formed_calls(traj: Trajectory) -> float:
    """The share of steps without a tool-call parse error (1.0 for an episode without steps)."""
    if not traj.steps:
        return 1.0
    return sum(not s.parse_errors for s in traj.steps) / len(traj.steps)


def valid_arguments(traj: Trajectory) -> float:
    """The share of tool runs not refused for their arguments or tool name (1.0 with no runs)."""
    runs = [r for s in traj.steps for r in s.tool_runs if r.error_kind != "unreadable"]
    if not runs:
        return 1.0
    return sum(r.error_kind not in ARGUMENT_KINDS for r in runs) / len(runs)


def within_budget(traj: Trajectory) -> float:
    return 1.0 if traj.outcome == "answer" else 0.0


def repetition_penalty(traj: Trajectory, n: int = REPETITION_NGRAM) -> float:
    """Repeated n-grams in the sampled tokens, per step, weighted by the step's length: 0 for
    fresh text, near 1 for a loop."""
    total = sum(len(s.completion_ids) for s in traj.steps)
    if not total:
        return 0.0
    return (
        sum(repetition_ratio(s.completion_ids, n) * len(s.completion_ids) for s in traj.steps)
        / total
    )


def rewards(
    traj: Trajectory, expected: Expected, weights: RewardWeights | None = None
) -> dict[str, float]:
    """Every term and their weighted `total`: what goes into `Trajectory.rewards`."""
    w = weights or RewardWeights()
    terms = {
        "task": task_success(traj, expected),
        "well_formed": well_formed_calls(traj),
        "valid_arguments": valid_arguments(traj),
        "within_budget": within_budget(traj),
        "repetition": repetition_penalty(traj),
        "no_repeats": no_repeats(traj),
    }
    clean = terms["within_budget"] * float(terms["no_repeats"] == 1.0)
    terms["total"] = (
        w.task * terms["task"] * clean
        + w.well_formed * terms["well_formed"]
        + w.valid_arguments * terms["valid_arguments"]
        + w.within_budget * terms["within_budget"]
        - w.repetition * terms["repetition"]
    )
    return terms


def total(traj: Trajectory, expected: Expected, weights: RewardWeights | None = None) -> float:
    return rewards(traj, expected, weights)["total"]


def no_repeats(traj: Trajectory) -> float:
    """The share of the episode's calls that repeat no earlier call (same name, same
    arguments); 1.0 with no calls."""
    keys = [
        c.name + json.dumps(c.arguments, sort_keys=True, default=str)
        for s in traj.steps
        for c in s.calls
    ]
    if not keys:
        return 1.0
    return len(set(keys)) / len(keys)


def no_loops(traj: Trajectory) -> float:
    """The share of steps that did not end in a doom loop; 1.0 with no steps."""
    if not traj.steps:
        return 1.0
    return sum(s.finish_reason != "doom_loop" for s in traj.steps) / len(traj.steps)


def own_answer(traj: Trajectory) -> float:
    """1.0 when the episode's final answer is non-empty and the model's own words."""
    said = bool((traj.final_answer or "").strip())
    return float(said and traj.meta.get("answered_by") not in NOT_OWN)


def verifiable(traj: Trajectory, weights: RewardWeights | None = None) -> dict[str, float]:
    """Reference-free rewards of an ordinary episode: every behaviour term, the repetition
    penalty, and `total` (1.0 when flawless)."""
    w = weights or RewardWeights()
    terms = {
        "well_formed": well_formed_calls(traj),
        "valid_arguments": valid_arguments(traj),
        "no_repeats": no_repeats(traj),
        "no_loops": no_loops(traj),
        "own_answer": own_answer(traj),
        "within_budget": within_budget(traj),
    }
    behaviour = sum(terms.values()) / len(terms)  # n 1.0s summed, over n: exactly 1.0
    terms["repetition"] = repetition_penalty(traj)
    terms["total"] = behaviour - w.repetition * terms["repetition"]
    return terms


def acceptable(terms: dict[str, float]) -> bool:
    """Whether an episode with these `verifiable` terms may be preferred over another: it ended
    with a non-empty answer of its own, never looped and repeated no call."""
    return all(terms.get(k, 0.0) == 1.0 for k in ACCEPTABLE)
