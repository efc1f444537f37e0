"""Building the agent's tools from settings.

The tools themselves live in `tools/`; this module picks which ones an episode gets (none in
offline mode), wires search and fetch together (local hits are file URLs that fetch must be
allowed to open), routes pages too long to show through the RLM search (`agent.rlm`), and
owns the sandbox's lifetime. Framing tool output as untrusted data is `agent.frame`'s.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from agent.rlm import long_pages
from agent.settings import TOOL_NAMES, Settings
from model.embedded import cache_root
from tools.base import Tool
from tools.fetch import FetchSettings, fetch_tool
from tools.index import build_index
from tools.sandbox import Sandbox, python_tool
from tools.search import make_search_backend, search_tool


def index_path_for(corpus_dir: Path) -> Path:
    """Where `edgeagent index DIR` keeps the index of a folder: in the cache, not in DIR."""
    resolved = corpus_dir.expanduser().resolve()
    key = hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    return cache_root() / "index" / f"{resolved.name}-{key}.json"


def ensure_index(settings: Settings) -> Settings:
    """A corpus folder given without an index path gets its cached index, built if missing."""
    search = settings.search
    if search.corpus_dir is None or search.index_path is not None:
        return settings
    path = index_path_for(search.corpus_dir)
    if not path.is_file() or _newest(search.corpus_dir) > path.stat().st_mtime:
        build_index(search.corpus_dir, path, base_url=search.base_url)
    search = search.model_copy(update={"index_path": path, "backend": "local"})
    return settings.model_copy(update={"search": search})


def _newest(folder: Path) -> float:
    """Latest change to any file in the corpus, so an edited corpus is indexed again."""
    times = [p.stat().st_mtime for p in folder.expanduser().rglob("*") if p.is_file()]
    return max(times, default=0.0)


@contextlib.contextmanager
def toolbox(
    settings: Settings,
    callbacks: dict[str, Callable[..., Any]] | None = None,
    question: str | None = None,
) -> Iterator[dict[str, Tool]]:
    """The tools one episode may call, by name; the sandbox closes when the block ends.
    With the episode's `question`, pages too long to show are searched for it (`long_pages`)."""
    if settings.offline:
        yield {}
        return
    settings = ensure_index(settings)
    tools: dict[str, Tool] = {}
    wanted = set(settings.agent.tools)
    # The child process starts on first use, so a sandbox nobody runs code in costs nothing.
    sandbox = Sandbox(settings.sandbox, callbacks=callbacks)
    if "search" in wanted:
        backend = make_search_backend(settings.search, online=True)
        tools[TOOL_NAMES["search"]] = search_tool(backend)
    if "fetch" in wanted:
        fetch = fetch_tool(_fetch_settings(settings))
        if question is not None:
            fetch = long_pages(fetch, sandbox, question, settings.rlm)
        tools[TOOL_NAMES["fetch"]] = fetch
    if "python" in wanted:
        tools[TOOL_NAMES["python"]] = python_tool(sandbox)
    try:
        yield tools
    finally:
        sandbox.close()


def _fetch_settings(settings: Settings) -> FetchSettings:
    """Local search hits are file URLs into the corpus: fetch may open those."""
    fetch = settings.fetch
    if settings.search.corpus_dir is not None and settings.search.base_url is None:
        roots = [*fetch.allow_file_roots, settings.search.corpus_dir.expanduser().resolve()]
        fetch = fetch.model_copy(update={"allow_file_roots": roots})
    return fetch
