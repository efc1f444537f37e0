"""web_search: find pages for a query, online through ddgs or offline in a local BM25 index.

A search backend is any callable `backend(query, max_results) -> list[SearchHit]` that returns
[] for "no results" and raises ToolError for a failure the model should read. Two exist:
- DdgsBackend (online): ddgs' metasearch, trying `SearchSettings.ddgs_backends` in order
  ("auto", then "duckduckgo", then "brave"; ddgs 9 also offers mojeek, startpage, wikipedia,
  yahoo, grokipedia), with a short bounded back-off on rate limits. The DDGS object comes from a
  factory passed in, which is where tests put a fake: ddgs talks HTTP through its own client.
- LocalIndex (offline, tools/index.py): BM25 over a folder indexed by `edgeagent index DIR`.

`make_search_backend(settings, online)` picks one; `search_tool(backend)` makes the tool.

What it is not: a results cache, a ranker across backends, or a page fetcher (fetch_page reads
the URLs it returns).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from ddgs.exceptions import DDGSException, RatelimitException
from pydantic import BaseModel, ConfigDict, Field

from tools.base import Tool, ToolError, ToolResult
from tools.index import LocalIndex, SearchHit, build_index
from tools.settings import SearchSettings

__all__ = [
    "DdgsBackend",
    "SearchBackend",
    "SearchHit",
    "SearchSettings",
    "UnavailableBackend",
    "build_index",
    "format_hits",
    "make_search_backend",
    "search_tool",
]

NO_INDEX = (
    "web search is offline and no local search index is configured; "
    "run `edgeagent index DIR` to index a folder of documents, then set its index path"
)


class SearchBackend(Protocol):
    def __call__(self, query: str, max_results: int) -> list[SearchHit]: ...


class DdgsLike(Protocol):
    """The one method of ddgs.DDGS we use."""

    def text(self, query: str, **kwargs: Any) -> list[dict[str, Any]]: ...


class NoResults(Exception):
    """ddgs reported that the query found nothing (it raises for that)."""


def default_ddgs_factory(settings: SearchSettings) -> Callable[[], DdgsLike]:
    def make() -> DdgsLike:
        from ddgs import DDGS  # imported on first use: it loads every engine module

        return DDGS(timeout=settings.ddgs_timeout)

    return make


class DdgsBackend:
    """Online search through ddgs, falling back across its backends."""

    def __init__(
        self,
        settings: SearchSettings,
        ddgs_factory: Callable[[], DdgsLike] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.factory = ddgs_factory or default_ddgs_factory(settings)
        self.sleep = sleep
        self._ddgs: DdgsLike | None = None

    def __call__(self, query: str, max_results: int) -> list[SearchHit]:
        failures: list[str] = []
        for backend in self.settings.ddgs_backends:
            try:
                rows = self.text_with_retries(query, max_results, backend)
            except NoResults:
                return []
            except DDGSException as e:
                failures.append(f"{backend}: {type(e).__name__}: {e}")
                continue
            return [hit for row in rows if (hit := self.to_hit(row)) is not None][:max_results]
        raise ToolError(
            "web search failed on every backend ("
            + "; ".join(failures)
            + "). The search service may be rate-limiting or unreachable: try again later, "
            "or answer from what you know and say that you could not search."
        )

    def text_with_retries(self, query: str, max_results: int, backend: str) -> list[dict[str, Any]]:
        if self._ddgs is None:
            self._ddgs = self.factory()
        retries = self.settings.ratelimit_retries
        for attempt in range(retries + 1):
            try:
                return self._ddgs.text(
                    query,
                    max_results=max_results,
                    backend=backend,
                    region=self.settings.region,
                    safesearch=self.settings.safesearch,
                )
            except RatelimitException:
                if attempt == retries:
                    raise
                self.sleep(min(self.settings.backoff_s * 2**attempt, self.settings.max_backoff_s))
            except DDGSException as e:
                if "no results" in str(e).lower():
                    raise NoResults from e
                raise
        raise AssertionError("unreachable: the last attempt returns or raises")

    def to_hit(self, row: dict[str, Any]) -> SearchHit | None:
        url = str(row.get("href") or row.get("url") or "")
        if not url:
            return None
        snippet = " ".join(str(row.get("body") or "").split())
        if len(snippet) > self.settings.snippet_chars:
            snippet = snippet[: self.settings.snippet_chars].rsplit(" ", 1)[0] + "…"
        return SearchHit(title=" ".join(str(row.get("title") or url).split()), url=url,
                         snippet=snippet)  # fmt: skip


class UnavailableBackend:
    """Stands in when no backend can work, so web_search answers with why instead of crashing."""

    def __init__(self, message: str) -> None:
        self.message = message

    def __call__(self, query: str, max_results: int) -> list[SearchHit]:
        raise ToolError(self.message)


def local_backend(settings: SearchSettings) -> SearchBackend:
    """The local index: loaded from index_path, else corpus_dir indexed in memory."""
    path = settings.index_path
    if path is not None and path.exists():
        try:
            return LocalIndex.load(path, settings.base_url, settings.snippet_chars)
        except ValueError as e:
            return UnavailableBackend(f"{e}; rebuild it with `edgeagent index DIR`")
    if settings.corpus_dir is not None and settings.corpus_dir.is_dir():
        try:
            index, _skipped = LocalIndex.build(settings.corpus_dir, settings.base_url)
        except ValueError as e:  # an empty folder
            return UnavailableBackend(str(e))
        index.snippet_chars = settings.snippet_chars
        return index
    if path is not None:
        return UnavailableBackend(f"the local search index {path} does not exist; {NO_INDEX}")
    return UnavailableBackend(NO_INDEX)


def make_search_backend(
    settings: SearchSettings, online: bool, ddgs_factory: Callable[[], DdgsLike] | None = None
) -> SearchBackend:
    """ddgs when online, the local index when offline or when settings.backend is "local"."""
    if online and settings.backend != "local":
        return DdgsBackend(settings, ddgs_factory)
    return local_backend(settings)


class SearchArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(max_length=400, description="what to search for, a few keywords")
    max_results: int = Field(5, ge=1, le=10, description="how many results to return, 1 to 10")


def format_hits(hits: list[SearchHit]) -> str:
    """Numbered hits: "1. title", then the URL and the snippet indented under it."""
    blocks = []
    for number, hit in enumerate(hits, start=1):
        lines = [f"{number}. {hit.title}", f"   {hit.url}"]
        if hit.snippet:
            lines.append(f"   {hit.snippet}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def search_tool(backend: SearchBackend, description: str | None = None) -> Tool:
    """The web_search tool over one backend; metadata["hits"] holds the hits as dicts."""

    def run(args: SearchArgs) -> ToolResult:
        query = " ".join(args.query.split())
        if not query:
            raise ToolError("the query is empty; give a few keywords to search for")
        hits = backend(query, args.max_results)[: args.max_results]
        if not hits:
            return ToolResult(text=f"No results for '{query}'.", metadata={"hits": []})
        return ToolResult(text=format_hits(hits), metadata={"hits": [h.model_dump() for h in hits]})

    return Tool(
        name="web_search",
        description=description
        or "Search the web. Returns numbered results with title, URL and a snippet; "
        "open a result with fetch_page to read it.",
        args=SearchArgs,
        fn=run,
    )
