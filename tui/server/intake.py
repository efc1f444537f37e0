"""Taking a request in: the server's limits, reading a body with a bound, and queuing the work
on the scheduler with an asyncio queue for its events. Shared by the OpenAI routes
(`server.app`) and our own (`server.native`).

Not here: what a request means (`server.schema`), the answers' shapes (`server.reply`).
"""

from __future__ import annotations

import asyncio
import uuid

from fastapi import Request
from pydantic import BaseModel, Field

from model.guard import GuardSettings
from model.sampling import SamplingSettings
from model.serving import Event, QueueFull, Scheduler, SchedulerClosed, Ticket
from tui.server.schema import ApiError


class ServeOptions(BaseModel):
    """The limits and defaults of one server."""

    api_key: str | None = None
    max_body_bytes: int = 1_000_000
    max_tokens: int = 2048  # the most one request may ask for
    context: int = 4096  # prompt plus reply, in tokens
    sampling: SamplingSettings = SamplingSettings()  # defaults for what a request leaves out
    guard: GuardSettings | None = None
    disconnect_poll_s: float = 0.25  # how often a plain request checks its client is there
    # New at every start: what a client keys the tokenizer it keeps on disk by (model.served).
    server_id: str = Field(default_factory=lambda: uuid.uuid4().hex)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with a 413 as soon as it is known to pass `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"the request body is over {limit} bytes", code="request_too_large")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, f"the request body is over {limit} bytes", code="request_too_large")
    return bytes(body)


def enqueue(
    scheduler: Scheduler,
    ids: list[int],
    sampling: SamplingSettings,
    guard: GuardSettings | None,
    choices: list[str] | None = None,
) -> tuple[Ticket, asyncio.Queue[Event]]:
    """The request queued, and the asyncio queue its events arrive on (from the decode
    thread, through the running loop). A full scheduler is a 429, a closing one a 503."""
    loop, events = asyncio.get_running_loop(), asyncio.Queue[Event]()

    def sink(event: Event) -> None:
        loop.call_soon_threadsafe(events.put_nowait, event)

    try:
        return scheduler.submit(ids, sampling, guard, sink, choices), events
    except QueueFull as e:
        msg = f"the server is busy ({e}); retry later"
        raise ApiError(429, msg, type="rate_limit_error", code="rate_limit_exceeded") from None
    except SchedulerClosed as e:
        raise ApiError(503, str(e), type="server_error") from None


def check_bounds(prompt_tokens: int, limit: int | None, options: ServeOptions) -> int:
    """The reply's token limit: `limit`, or as much as the context leaves (at most the server's
    cap); a prompt or a limit past the bounds is a 400."""
    room = options.context - prompt_tokens
    if room < 1:
        msg = f"the prompt is {prompt_tokens} tokens; this server's context is {options.context}"
        raise ApiError(400, msg, param="messages", code="context_length_exceeded")
    if limit is not None and limit > options.max_tokens:
        raise ApiError(400, f"max_tokens is at most {options.max_tokens} here", param="max_tokens")
    if limit is not None and limit > room:
        msg = f"the prompt ({prompt_tokens} tokens) and max_tokens ({limit}) pass {options.context}"
        raise ApiError(400, msg, param="max_tokens", code="context_length_exceeded")
    return limit or min(options.max_tokens, room)
