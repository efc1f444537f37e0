"""The conversation types every layer shares: a message, a tool call, a tool-call parse error.

Defined once here because the model renders and parses them; the agent, the log, the TUI, the
evals and the trainer import them from here. Steps and trajectories live in `agent/`, tool
results in `tools/`: each type sits in the lowest package that produces it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Role = Literal["system", "user", "assistant", "tool"]


class ToolCall(BaseModel):
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    id: str | None = None


class ToolCallParseError(BaseModel):
    """Model output that looked like a tool call but could not be read as one.

    Kept, not raised: the agent shows it to the model as a readable error, the log keeps it,
    and the trainer learns from it.
    """

    raw: str
    message: str


class Message(BaseModel):
    role: Role
    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    name: str | None = None  # for role "tool": which tool answered

    def as_template_dict(self) -> dict[str, Any]:
        """The shape Hugging Face chat templates expect."""
        d: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            d["tool_calls"] = [
                {"type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in self.tool_calls
            ]
        if self.name is not None:
            d["name"] = self.name
        return d
