"""The HTTP face of `edgeagent serve`: an OpenAI-compatible FastAPI app over `model.serving`.

`GET /health`, `GET /v1/models`, `POST /v1/chat/completions` (plain, or streamed as server-sent
events). A request is read with a size bound, checked by `server.schema`, rendered with the
model's own chat template and tool format (`model.chat.render`), tokenized, bounded against
the context, then queued on the scheduler; its events come back through an asyncio queue.
A client that goes away (a closed stream, a dropped plain request) cancels its request, which
frees its slot. Every refusal is a 4xx JSON body in OpenAI's error shape; an unexpected
failure is a 500 in that shape too, never a traceback.

Not here: the model loading and the command line (`tui.serve`), decoding (`model.serving`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from model.chat import render
from model.generate import Completion, Delta
from model.loader import LoadedModel
from model.sampling import SamplingSettings
from model.serving import Event, Scheduler, Ticket
from tui.server.intake import ServeOptions, check_bounds, enqueue, read_body
from tui.server.native import add_native_routes
from tui.server.reply import Reply, ReplyText, finish_reason, forced_prefix, split, sse
from tui.server.schema import ApiError, ChatRequest, parse_request, to_messages


class Prepared(BaseModel):
    """A request made ready for the scheduler."""

    ids: list[int]
    sampling: SamplingSettings
    tools: bool
    prefix: str


def create_app(lm: LoadedModel, scheduler: Scheduler, options: ServeOptions) -> FastAPI:
    app = FastAPI(title="edgeagent", docs_url=None, redoc_url=None, openapi_url=None)
    started = int(time.time())

    if options.api_key is not None:
        app.add_middleware(KeyCheck, key=options.api_key)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, e: ApiError) -> JSONResponse:
        return _error(e)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if e.status_code == 404 else "invalid_request_error"
        return _error(ApiError(e.status_code, str(e.detail), type=kind))

    @app.exception_handler(Exception)
    async def bug(request: Request, e: Exception) -> JSONResponse:
        return _error(ApiError(500, f"internal error: {type(e).__name__}", type="server_error"))

    add_native_routes(app, lm, scheduler, options)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "id": options.server_id,
            "model": lm.name,
            "slots": scheduler.slots,
            "busy": scheduler.busy,
            "queued": scheduler.queued,
            "max_queue": scheduler.max_queue,
            "tokens_decoded": scheduler.tokens_decoded,
            "prefix_cache": scheduler.prefixes.stats().model_dump() if scheduler.prefixes else None,
        }

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        card = {"id": lm.name, "object": "model", "created": started, "owned_by": "edgeagent"}
        return {"object": "list", "data": [card]}

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(request: Request) -> Any:
        req = parse_request(await read_body(request, options.max_body_bytes))
        ready = prepare(lm, req, options)
        ticket, events = enqueue(scheduler, ready.ids, ready.sampling, options.guard)
        reply = Reply(lm.name)
        if req.stream:
            text = ReplyText(lm.tool_format, ready.tools, ready.prefix)
            usage = bool(req.stream_options and req.stream_options.include_usage)
            body = _stream(scheduler, ticket, events, text, reply, usage, req)
            return StreamingResponse(body, media_type="text/event-stream")
        try:
            done = await _wait(request, events, options.disconnect_poll_s)
        finally:
            scheduler.cancel(ticket)  # a no-op once it is done; frees the slot if not
        if done is None:  # nobody is there to read an answer
            return _error(ApiError(499, "the client closed the request", code="client_closed"))
        content, calls = split(ready.prefix + done.text, lm.tool_format, ready.tools)
        return reply.completion(content, calls, done, extension(req, done))

    return app


def prepare(lm: LoadedModel, req: ChatRequest, options: ServeOptions) -> Prepared:
    """The prompt's token ids and the sampling settings, with every bound checked."""
    tools_on = bool(req.tools) and req.tool_choice != "none"
    tools = [t.model_dump(exclude_none=True) for t in req.tools or []] if tools_on else None
    prefix = ""
    if tools_on and req.tool_choice == "required":
        prefix = forced_prefix(lm.tool_format, None)
    elif tools_on and req.tool_choice is not None and not isinstance(req.tool_choice, str):
        name = req.tool_choice.function.name
        if name not in {t.function.name for t in req.tools or []}:
            msg = f"tool_choice names {name!r}, which is not in tools"
            raise ApiError(400, msg, param="tool_choice")
        prefix = forced_prefix(lm.tool_format, name)
    prompt = render(lm.tokenizer, to_messages(req.messages), tools, lm.tool_format) + prefix
    ids = lm.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    limit = check_bounds(len(ids), req.token_limit, options)
    base = options.sampling
    sampling = SamplingSettings(
        max_new_tokens=limit,
        temperature=base.temperature if req.temperature is None else req.temperature,
        top_p=base.top_p if req.top_p is None else req.top_p,
        top_k=base.top_k,
        seed=req.seed,
        stop=req.stops,
    )
    return Prepared(ids=ids, sampling=sampling, tools=tools_on, prefix=prefix)


def extension(req: ChatRequest, done: Completion) -> dict[str, Any]:
    """Our non-standard response field, when the request asked for it."""
    if req.edgeagent is None or not req.edgeagent.token_ids:
        return {}
    return {"edgeagent": {"token_ids": done.token_ids, "finish_reason": done.finish_reason}}


class KeyCheck:
    """Every request needs `Authorization: Bearer <key>`. Plain ASGI, not Starlette's
    BaseHTTPMiddleware, which would hide a client's disconnect from the handler."""

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app, self.expected = app, f"Bearer {key}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                msg = "missing or wrong API key (Authorization: Bearer ...)"
                await _error(ApiError(401, msg, code="invalid_api_key"))(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _error(e: ApiError) -> JSONResponse:
    return JSONResponse(e.body(), status_code=e.status)


async def _wait(request: Request, events: asyncio.Queue[Event], poll_s: float) -> Completion | None:
    """The Completion (deltas are dropped), or None once the client has gone away: checked
    every `poll_s`, whether or not tokens are arriving meanwhile."""
    loop = asyncio.get_running_loop()
    check_at = loop.time() + poll_s
    while True:
        try:
            event = await asyncio.wait_for(events.get(), max(0.0, check_at - loop.time()))
        except TimeoutError:
            event = None
        if isinstance(event, Exception):
            raise ApiError(500, f"decoding failed: {event}", type="server_error")
        if isinstance(event, Completion):
            return event
        if loop.time() >= check_at:
            if await request.is_disconnected():
                return None
            check_at = loop.time() + poll_s


async def _stream(
    scheduler: Scheduler,
    ticket: Ticket,
    events: asyncio.Queue[Event],
    text: ReplyText,
    reply: Reply,
    usage: bool,
    req: ChatRequest,
) -> AsyncIterator[bytes]:
    """The SSE body. Closing it early (the client went away) cancels the request. Deltas that
    queued up while the body was being sent go out as one chunk: when the event loop falls
    behind the decode thread it sends fewer, larger chunks instead of falling further behind."""
    try:
        yield sse(reply.chunk({"role": "assistant", "content": ""}))
        while True:
            batch = [await events.get()]
            while not events.empty():
                batch.append(events.get_nowait())
            deltas = [e for e in batch if isinstance(e, Delta)]
            if sent := "".join(text.push(e.text) for e in deltas):
                yield sse(reply.chunk({"content": sent}))
            if len(deltas) == len(batch):
                continue
            event = batch[len(deltas)]  # a Completion or a failure ends the stream
            if isinstance(event, Exception):
                err = ApiError(500, f"decoding failed: {event}", type="server_error")
                yield sse(err.body())
                return
            assert isinstance(event, Completion)
            rest, calls = text.finish()
            if rest:
                yield sse(reply.chunk({"content": rest}))
            for chunk in reply.call_chunks(calls):
                yield sse(chunk)
            yield sse({**reply.chunk({}, finish_reason(event, calls)), **extension(req, event)})
            if usage:
                yield sse(reply.usage_chunk(event))
            yield sse("[DONE]")
            return
    finally:
        with contextlib.suppress(Exception):
            scheduler.cancel(ticket)
