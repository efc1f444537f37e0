"""The OpenAI chat-completions request as the server accepts it, its error shape, and turning
OpenAI messages into the project's `Message`s.

Strict on purpose: a listening process should say what it did not understand rather than
guess. Unknown fields are rejected with a 400 that names them; a few common optional OpenAI
fields are accepted but only with the value that means "off" (n=1, logprobs false, zero
penalties, response_format text), since honouring anything else is not implemented. Fields
that change nothing here (user, metadata, store, parallel_tool_calls) are accepted and ignored.

Not here: HTTP (`server.app`), the reply's shape (`server.reply`), sampling (`model`).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from model.messages import Message, ToolCall


class ApiError(Exception):
    """A request the server refuses: becomes `{"error": {...}}` with this HTTP status."""

    def __init__(
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = (
            status,
            message,
            type,
            param,
            code,
        )

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextPart(Strict):
    type: Literal["text"]
    text: str


Content = str | list[TextPart]


class FunctionCall(Strict):
    name: str
    arguments: str  # a JSON object, as text: OpenAI's convention


class WireToolCall(Strict):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class SystemMessage(Strict):
    role: Literal["system", "developer"]
    content: Content
    name: str | None = None


class UserMessage(Strict):
    role: Literal["user"]
    content: Content
    name: str | None = None


class AssistantMessage(Strict):
    role: Literal["assistant"]
    content: Content | None = None
    tool_calls: list[WireToolCall] | None = None
    name: str | None = None
    refusal: str | None = None


class ToolMessage(Strict):
    role: Literal["tool"]
    content: Content
    tool_call_id: str


WireMessage = Annotated[
    SystemMessage | UserMessage | AssistantMessage | ToolMessage, Field(discriminator="role")
]


class FunctionDef(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolDef(Strict):
    type: Literal["function"]
    function: FunctionDef


class NamedFunction(Strict):
    name: str


class NamedToolChoice(Strict):
    type: Literal["function"]
    function: NamedFunction


class StreamOptions(Strict):
    include_usage: bool = False


class ResponseFormat(Strict):
    type: Literal["text"]


class Extension(Strict):
    """Ours, not OpenAI's: `{"edgeagent": {"token_ids": true}}` asks for the reply's token ids
    (in the response's, or the last chunk's, `edgeagent` field), for clients that log them."""

    token_ids: bool = False


class ChatRequest(Strict):
    model: str = ""
    messages: list[WireMessage] = Field(min_length=1)
    tools: list[ToolDef] | None = None
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    # Accepted only with the value that means "off": the rest is not implemented.
    n: Literal[1] = 1
    logprobs: Literal[False] | None = None
    frequency_penalty: Literal[0] | None = None
    presence_penalty: Literal[0] | None = None
    response_format: ResponseFormat | None = None
    # Accepted and ignored: they change nothing a single local model does.
    user: str | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    parallel_tool_calls: bool | None = None
    edgeagent: Extension | None = None

    @field_validator("stop")
    @classmethod
    def _few_stops(cls, v: str | list[str] | None) -> str | list[str] | None:
        if isinstance(v, list) and len(v) > 4:
            raise ValueError("at most 4 stop sequences")
        return v

    @property
    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    @property
    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


def parse_request(body: bytes) -> ChatRequest:
    """The request in `body`, or an ApiError(400) saying what is wrong with it."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ApiError(400, f"the request body is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object")
    try:
        return ChatRequest.model_validate(data)
    except ValidationError as e:
        raise as_api_error(e) from None


def as_api_error(e: ValidationError) -> ApiError:
    errors = e.errors(include_url=False, include_input=False)
    unknown = [_loc(err["loc"]) for err in errors if err["type"] == "extra_forbidden"]
    if unknown:
        return ApiError(400, f"unknown field(s): {', '.join(unknown)}", param=unknown[0])
    first = errors[0]
    where = _loc(first["loc"])
    if first["type"] == "union_tag_invalid":  # the discriminator: a role we do not know
        where += ".role"
        message = f"{where}: role must be one of system, developer, user, assistant, tool"
    else:
        message = f"{where}: {first['msg']}" if where else first["msg"]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return ApiError(400, message + more, param=where or None)


BRANCHES = ("system", "developer", "user", "assistant", "tool", "str")


def _loc(loc: tuple[int | str, ...]) -> str:
    """`messages[2].content` from pydantic's ('messages', 2, 'content'), union branch names
    (the role a message was read as) left out."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in BRANCHES or part.startswith(("list[", "function-", "literal[")):
            continue
        else:
            out += f".{part}" if out else part
    return out


def text_of(content: Content | None) -> str:
    if content is None:
        return ""
    return content if isinstance(content, str) else "".join(p.text for p in content)


def to_messages(wire: list[WireMessage]) -> list[Message]:
    """OpenAI messages as ours: developer is system, a tool message is named after the call it
    answers, assistant calls' argument text becomes a dict (a 400 if it is not a JSON object)."""
    out: list[Message] = []
    names: dict[str, str] = {}  # tool call id -> function name, from earlier assistant turns
    for i, m in enumerate(wire):
        if isinstance(m, SystemMessage):
            out.append(Message(role="system", content=text_of(m.content)))
        elif isinstance(m, UserMessage):
            out.append(Message(role="user", content=text_of(m.content)))
        elif isinstance(m, AssistantMessage):
            calls = [_tool_call(i, j, c) for j, c in enumerate(m.tool_calls or [])]
            names.update({c.id: c.name for c in calls if c.id})
            out.append(Message(role="assistant", content=text_of(m.content), tool_calls=calls))
        else:
            if m.tool_call_id not in names:
                where = f"messages[{i}].tool_call_id"
                raise ApiError(
                    400, f"{where}: no earlier assistant tool call has this id", param=where
                )
            name = names[m.tool_call_id]
            out.append(Message(role="tool", content=text_of(m.content), name=name))
    return out


def _tool_call(i: int, j: int, call: WireToolCall) -> ToolCall:
    where = f"messages[{i}].tool_calls[{j}].function.arguments"
    try:
        arguments = json.loads(call.function.arguments or "{}")
    except json.JSONDecodeError:
        arguments = None
    if not isinstance(arguments, dict):
        raise ApiError(400, f"{where}: must be a JSON object, as text", param=where)
    return ToolCall(name=call.function.name, arguments=arguments, id=call.id)
