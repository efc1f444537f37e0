"""Our own routes beside the OpenAI ones, for edgeagent's front ends (`model.remote`): the
model's tokenizer and tool format, and raw generation from prompt token ids.

The agent loop renders its prompts, parses tool calls and logs token ids itself, so all it
needs from a server is what `Generator.stream` gives in-process: text deltas with their token
ids, then the Completion, with the same sampling settings, guard and `choices`. The tokenizer
is handed out whole so that a client renders and counts exactly as the server's model would,
whatever model the server was started with.

Not here: the OpenAI API (`server.app`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from pydantic import Field, ValidationError

from model.generate import Completion, Delta
from model.guard import GuardSettings
from model.loader import LoadedModel
from model.sampling import SamplingSettings
from model.serving import Event, Scheduler, Ticket
from tui.server.intake import ServeOptions, check_bounds, enqueue, read_body
from tui.server.schema import ApiError, Strict, as_api_error


class GenerateRequest(Strict):
    prompt_ids: list[int] = Field(min_length=1)
    sampling: SamplingSettings = SamplingSettings()
    guard: GuardSettings | None = None
    choices: list[str] = Field(default_factory=list, max_length=64)


def add_native_routes(
    app: FastAPI, lm: LoadedModel, scheduler: Scheduler, options: ServeOptions
) -> None:
    vocab = len(lm.tokenizer)

    @app.get("/v1/edgeagent/model")
    async def model() -> dict[str, Any]:
        tok = lm.tokenizer
        return {
            "name": lm.name,
            "spec": lm.spec,
            "adapter": lm.adapter,
            "tool_format": lm.tool_format.value,
            "stop_token_ids": sorted(lm.stop_token_ids),
            "tokenizer": tok.backend_tokenizer.to_str(),
            "special_tokens": tok.special_tokens_map,
            "chat_template": tok.chat_template,
        }

    @app.post("/v1/edgeagent/generate")
    async def generate(request: Request) -> StreamingResponse:
        body = await read_body(request, options.max_body_bytes)
        try:
            req = GenerateRequest.model_validate_json(body)
        except ValidationError as e:
            raise as_api_error(e) from None
        if any(not 0 <= i < vocab for i in req.prompt_ids):
            raise ApiError(400, f"prompt_ids: every id must be in [0, {vocab})", param="prompt_ids")
        limit = req.sampling.max_new_tokens
        check_bounds(len(req.prompt_ids), limit, options)
        ticket, events = enqueue(scheduler, req.prompt_ids, req.sampling, req.guard, req.choices)
        return StreamingResponse(
            _lines(scheduler, ticket, events), media_type="application/x-ndjson"
        )


async def _lines(
    scheduler: Scheduler, ticket: Ticket, events: asyncio.Queue[Event]
) -> AsyncIterator[bytes]:
    """One JSON object a line: {"delta": ...} as the text grows, then {"completion": ...} or
    {"error": ...}. Closing it early (the client went away) cancels the request."""
    try:
        while True:
            event = await events.get()
            if isinstance(event, Delta):
                yield _line({"delta": event.model_dump()})
                continue
            if isinstance(event, Completion):
                yield _line({"completion": event.model_dump()})
            else:
                yield _line(ApiError(500, f"decoding failed: {event}", type="server_error").body())
            return
    finally:
        scheduler.cancel(ticket)


def _line(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, separators=(",", ":")) + "\n").encode()
