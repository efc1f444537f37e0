"""Rollouts for training: episodes of the real agent loop on eval cases, scored and logged.

For each case of a suite's split (the trainer asks for `train`; nothing here stops a caller
from asking for `test`, the CLI does), one greedy episode and K sampled ones, each through
`agent.loop.run_episode` with real tools, scored by `evals.rewards` (the eval scorers plus the
shaping terms) and written to the trajectory log like any other episode, its rewards and the
case it came from in the trajectory (`rewards`, `meta`). A group is the episodes of one case:
DPO takes its best and worst, GRPO its relative rewards.

Five suites make rollouts:
- `bfcl`: the case's functions become tools that check the arguments against the case's schema
  (required names present, no unknown ones) and end the episode: BFCL has no executor, so
  the calls are the answer, scored by BFCL's AST rules. The prompt is the eval's own prompt.
- `searchqa`: a real episode with web search over the local corpus and page fetch over HTTP.
- `incar`: an offline episode as the in-car mode runs it (no tools, the offline system prompt,
  the suite's short answer budget), scored by the suite's own checker. An answer the loop's
  unit converter gave without the model (`answered_by`) has no model step and trains nothing.
- `pytools`: the suite's own episode (the real sandbox, the python tool only, its short turns),
  scored by its judge on the model's own closing answer; a looping or repeated-call episode
  scores no task reward, so it is the rejected side of any pair it is in.
- `doomloop`: the guard-off arm (the trainer asks for its `off` cases only): a prompt's one turn
  with the suite's system prompt, no tools, its token budget and no guard; a tool prompt's
  agent episode with the python tool. Right when it ended by itself, without looping, with the
  answer the suite's check accepts (`evals.doomloop.answered`).

Not here: the losses (`model.train.sft`, `model.train.dpo`, `model.train.grpo`), choosing pairs
(`evals.selection`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from agent.loop import run
from agent.settings import Settings
from agent.toolbox import toolbox
from agent.trajectory import LogSink, Step, Trajectory
from evals import bfcl, doomloop, incar, pytasks, searchqa
from evals.choices import ROLLOUT_SUITES
from evals.common import EvalCase
from evals.rewards import rewards
from model.generate import Generator
from tools.base import Tool, ToolResult, read_arguments

RECORDED = "(call recorded: this task is scored on the calls themselves)"


@dataclass
class Group:
    case: EvalCase
    rollouts: list[Trajectory]

    @property
    def rewards(self) -> list[float]:
        return [t.rewards.get("total", 0.0) for t in self.rollouts]


class SchemaTool:
    """A BFCL function as a tool: the agent loop renders its schema and runs it like any tool.
    Running checks the argument names (required present, none unknown) and records the call;
    the episode then ends with the calls as its answer. Values are not checked here: the AST
    scorer does that, so a wrong value costs the task reward, not the well-formedness one."""

    def __init__(self, function: dict[str, Any]) -> None:
        self.function = function
        self.name = str(function["name"])
        params = function.get("parameters", {})
        self.properties = set(params.get("properties", {}))
        self.required = set(params.get("required", []))

    def schema(self) -> dict[str, Any]:
        return bfcl.to_tool(self.function)

    def run(self, arguments: dict[str, Any] | str | None) -> ToolResult:
        arguments = read_arguments(self.name, arguments)
        if isinstance(arguments, ToolResult):
            return arguments
        missing = sorted(self.required - set(arguments))
        unknown = sorted(set(arguments) - self.properties)
        if missing or unknown:
            what = [f"missing required {m!r}" for m in missing]
            what += [f"no parameter {u!r}" for u in unknown]
            error = f"bad arguments for {self.name}: {'; '.join(what)}"
            return ToolResult(error=error, error_kind="arguments")
        call = json.dumps({"name": self.name, "arguments": arguments}, default=str)
        return ToolResult(text=RECORDED, metadata={"final": call})


class _Scored:
    """A log sink that scores the episode before its end is written, so the logged trajectory
    carries its rewards."""

    def __init__(self, log: LogSink | None, case: EvalCase) -> None:
        self.log, self.case = log, case

    def start(self, traj: Trajectory) -> None:
        if self.log:
            self.log.start(traj)

    def step(self, episode_id: str, step: Step) -> None:
        if self.log:
            self.log.step(episode_id, step)

    def end(self, traj: Trajectory) -> None:
        traj.rewards = rewards(traj, self.case) if traj.outcome != "error" else {"total": 0.0}
        if self.log:
            self.log.end(traj)


def episode(
    generator: Generator,
    case: EvalCase,
    settings: Settings,
    temperature: float,
    seed: int | None = None,
    log: LogSink | None = None,
    meta: dict[str, Any] | None = None,
) -> Trajectory:
    """One scored, logged episode of `case` sampled at `temperature` (0: greedy)."""
    sampling = settings.sampling.model_copy(update={"temperature": temperature, "seed": seed})
    settings = settings.model_copy(update={"sampling": sampling})
    sink = _Scored(log, case)
    meta = {"suite": case.suite, "case": case.id, "category": case.category, **(meta or {})}
    if case.suite == "bfcl":
        return _bfcl(generator, case, settings, sink, meta)
    if case.suite == "searchqa":
        return _searchqa(generator, case, settings, sink, meta)
    if case.suite == "incar":
        return _incar(generator, case, settings, sink, meta)
    if case.suite == pytasks.SUITE:
        return _pytools(generator, case, settings, sink, meta)
    if case.suite == doomloop.SUITE:
        return _doomloop(generator, case, settings, sink, meta)
    raise ValueError(
        f"no rollouts for suite {case.suite!r}; choose from {', '.join(ROLLOUT_SUITES)}"
    )


def _bfcl(
    generator: Generator, case: EvalCase, settings: Settings, sink: _Scored, meta: dict[str, Any]
) -> Trajectory:
    messages = bfcl.build_messages(case)
    if messages[-1].role != "user":
        raise ValueError(f"BFCL case {case.id} does not end with a user turn")
    # One turn, as the eval scores it: all calls at once, same prompt, same token budget.
    agent = settings.agent.model_copy(update={"max_steps": 1, "one_call_per_turn": False})
    sampling = settings.sampling.model_copy(
        update={"max_new_tokens": min(settings.sampling.max_new_tokens, bfcl.MAX_NEW_TOKENS)}
    )
    settings = settings.model_copy(update={"agent": agent, "sampling": sampling})
    tools = cast(dict[str, Tool], {f["name"]: SchemaTool(f) for f in case.data["functions"]})
    return run(
        generator,
        messages[-1].content,
        tools,
        settings,
        history=messages[:-1],
        log=sink,
        meta=meta,
    )


def sampled_like(suite: Settings, rollout: Settings) -> Settings:
    """A suite's own episode settings (the evals decode greedily) with the rollout's
    temperature and seed."""
    sampling = suite.sampling.model_copy(update={
        "temperature": rollout.sampling.temperature, "seed": rollout.sampling.seed
    })  # fmt: skip
    return suite.model_copy(update={"sampling": sampling})


def _searchqa(
    generator: Generator, case: EvalCase, settings: Settings, sink: _Scored, meta: dict[str, Any]
) -> Trajectory:
    folder, variant = Path(case.data["folder"]), case.data["variant"]
    settings = searchqa.case_settings(settings, folder, variant)
    mode = "offline" if variant == "notools" else "online"
    with toolbox(settings, question=case.prompt) as tools:
        return run(generator, case.prompt, tools, settings, log=sink, mode=mode, meta=meta)


def _incar(
    generator: Generator, case: EvalCase, settings: Settings, sink: _Scored, meta: dict[str, Any]
) -> Trajectory:
    offline = sampled_like(incar.offline_settings(settings), settings)
    return run(generator, case.prompt, {}, offline, log=sink, mode="offline", meta=meta)


def _pytools(
    generator: Generator, case: EvalCase, settings: Settings, sink: _Scored, meta: dict[str, Any]
) -> Trajectory:
    # The eval's episode: the python tool only, short turns.
    episode = sampled_like(pytasks.episode_settings(settings), settings)
    with toolbox(episode, question=case.prompt) as tools:
        return run(generator, case.prompt, tools, episode, log=sink, meta=meta)


def _doomloop(
    generator: Generator, case: EvalCase, settings: Settings, sink: _Scored, meta: dict[str, Any]
) -> Trajectory:
    # The guard-off arm, what training must make rarer: its budget, no guard. A prompt alone is
    # one turn with the suite's system prompt and no tools (the eval's prompt); a tool prompt is
    # an agent episode with the python tool.
    off = sampled_like(doomloop.agent_settings(settings, guard_on=False), settings)
    if case.data["agent"]:
        with toolbox(off, question=case.prompt) as tools:
            return run(generator, case.prompt, tools, off, log=sink, meta=meta)
    one = off.model_copy(update={"agent": off.agent.model_copy(update={"max_steps": 1})})
    return run(generator, case.prompt, {}, one, system=doomloop.SYSTEM, log=sink, meta=meta)


def collect(
    generator: Generator,
    cases: Sequence[EvalCase],
    settings: Settings,
    k: int,
    temperature: float,
    log: LogSink | None = None,
    seed: int = 0,
    progress: Callable[[Group], None] | None = None,
) -> list[Group]:
    """Per case, one greedy episode and `k` sampled at `temperature`, seeded so a rerun draws
    the same samples."""
    groups = []
    for n, case in enumerate(cases):
        rollouts = []
        for i in range(k + 1):
            t = 0.0 if i == 0 else temperature
            meta = {"rollout": i, "temperature": t}
            s = None if i == 0 else seed * 1_000_003 + n * 101 + i
            rollouts.append(episode(generator, case, settings, t, s, log, meta))
        groups.append(Group(case, rollouts))
        if progress:
            progress(groups[-1])
    return groups
