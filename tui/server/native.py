"""Our own routes beside the OpenAI ones, for edgeagent's front ends (`model.remote`): what
a client renders with, encoding, and raw generation from prompt token ids.

The agent loop renders its prompts, parses tool calls and logs token ids itself, so all it
needs from a server is what `Generator.stream` gives in-process: text deltas with their token
ids, then the Completion, with the same sampling settings, guard and `choices`, plus the
prompt's ids from the model's own tokenizer (`/tokenize`). `/model` is small (the chat
template, special tokens, tool format, end tokens and the server's start id, `model.served`);
the whole tokenizer (`/tokenizer`, megabytes) is for a client that encodes or decodes itself.

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

from model import adapter as adapters
from model import served
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


class TokenizeRequest(Strict):
    text: str


def add_native_routes(
    app: FastAPI, lm: LoadedModel, scheduler: Scheduler, options: ServeOptions
) -> None:
    vocab = len(lm.tokenizer)
    label = adapters.label(lm.spec, lm.adapter)
    info = served.describe(lm, options.server_id, label)

    @app.get("/v1/edgeagent/model")
    async def model() -> dict[str, Any]:
        return info.model_dump(mode="json")

    @app.get("/v1/edgeagent/tokenizer")
    async def tokenizer() -> dict[str, Any]:
        text = await asyncio.to_thread(lm.tokenizer.backend_tokenizer.to_str)
        return {"id": options.server_id, "tokenizer": text}

    @app.post("/v1/edgeagent/tokenize")
    async def tokenize(request: Request) -> dict[str, Any]:
        body = await read_body(request, options.max_body_bytes)
        try:
            req = TokenizeRequest.model_validate_json(body)
        except ValidationError as e:
            raise as_api_error(e) from None
        ids = await asyncio.to_thread(_encode, lm, req.text)  # a long text must not stall others
        return {"ids": ids}

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


def _encode(lm: LoadedModel, text: str) -> list[int]:
    return lm.tokenizer(text, add_special_tokens=False)["input_ids"]  # as Generator.encode


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
