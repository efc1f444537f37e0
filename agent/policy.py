"""What a mode adds to the generic loop: the small interface between `agent.loop` and a policy.

The loop asks its policy, before each turn, whether the episode ends here with an answer of
the policy's own, what to tell the user, and how to start the turn (an inserted opening and
the choices the model's decoding is held to); before each tool call whether to refuse it; after
each whether anything follows from its result; at the end, what the answer is. Web research
for a small model is one policy (`agent.research`), the long-document answer another
(`agent.attach`); `Plain` is the loop with nothing added.

Not here: the loop itself, or any tool.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from agent.trajectory import Trajectory
from model.messages import Message, ToolCall
from tools.base import ToolResult

# (question, text, system prompt) -> the model's answer on just that text, and its sub-episode
Ask = Callable[[str, str, str], tuple[str, Trajectory]]
# (task, system prompt, earlier turns: worked examples) -> the model's reply, its sub-episode
Chat = Callable[[str, str, list[Message]], tuple[str, Trajectory]]


@dataclass(frozen=True)
class View:
    """What a policy sees of the episode before a turn. `messages` may be appended to."""

    index: int
    last: bool  # this turn withholds the tools: the answer is due
    traj: Trajectory
    messages: list[Message]
    ask: Ask  # the model, recursively, on a short text (a sub-episode)
    chat: Chat  # the model, recursively, on a task after worked examples (a sub-episode)


@dataclass(frozen=True)
class Turn:
    """The policy's word on the next turn: end with `answer`, or run it (started as given)."""

    answer: str | None = None
    notice: str | None = None
    prefill: str = ""
    choices: list[str] = field(default_factory=list)


class Policy(Protocol):
    def before_turn(self, view: View) -> Turn: ...
    def refusal(self, call: ToolCall, messages: list[Message]) -> ToolResult | None: ...
    def observe(self, call: ToolCall, result: ToolResult) -> None: ...
    def final(self, view: View, answer: str) -> str: ...
    def sub_episodes(self) -> list[Trajectory]: ...


class Plain:
    """The generic loop, nothing added."""

    def before_turn(self, view: View) -> Turn:
        return Turn()

    def refusal(self, call: ToolCall, messages: list[Message]) -> ToolResult | None:
        return None

    def observe(self, call: ToolCall, result: ToolResult) -> None:
        return None

    def final(self, view: View, answer: str) -> str:
        return answer

    def sub_episodes(self) -> list[Trajectory]:
        """Episodes run inside the last tool call, to file under its step (handed over once)."""
        return []
