"""Running the tool calls of one episode: repeats, refusals, and the record of each run.

Each call becomes a `ToolRun` that stores the tool's raw output and a typed error kind. The
same call past `repeat_limit` is answered from its earlier result when that succeeded (the
model asks again for what it has, `repeat_answer`), else refused with a nudge and counted in
`repeats` (the loop's ladder escalates on it). The policy may refuse a call first (a guessed
URL) and sees every result after (what a search found). A call to no tool is refused by name.

Not here: the tools (`agent.toolbox`), framing their output for the model (`agent.frame`).
"""

from __future__ import annotations

import json
import time

from agent.fallback import from_result
from agent.policy import Policy
from agent.trajectory import ToolRun
from model.messages import Message, ToolCall, ToolCallParseError
from tools.base import Tool, ToolResult

UNREADABLE = "(unreadable)"  # the name of the run of a call that could not be parsed


class Calls:
    def __init__(self, tools: dict[str, Tool], repeat_limit: int, policy: Policy) -> None:
        self.tools, self.repeat_limit, self.policy = tools, repeat_limit, policy
        self.seen: dict[str, int] = {}
        self.results: dict[str, str] = {}  # the output of each call that succeeded
        self.repeats = 0  # calls refused as repeats so far
        self.repeat_answer: str | None = None  # a repeated call, answered from its result

    def run(self, call: ToolCall, messages: list[Message]) -> ToolRun:
        key = call.name + json.dumps(call.arguments, sort_keys=True, default=str)
        self.seen[key] = self.seen.get(key, 0) + 1
        t0 = time.perf_counter()
        result = self._repeat(call, key) or self.policy.refusal(call, messages)
        if result is None:
            result = self._call(call)
        self.policy.observe(call, result)
        if result.error is None:
            self.results[key] = result.for_model()
        final = result.metadata.get("final")
        return ToolRun(
            call=call,
            text=result.for_model(),
            error=result.error,
            error_kind=result.kind,
            truncated=result.truncated,
            duration_s=time.perf_counter() - t0,
            final=str(final) if final is not None else None,
        )

    def _repeat(self, call: ToolCall, key: str) -> ToolResult | None:
        if self.seen[key] <= self.repeat_limit:
            return None
        error = f"you already called {call.name} with these arguments"
        if key in self.results:  # the model asks again for what it has: that is the answer
            self.repeat_answer = from_result(call.name, self.results[key])
            return ToolResult(error=error, error_kind="repeat")
        self.repeats += 1
        more = " and its result is above; use it, try something else, or answer"
        return ToolResult(error=error + more, error_kind="repeat")

    def _call(self, call: ToolCall) -> ToolResult:
        tool = self.tools.get(call.name)
        if tool is None:
            names = ", ".join(self.tools) or "none: answer from what you know"
            error = f"there is no tool named '{call.name}'; tools: {names}"
            return ToolResult(error=error, error_kind="unknown_tool")
        return tool.run(call.arguments)


def unreadable(error: ToolCallParseError) -> ToolRun:
    """The run of a call that could not be parsed: what the model is told to fix."""
    text = f"Error: could not read your tool call ({error.message}). Write it again."
    call = ToolCall(name=UNREADABLE)
    return ToolRun(call=call, text=text, error=error.message, error_kind="unreadable")
