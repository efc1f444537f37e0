"""Settings flags shared by every subcommand, and turning parsed flags into Settings."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from agent.settings import Settings, load_settings, parse_override


def csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def add_settings_flags(p: argparse.ArgumentParser) -> None:
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
