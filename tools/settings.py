"""The tools' settings sections (fetch, search, sandbox), apart from the tools themselves.

`agent.settings` composes these into the one settings object that every command reads first,
so they live here with pydantic alone: reading settings must not import what the tools run on
(trafilatura, ddgs, RestrictedPython, the HTTP stack), which a client that never calls a tool,
such as an offline `ask` on a server, would pay for at every start. Each tool module still
exposes its own section under its old name (`tools.fetch.FetchSettings`, ...).

Not here: what the settings do (`tools.fetch`, `tools.search`, `tools.sandbox`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class FetchSettings(BaseModel):
    """Limits and allowlists for fetch_page; the app composes this into its settings."""

    max_chars: int = Field(8000, ge=200, description="characters shown to the model")
    max_bytes: int = Field(3_000_000, ge=1024, description="stop reading after this many bytes")
    connect_timeout: float = Field(5.0, gt=0)
    read_timeout: float = Field(10.0, gt=0)
    deadline: float = Field(25.0, gt=0, description="seconds for the whole fetch, all hops")
    max_redirects: int = Field(5, ge=0)
    include_links: bool = Field(False, description="keep [text](url) links in the markdown")
    allow_hosts: list[str] = Field(default_factory=list, description="'host' or 'host:port'")
    allow_file_roots: list[Path] = Field(default_factory=list)
    user_agent: str = "Mozilla/5.0 (compatible; edgeagent/0.1)"


class SearchSettings(BaseModel):
    """Which search backend to use and how; the app composes this into its settings."""

    backend: Literal["auto", "ddgs", "local"] = "auto"
    index_path: Path | None = None
    corpus_dir: Path | None = None  # indexed in memory at start when index_path does not exist
    base_url: str | None = None  # serve local hits as {base_url}/{relative path}, not file://
    snippet_chars: int = Field(300, ge=40)
    ddgs_backends: list[str] = Field(default_factory=lambda: ["auto", "duckduckgo", "brave"])
    ddgs_timeout: int = Field(5, ge=1)
    region: str = "us-en"
    safesearch: Literal["on", "moderate", "off"] = "moderate"
    ratelimit_retries: int = Field(1, ge=0, le=5)
    backoff_s: float = Field(1.0, ge=0, description="first wait after a rate limit; doubles")
    max_backoff_s: float = Field(4.0, ge=0, description="no single wait is longer than this")


class SandboxSettings(BaseModel):
    """Limits for one sandbox; the defaults suit a small model's scratch computations."""

    model_config = ConfigDict(extra="forbid")

    timeout_s: float = Field(10.0, gt=0, description="wall clock per run, callbacks excluded")
    cpu_s: int = Field(5, ge=1, description="CPU seconds per run (RLIMIT_CPU soft limit)")
    cpu_total_s: int = Field(600, ge=1, description="CPU seconds over the child's life")
    memory_mb: int = Field(512, ge=64, description="address space of the child (RLIMIT_AS)")
    output_chars: int = Field(10_000, ge=100, description="printed output kept per run")
    flood_chars: int = Field(1_000_000, ge=1000, description="printed output that aborts a run")
    final_chars: int = Field(100_000, ge=100, description="longest FINAL answer kept")
    max_callbacks: int = Field(20, ge=0, description="callback calls per run")
    max_callbacks_total: int = Field(200, ge=0, description="callback calls per sandbox")
    max_message_bytes: int = Field(16 * 2**20, ge=2**16, description="longest protocol line")
    open_files: int = Field(32, ge=8, description="RLIMIT_NOFILE of the child")
    startup_timeout_s: float = Field(30.0, gt=0)
    isolate_network: bool = Field(True, description="use `unshare -n` where permitted")

    @model_validator(mode="after")
    def _results_fit_in_a_message(self) -> SandboxSettings:
        # A result carries up to output_chars + final_chars characters, 6 bytes each at worst
        # in JSON ("\u0001"); a limit below that would turn long outputs into protocol errors.
        needed = 6 * (self.output_chars + self.final_chars) + 2**16
        if self.max_message_bytes < needed:
            raise ValueError(f"max_message_bytes must be at least {needed} for these limits")
        return self
