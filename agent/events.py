"""What an episode tells its consumer as it runs: one small frozen type per kind of event.

`agent.loop.run_episode` yields them; the CLI, the app, the evals and the rollouts show or
drain them (`drain` keeps just the finished trajectory). The last event is always `Done`.

Not here: producing events (`agent.loop`), showing them (`tui`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from agent.trajectory import ToolRun, Trajectory
from model.messages import ToolCall


@dataclass(frozen=True)
class Token:
    """Text of the step being written (sampled, or inserted by the loop to start the turn)."""

    step: int
    text: str


@dataclass(frozen=True)
class ToolStart:
    step: int
    call: ToolCall


@dataclass(frozen=True)
class ToolEnd:
    step: int
    call: ToolCall
    run: ToolRun


@dataclass(frozen=True)
class StepDone:
    """A step ended (its tools, if any, have run); `text` is all it wrote."""

    step: int
    text: str


@dataclass(frozen=True)
class Notice:
    """What the loop did about a step (a nudge, a resample, another search)."""

    step: int
    text: str


@dataclass(frozen=True)
class Final:
    """The episode's answer, before the trajectory is closed and logged."""

    text: str


@dataclass(frozen=True)
class Done:
    """The last event: the finished trajectory."""

    trajectory: Trajectory

    @property
    def text(self) -> str:
        return self.trajectory.final_answer or ""


Event = Token | ToolStart | ToolEnd | StepDone | Notice | Final | Done


def drain(events: Iterable[Event]) -> Trajectory:
    """Run an episode's events to the end and keep its trajectory."""
    done = None
    for event in events:
        if isinstance(event, Done):
            done = event
    if done is None:
        raise RuntimeError("the episode ended without its Done event")
    return done.trajectory
