"""The record of an episode: steps and trajectories, shared by the log, TUI, evals and trainer.

Each step keeps the exact token ids of its prompt (inserted: system text, user text, tool
output, all masked in training) and of its completion (sampled by the model, trained on), so
the trainer never re-tokenizes and never guesses which tokens were the model's. RLM sub-calls
(`llm_query` inside the sandbox) are episodes of their own, nested under the step that ran them.

Not here: writing or reading the log (`agent.log`), scoring (`evals`).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

from model.messages import Message, ToolCall, ToolCallParseError
from tools.base import ErrorKind

SCHEMA_VERSION = 1

Outcome = Literal[
    "answer",  # a final answer was reached
    "step_limit",
    "token_limit",
    "time_limit",
    "doom_loop",  # the model looped and resampling did not help
    # the same call again: answered from its earlier result, or (that one failed) after a
    # nudge and a resample, answered without tools
    "repeated_call",
    "cancelled",
    "error",  # our own failure; `error` says what
    "interrupted",  # the log holds no end for this episode (the process died)
]


class ToolRun(BaseModel):
    """One tool call as run: what the model asked and what came back."""

    call: ToolCall
    text: str  # the tool's output, raw: `agent.frame` frames it for the model
    error: str | None = None
    error_kind: ErrorKind | None = None  # why it failed, with `error` (None in logs before it)
    truncated: bool = False
    duration_s: float = 0.0
    final: str | None = None  # FINAL(answer) called inside the sandbox


class Step(BaseModel):
    index: int
    prompt_ids: list[int]  # inserted: masked in training
    completion_ids: list[int]  # sampled: trained on
    completion_text: str  # `prefill` + the sampled text: what was parsed
    prefill: str = ""  # written by the loop to start the turn; its tokens end prompt_ids
    finish_reason: str
    temperature: float
    calls: list[ToolCall] = Field(default_factory=list)
    parse_errors: list[ToolCallParseError] = Field(default_factory=list)
    tool_runs: list[ToolRun] = Field(default_factory=list)
    note: str | None = None  # what the loop did about this step (a nudge, a resample)
    reused_tokens: int = 0
    ttft_s: float = 0.0
    decode_s: float = 0.0
    forward_s: float = 0.0  # of ttft_s + decode_s, the time inside the model's forward
    step_s: float = 0.0
    sub_episodes: list[Trajectory] = Field(default_factory=list)


class Trajectory(BaseModel):
    schema_version: int = SCHEMA_VERSION
    id: str = Field(default_factory=lambda: uuid.uuid4().hex[:16])
    parent_id: str | None = None
    created: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    task: str
    mode: Literal["online", "offline", "rlm", "sub"] = "online"
    model: str = ""
    adapter: str | None = None
    settings: dict[str, Any] = Field(default_factory=dict)
    messages: list[Message] = Field(default_factory=list)
    steps: list[Step] = Field(default_factory=list)
    outcome: Outcome | None = None
    final_answer: str | None = None
    error: str | None = None
    total_s: float = 0.0
    rewards: dict[str, float] = Field(default_factory=dict)
    meta: dict[str, Any] = Field(default_factory=dict)  # eval case id, split, rollout index...

    @property
    def sampled_tokens(self) -> int:
        return sum(len(s.completion_ids) for s in self.steps)


Step.model_rebuild()


class LogSink(Protocol):
    """What the loop needs of a log: agent.log.TrajectoryLog is one."""

    def start(self, traj: Trajectory) -> None: ...
    def step(self, episode_id: str, step: Step) -> None: ...
    def end(self, traj: Trajectory) -> None: ...
