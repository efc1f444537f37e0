"""`edgeagent serve`: load the model once and answer OpenAI chat-completions requests over HTTP.

Loopback by default; any other address needs an API key, since the model, the prompts and the
machine's CPU would otherwise be open to the network. While it runs, the server announces its
URL in the cache (`model.discovery`), where `ask`, the app and `eval` look for it. At its
start it prefills the agent's system prompts into the scheduler's prefix cache, so that even
the first `ask` prefills only its own question.

Not here: the HTTP app (`server.app`), the scheduler (`model.serving`).
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agent.settings import Settings, SettingsError
from model.chat import render
from model.messages import Message
from model.sampling import SamplingSettings
from tui.commands import load_model, say
from tui.flags import add_settings_flags, settings_from

if TYPE_CHECKING:  # both import torch, which the parser built for every command must not
    from model.loaded import LoadedModel
    from model.serving import Scheduler

DEFAULT_PORT = 8741


def add_serve_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="a resident OpenAI-compatible server for the model")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--api-key", default=os.environ.get("EDGEAGENT_API_KEY"),
                   help="required on every request (Bearer); needed to bind a non-loopback "
                   "address (default: $EDGEAGENT_API_KEY)")  # fmt: skip
    p.add_argument("--slots", type=int, default=8, help="requests decoded together")
    p.add_argument("--queue", type=int, default=16, help="requests waiting; more get a 429")
    p.add_argument("--context", type=int, default=4096, help="prompt plus reply, in tokens")
    p.add_argument("--max-request-tokens", type=int, default=2048,
                   help="the largest max_tokens a request may ask for")  # fmt: skip
    # Its default is the scheduler's (model.serving.PREFIX_TOKENS), not imported here: the
    # parser is built for every command, and that module imports torch.
    p.add_argument("--prefix-cache", type=int, metavar="TOKENS",
                   help="tokens of earlier prompts and replies whose keys and values are kept, "
                   "so a prompt that begins the same way (the system prompt, the conversation "
                   "so far) is prefilled only from where it differs; 0: off (default: 8192, "
                   "192 MiB on the default model in float32)")  # fmt: skip
    p.add_argument("--no-announce", action="store_true",
                   help="do not write the URL where `--server auto` finds it (a private server, "
                   "such as the one `edgeagent bench` starts)")  # fmt: skip
    add_settings_flags(p)
    p.set_defaults(func=cmd_serve)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from model.discovery import announce
    from model.generate import Generator
    from model.serving import Scheduler
    from tui.server.app import ServeOptions, create_app

    settings = settings_from(args)
    if not is_loopback(args.host) and not args.api_key:
        raise SettingsError(f"binding {args.host} (not loopback) needs --api-key")
    if min(args.slots, args.queue, args.context, args.max_request_tokens) < 1:
        raise SettingsError("--slots, --queue, --context and --max-request-tokens must be >= 1")
    if args.prefix_cache is not None and args.prefix_cache < 0:
        raise SettingsError("--prefix-cache must be >= 0")
    prefix = {} if args.prefix_cache is None else {"prefix_tokens": args.prefix_cache}
    lm = load_model(settings)
    scheduler = Scheduler(Generator(lm), slots=args.slots, max_queue=args.queue, **prefix)
    options = ServeOptions(
        api_key=args.api_key,
        context=args.context,
        max_tokens=args.max_request_tokens,
        sampling=settings.sampling,
        guard=settings.guard,
    )
    warm(scheduler, lm, settings, Generator(lm).encode)
    app = create_app(lm, scheduler, options)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{shown}:{args.port}/v1"
    say(f"edgeagent: serving {lm.name} at {url} ({scheduler.slots} slots); Ctrl-C stops")
    # uvicorn re-raises the signal that stopped it once it has shut down; as an exception,
    # not the default handler's instant exit, so the announcement is taken down on the way out.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    announced = (
        contextlib.nullcontext()
        if args.no_announce
        else announce(url, lm.name, needs_key=args.api_key is not None)
    )
    try:
        with announced:
            uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    finally:
        scheduler.close()
    return 0


def warm(
    scheduler: Scheduler, lm: LoadedModel, settings: Settings, encode: Callable[[str], list[int]]
) -> int:
    """Queue the agent's system prompts (offline and online, as an episode's chat opens) for a
    one-token reply each, which keeps them in the scheduler's prefix cache; how many were
    queued. The online one is rendered without tools (an episode's tools vary), so a prompt
    with tools reuses it up to the end of the system text."""
    if scheduler.prefixes is None:
        return 0
    queued = 0
    for text in sorted({settings.offline_system_prompt, settings.system_prompt}):
        head = render(lm.tokenizer, [Message(role="system", content=text)], None, lm.tool_format,
                      add_generation_prompt=False)  # fmt: skip
        if ids := encode(head):
            scheduler.submit(ids, SamplingSettings(max_new_tokens=1), None, lambda event: None)
            queued += 1
    return queued


def _exit_on_signal(signum: int, frame: Any) -> None:
    raise SystemExit(0)
