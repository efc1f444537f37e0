"""Totals over episodes: outcomes, steps, tool calls and errors, doom loops (`edgeagent log stats`).

What this is not: a reader of the log file (`agent.log` reads it; this takes trajectories from
anywhere) and not an eval score (`evals` judges answers; this only counts what happened).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable

from pydantic import BaseModel, Field

from agent.trajectory import Trajectory


class LogStats(BaseModel):
    """Totals over top-level episodes; their sub-episodes are only counted in `sub_episodes`."""

    episodes: int = 0
    by_outcome: dict[str, int] = Field(default_factory=dict)
    by_mode: dict[str, int] = Field(default_factory=dict)
    mean_steps: float = 0.0
    median_steps: float = 0.0
    sampled_tokens: int = 0
    tool_calls: dict[str, int] = Field(default_factory=dict)  # tool name -> runs
    tool_runs: int = 0
    tool_errors: int = 0
    tool_error_rate: float = 0.0
    parse_errors: int = 0
    doom_loops: int = 0  # episodes with outcome "doom_loop" or a step that finished so
    mean_total_s: float = 0.0
    sub_episodes: int = 0


def stats(trajectories: Iterable[Trajectory]) -> LogStats:
    trajs = list(trajectories)
    if not trajs:
        return LogStats()
    runs = [run for t in trajs for s in t.steps for run in s.tool_runs]
    errors = sum(run.error is not None for run in runs)
    step_counts = [len(t.steps) for t in trajs]
    return LogStats(
        episodes=len(trajs),
        by_outcome=dict(Counter(t.outcome or "none" for t in trajs)),
        by_mode=dict(Counter(t.mode for t in trajs)),
        mean_steps=statistics.fmean(step_counts),
        median_steps=float(statistics.median(step_counts)),
        sampled_tokens=sum(t.sampled_tokens for t in trajs),
        tool_calls=dict(Counter(run.call.name for run in runs)),
        tool_runs=len(runs),
        tool_errors=errors,
        tool_error_rate=errors / len(runs) if runs else 0.0,
        parse_errors=sum(len(s.parse_errors) for t in trajs for s in t.steps),
        doom_loops=sum(_looped(t) for t in trajs),
        mean_total_s=statistics.fmean(t.total_s for t in trajs),
        sub_episodes=sum(len(s.sub_episodes) for t in trajs for s in t.steps),
    )


def _looped(traj: Trajectory) -> bool:
    return traj.outcome == "doom_loop" or any(s.finish_reason == "doom_loop" for s in traj.steps)
