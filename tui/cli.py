"""The `edgeagent` command line: parses arguments, builds settings, prints what the layers yield.

This is the only place besides the Textual app that prints. Each subcommand is a short function
that turns flags into settings, calls into `agent`, `model` or `tools`, and shows the result;
errors we expect (a missing model, a bad setting) become one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agent.settings import Settings, SettingsError, load_settings, parse_override


def _settings_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("settings (override the TOML config)")
    g.add_argument("--config", type=Path, help="TOML settings file")
    g.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any setting, e.g. --set sampling.top_p=0.9 (repeatable)",
    )
    g.add_argument(
        "--model",
        dest="model.spec",
        metavar="SPEC",
        help="embedded name (qwen2.5-coder-0.5b, smollm2), folder, .gguf or hub id",
    )
    g.add_argument("--adapter", dest="model.adapter", metavar="PATH", help="LoRA adapter folder")
    g.add_argument("--dtype", dest="model.dtype", choices=["float32", "bfloat16", "float16"])
    g.add_argument("--threads", dest="model.threads", type=int)
    g.add_argument("--temperature", dest="sampling.temperature", type=float)
    g.add_argument("--max-tokens", dest="sampling.max_new_tokens", type=int)
    g.add_argument("--seed", dest="sampling.seed", type=int)
    g.add_argument(
        "--offline",
        dest="offline",
        action="store_const",
        const=True,
        help="in-car mode: no tools, no network",
    )


def settings_from(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = dict(parse_override(s) for s in args.set)
    named = {k: v for k, v in vars(args).items() if ("." in k or k == "offline") and v is not None}
    overrides.update(named)
    return load_settings(args.config, overrides)


def _load(settings: Settings) -> Any:
    import torch
    from transformers.utils import logging as hf_logging

    from model.loader import load

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    if settings.model.threads:
        torch.set_num_threads(settings.model.threads)
    m = settings.model
    return load(
        m.spec,
        adapter=m.adapter,
        dtype=m.dtype,
        online=not settings.offline,
        progress=lambda msg: print(f"edgeagent: {msg}", file=sys.stderr, flush=True),
    )


def cmd_ask(args: argparse.Namespace) -> int:
    from agent.conversation import Conversation
    from model.generate import Completion, Generator

    settings = settings_from(args)
    if not settings.offline:
        # The tool-using agent loop is not built yet; answering without tools is the honest path.
        settings = settings.model_copy(update={"offline": True})
    chat = Conversation(Generator(_load(settings)), settings)
    done = None
    for event in chat.turn(" ".join(args.question)):
        if isinstance(event, Completion):
            done = event
        elif not args.json:
            print(event.text, end="", flush=True)
    if args.json and done is not None:
        print(json.dumps({"answer": done.text.strip(), **done.model_dump(exclude={"text"})}))
    else:
        print()
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from agent.conversation import Conversation
    from model.generate import Completion, Generator

    settings = settings_from(args).model_copy(update={"offline": True})
    chat = Conversation(Generator(_load(settings)), settings)
    print("edgeagent: chatting offline with no tools; Ctrl-D to leave.", file=sys.stderr)
    while True:
        try:
            line = input("> ").strip()
        except EOFError:
            print()
            return 0
        if not line:
            continue
        for event in chat.turn(line):
            if not isinstance(event, Completion):
                print(event.text, end="", flush=True)
        print()


def cmd_model_info(args: argparse.Namespace) -> int:
    from model.loader import describe

    info = describe(_load(settings_from(args)))
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    info["parameters"] = f"{info['parameters'] / 1e6:.1f} M"
    info["embedding_parameters"] = f"{info['embedding_parameters'] / 1e6:.1f} M"
    info["embedding_share"] = f"{info['embedding_share']:.0%}"
    width = max(len(k) for k in info)
    for key, value in info.items():
        print(f"{key.replace('_', ' '):<{width}}  {value}")
    return 0


def cmd_model_prepare(args: argparse.Namespace) -> int:
    lm = _load(settings_from(args))
    print(f"{lm.spec}: ready in {lm.source}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from model import bench

    settings = settings_from(args)
    _load(settings)  # converts on first use and shows progress before the timed runs
    rows = []
    for row in bench.run(settings.model.spec, args.dtypes.split(","), new_tokens=args.tokens):
        rows.append(row)
        if not args.json:
            print(
                f"{row.dtype}: TTFT {row.ttft_s:.2f} s, decode {row.decode_tok_s:.1f} tok/s",
                file=sys.stderr,
                flush=True,
            )
    print(bench.as_json(rows) if args.json else bench.table(rows))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgeagent", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("chat", help="chat in the terminal (the default)")
    _settings_args(p)
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("ask", help="answer one question and exit")
    p.add_argument("question", nargs="+")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    _settings_args(p)
    p.set_defaults(func=cmd_ask)

    model = sub.add_parser("model", help="inspect or prepare a model").add_subparsers(
        dest="model_command", required=True
    )
    p = model.add_parser("info", help="architecture, size, embedding share, dtype, cache")
    p.add_argument("--json", action="store_true")
    _settings_args(p)
    p.set_defaults(func=cmd_model_info)
    p = model.add_parser("prepare", help="convert a model into the cache ahead of first use")
    _settings_args(p)
    p.set_defaults(func=cmd_model_prepare)

    p = sub.add_parser("bench", help="time to first token and decode speed (prints figures)")
    p.add_argument("--dtypes", default="float32,bfloat16", help="comma-separated dtypes to time")
    p.add_argument("--tokens", type=int, default=64, help="tokens to decode")
    p.add_argument("--json", action="store_true")
    _settings_args(p)
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["chat", *argv]
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return _run(args.func, args)


def _run(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    from model.loader import ModelLoadError

    try:
        return func(args)
    except (ModelLoadError, SettingsError) as e:
        print(f"edgeagent: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
