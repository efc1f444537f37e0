"""Settings flags shared by every subcommand, and turning parsed flags into Settings."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from agent.settings import Settings, load_settings, parse_override
from model.loaded import DTYPES, QUANTS


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
    g.add_argument("--adapter", dest="model.adapter", metavar="PATH",
                   help="LoRA adapter: default (shipped), none, or a folder")  # fmt: skip
    g.add_argument("--dtype", dest="model.dtype", choices=DTYPES)
    g.add_argument("--quant", dest="model.quant", choices=QUANTS)
    g.add_argument("--threads", dest="model.threads", type=int)
    g.add_argument("--device", dest="model.device", metavar="auto|cpu|cuda[:N]")
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


def add_agent_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("agent")
    g.add_argument("--tools", dest="agent.tools", type=csv, metavar="search,fetch,python")
    g.add_argument("--max-steps", dest="agent.max_steps", type=int)
    g.add_argument("--search-backend", dest="search.backend", choices=["auto", "ddgs", "local"])
    g.add_argument(
        "--corpus",
        dest="search.corpus_dir",
        metavar="DIR",
        help="search this folder offline (indexed on first use)",
    )
    g.add_argument(
        "--base-url",
        dest="search.base_url",
        metavar="URL",
        help="serve local hits under this URL instead of file://",
    )
    g.add_argument(
        "--allow-host",
        dest="fetch.allow_hosts",
        type=csv,
        metavar="HOST[:PORT]",
        help="hosts fetch_page may open even if private (a local server)",
    )


def settings_from(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = dict(parse_override(s) for s in args.set)
    named = {k: v for k, v in vars(args).items() if ("." in k or k == "offline") and v is not None}
    overrides.update(named)
    return load_settings(args.config, overrides)
