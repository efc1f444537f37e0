"""The chat app's widgets: the prompt box, one assistant turn, the status bar.

`AssistantTurn` turns the agent's events into what the user sees: each step's text streamed
as Markdown (tool-call markup hidden: the call shows as a panel instead), each tool call a
collapsible panel with its arguments, duration and output (clipped), RLM sub-calls nested under
their step, notices in their own colour. `PromptBox` is a multi-line input: Enter sends,
Ctrl+J starts a new line, Up and Down walk the history from the first and last line, Tab
completes a slash command.

Not here: running the agent or deciding what a command does (`tui.app`).
"""

from __future__ import annotations

import json
import re
from typing import Any

from textual import events
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Collapsible, Markdown, Static, TextArea

from agent.frame import unframed
from agent.trajectory import ToolRun, Trajectory
from model.messages import ToolCall

SHOWN_OUTPUT = 1500  # characters of tool output in a panel
CALL_START = re.compile(r"<tool_call>|<\|tool_call_start\|>|^\s*\{\s*\"name\"", re.M)

# What the panel title says of a failed call, by its kind: a refusal is the loop's, not the tool's.
ERROR_LABELS: dict[str, str] = {
    "arguments": "bad arguments",
    "unknown_tool": "no such tool",
    "unreadable": "unreadable call",
    "repeat": "refused: a repeat",
    "guess": "refused: a guessed URL",
    "empty": "nothing found",
    "tool": "error",
}


def visible(text: str) -> str:
    """A step's text without its tool-call markup, which the panels show instead."""
    match = CALL_START.search(text)
    return (text[: match.start()] if match else text).rstrip()


def call_label(call: ToolCall) -> str:
    args = json.dumps(call.arguments, ensure_ascii=False)
    return f"{call.name}({args[1:-1] if len(args) < 90 else args[:86] + '…'})"


class AssistantTurn(Vertical):
    """One answer as it happens: step text, tool panels, notices, the final answer."""

    def __init__(self) -> None:
        super().__init__(classes="assistant")
        self.markdown: Markdown | None = None
        self.step_text = ""
        self.shown = ""
        self.panels: dict[int, list[Collapsible]] = {}  # step -> its tool panels
        self.answer = ""
        self.last_shown = ""  # the last step's visible text, to not repeat it as the answer

    async def token(self, text: str) -> None:
        self.step_text += text
        now = visible(self.step_text)
        if now == self.shown:
            return
        if self.markdown is None:
            self.markdown = Markdown(classes="step")
            await self.mount(self.markdown)
        if now.startswith(self.shown):
            await self.markdown.append(now[len(self.shown) :])
        else:
            await self.markdown.update(now)
        self.shown = now

    def end_step(self) -> None:
        if self.shown:
            self.last_shown = self.shown
        self.markdown, self.step_text, self.shown = None, "", ""

    async def tool_start(self, step: int, call: ToolCall) -> None:
        panel = Collapsible(
            Static("running…", classes="tool-output", markup=False),
            title=f"⚙ {call_label(call)}  running…",
            classes="tool",
        )
        self.panels.setdefault(step, []).append(panel)
        await self.mount(panel)
        self.end_step()

    def tool_end(self, step: int, run: ToolRun) -> None:
        panel = self.panels.get(step, [])[-1:]
        if not panel:
            return
        state = f"{ERROR_LABELS[run.error_kind or 'tool']}: {run.error[:60]}" if run.error else "ok"
        panel[0].title = f"⚙ {call_label(run.call)}  {run.duration_s:.1f} s  {state}"
        body = unframed(run.text)  # older logs stored it framed
        if len(body) > SHOWN_OUTPUT:
            body = body[:SHOWN_OUTPUT] + f"\n… ({len(body) - SHOWN_OUTPUT:,} more characters)"
        panel[0].query_one(".tool-output", Static).update(body)

    async def notice(self, text: str) -> None:
        await self.mount(Static(text, classes="notice", markup=False))

    async def final(self, text: str, traj: Trajectory | None) -> None:
        self.answer = text
        if traj is not None:
            await self._sub_calls(traj)
        self.end_step()
        if text.strip() and text.strip() != self.last_shown.strip():
            await self.mount(Markdown(text, classes="final"))
        self.end_step()

    async def _sub_calls(self, traj: Trajectory) -> None:
        """RLM sub-calls (llm_query, the focused answer) under the step that made them."""
        for step in traj.steps:
            if not step.sub_episodes:
                continue
            rows = [
                Static(f"↳ {s.task[:200]!r}\n  → {s.final_answer or ''}", markup=False)
                for s in step.sub_episodes
            ]
            nested = Collapsible(*rows, title=f"↳ {len(rows)} sub-call(s)", classes="sub")
            panels = self.panels.get(step.index)
            if panels:
                await panels[-1].query_one("Contents").mount(nested)
            else:
                await self.mount(nested)


class PromptBox(TextArea):
    """The input: Enter sends, Ctrl+J adds a line, Up/Down recall, Tab completes commands."""

    class Submitted(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def __init__(self, commands: list[str], **kwargs: Any) -> None:
        super().__init__(soft_wrap=True, show_line_numbers=False, **kwargs)
        self.commands = commands
        self.past: list[str] = []
        self.recall = 0  # how far back Up has gone; 0 = the text being typed

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            if text := self.text.strip():
                self.past.append(text)
                self.recall = 0
                self.clear()
                self.post_message(self.Submitted(text))
            return
        if event.key == "ctrl+j":
            event.stop()
            event.prevent_default()
            self.insert("\n")
            return
        if event.key == "tab" and self.text.startswith("/"):
            event.stop()
            event.prevent_default()
            self.complete()
            return
        await super()._on_key(event)

    def complete(self) -> None:
        word = self.text.split(" ", 1)[0]
        matches = [c for c in self.commands if c.startswith(word)]
        if len(matches) == 1:
            self.text = matches[0] + " "
            self.move_cursor(self.document.end)
        elif matches:
            self.notify("  ".join(matches), timeout=3)

    def action_cursor_up(self, select: bool = False) -> None:
        if self.cursor_location[0] == 0 and self.past and self.recall < len(self.past):
            self.recall += 1
            self.text = self.past[-self.recall]
            return
        super().action_cursor_up(select)

    def action_cursor_down(self, select: bool = False) -> None:
        if self.recall and self.cursor_location[0] == self.document.line_count - 1:
            self.recall -= 1
            self.text = self.past[-self.recall] if self.recall else ""
            return
        super().action_cursor_down(select)


class StatusBar(Static):
    """Model · mode · tokens/s of the last reply · steps · elapsed."""

    def show(
        self,
        model: str,
        offline: bool,
        tok_s: float | None = None,
        steps: int | None = None,
        elapsed: float | None = None,
        busy: str = "",
    ) -> None:
        parts = [model, "offline (in-car)" if offline else "online"]
        if tok_s is not None:
            parts.append(f"{tok_s:.1f} tok/s")
        if steps is not None:
            parts.append(f"{steps} step{'s' * (steps != 1)}")
        if elapsed is not None:
            parts.append(f"{elapsed:.1f} s")
        if busy:
            parts.append(busy)
        self.update(" · ".join(parts))
