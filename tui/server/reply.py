"""The server's answers in OpenAI's shapes: a chat completion, its stream chunks, tool calls.

Tool calls are read from the model's text by `model.chat.parse`, the agent's own parser, so a
client sees exactly the calls the agent loop would run. While streaming with tools on, text
is sent as it comes up to the point where a call could begin (a call tag, a code fence, or a
reply that opens with a bare JSON object); from there on it is held, and at the end either
parsed into `delta.tool_calls` or, when it holds no call after all, sent as content.

Not here: HTTP and the request's checks (`server.app`, `server.schema`).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from model.chat import ToolFormat, parse
from model.generate import Completion
from model.messages import ToolCall

CALL_MARKERS = ("<tool_call>", "```", "<|tool_call_start|>")


def forced_prefix(fmt: ToolFormat, name: str | None) -> str:
    """What the reply is made to start with when a call is required (of `name`, if given)."""
    if fmt is ToolFormat.PYTHONIC:
        return "<|tool_call_start|>[" + (f"{name}(" if name else "")
    return "<tool_call>\n" + (f'{{"name": "{name}", "arguments": ' if name else "")


class ReplyText:
    """The reply's text as it streams: what may be sent as content now, and at the end the
    rest of the content and the tool calls. `tools=False` sends everything as it comes."""

    def __init__(self, fmt: ToolFormat, tools: bool, prefix: str = "") -> None:
        self.fmt, self.tools = fmt, tools
        self.text = prefix
        self.sent = 0
        self.holding = bool(prefix)  # a forced call: nothing is content until parsed

    def push(self, delta: str) -> str:
        self.text += delta
        if not self.tools:
            return self._send(len(self.text))
        if self.holding:
            return ""
        stripped = self.text.lstrip()
        if not stripped:
            return ""
        if self.sent == 0 and stripped[0] in "{[":  # a bare JSON call, as small models write
            self.holding = True
            return ""
        found = [i for m in CALL_MARKERS if (i := self.text.find(m, self.sent)) >= 0]
        if found:
            self.holding = True
            return self._send(min(found))
        return self._send(len(self.text) - _partial_marker(self.text))

    def finish(self) -> tuple[str, list[ToolCall]]:
        """(content not yet sent, the tool calls)."""
        if not self.tools:
            return self._send(len(self.text)), []
        parsed = parse(self.text, self.fmt)
        if not parsed.calls:
            return self._send(len(self.text)), []
        sent = self.text[: self.sent].lstrip()
        rest = parsed.content[len(sent) :] if parsed.content.startswith(sent) else ""
        self.sent = len(self.text)
        return rest, parsed.calls

    def _send(self, upto: int) -> str:
        out = self.text[self.sent : upto] if upto > self.sent else ""
        self.sent = max(self.sent, upto)
        return out


def split(text: str, fmt: ToolFormat, tools: bool) -> tuple[str, list[ToolCall]]:
    """A whole reply's (content, tool calls); text with no readable call is all content."""
    parsed = parse(text, fmt) if tools else None
    if parsed is None or not parsed.calls:
        return text, []
    return parsed.content, parsed.calls


def _partial_marker(text: str) -> int:
    """Length of the longest tail of `text` that begins a call marker."""
    for n in range(min(len(text), max(len(m) for m in CALL_MARKERS)), 0, -1):
        if any(m.startswith(text[-n:]) for m in CALL_MARKERS):
            return n
    return 0


def finish_reason(completion: Completion, calls: list[ToolCall]) -> str:
    if calls:
        return "tool_calls"
    # The guard cut a repetition loop: like the token limit, the reply did not end by itself.
    return "length" if completion.finish_reason in ("length", "doom_loop") else "stop"


def wire_calls(calls: list[ToolCall]) -> list[dict[str, Any]]:
    return [
        {
            "id": call.id or f"call_{uuid.uuid4().hex[:24]}",
            "type": "function",
            "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
        }
        for call in calls
    ]


def usage(completion: Completion) -> dict[str, Any]:
    n = len(completion.token_ids)
    return {
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": n,
        "total_tokens": completion.prompt_tokens + n,
        # OpenAI's field for prompt caching: the prompt tokens that were not prefilled anew.
        "prompt_tokens_details": {"cached_tokens": completion.reused_tokens},
    }


class Reply:
    """One response's id, time and model name, and the objects that carry it."""

    def __init__(self, model: str) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model

    def completion(
        self, content: str, calls: list[ToolCall], done: Completion, extra: dict[str, Any]
    ) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": content or None}
        if calls:
            message["tool_calls"] = wire_calls(calls)
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": finish_reason(done, calls),
                    "logprobs": None,
                }
            ],
            "usage": usage(done),
            **extra,
        }

    def chunk(self, delta: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": reason, "logprobs": None}
        return self._chunk([choice])

    def call_chunks(self, calls: list[ToolCall]) -> list[dict[str, Any]]:
        """One chunk per call, each whole: index, id, type, name and all of its arguments."""
        return [
            self.chunk({"tool_calls": [{"index": i, **call}]})
            for i, call in enumerate(wire_calls(calls))
        ]

    def usage_chunk(self, done: Completion) -> dict[str, Any]:
        return {**self._chunk([]), "usage": usage(done)}

    def _chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }


def sse(data: dict[str, Any] | str) -> bytes:
    """One server-sent event: `data: <json>` and a blank line."""
    body = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {body}\n\n".encode()
