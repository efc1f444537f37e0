"""web_search: the local BM25 index over a real corpus on disk, and ddgs with a fake network edge.

The fake DDGS object is the only stand-in: ddgs talks to search engines beyond this machine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ddgs.exceptions import DDGSException, RatelimitException, TimeoutException

from tools.fetch import FetchSettings, fetch_text
from tools.index import IndexBuildError, LocalIndex, build_index, snippet, tokenize
from tools.search import (
    DdgsBackend,
    SearchHit,
    SearchSettings,
    UnavailableBackend,
    make_search_backend,
    search_tool,
)

DOCS = {
    "lighthouses.md": "# Lighthouses of Finistère\n\nThe Ar-Men lighthouse stands on a rock "
    "at the western tip of the Sein causeway. Its keepers called it hell among hells, "
    "because the sea breaks over the tower in every winter storm.\n",
    "bread.txt": "Sourdough bread needs a starter of flour and water fed daily. The dough rises "
    "slowly overnight and the crust turns dark in a hot oven.\n",
    "guides/tides.html": "<html><head><title>Reading a tide table</title></head><body>"
    "<article><h1>Reading a tide table</h1><p>High and low water times shift by about fifty "
    "minutes each day. Spring tides follow the full and new moon, neap tides the quarters."
    "</p><p>Always check the coefficient before walking out to an island at low water.</p>"
    "</article></body></html>",
    "notes/garden_plan.md": "Tomatoes go by the south wall; the beans climb the fence. Water the "
    "seedlings in the evening, never at noon, and keep the sea breeze off the young plants.\n",
    ".hidden/secret.md": "# Secret\n\nlighthouse keepers password\n",
    "image.png": "not a document",
}


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    for name, text in DOCS.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def index_path(corpus: Path, tmp_path: Path) -> Path:
    path = tmp_path / "state" / "index.json"
    build_index(corpus, path)
    return path


def test_build_index_stats_and_json_on_disk(corpus: Path, tmp_path: Path) -> None:
    path = tmp_path / "state" / "index.json"
    stats = build_index(corpus, path)
    assert stats.documents == 4  # hidden folder and .png skipped
    assert stats.terms > 50 and stats.skipped == []
    data = json.loads(path.read_text(encoding="utf-8"))
    assert sorted(d["path"] for d in data["docs"]) == [
        "bread.txt",
        "guides/tides.html",
        "lighthouses.md",
        "notes/garden_plan.md",
    ]


def test_titles_come_from_heading_title_or_file_name(index_path: Path) -> None:
    titles = {d["path"]: d["title"] for d in LocalIndex.load(index_path).docs}
    assert titles["lighthouses.md"] == "Lighthouses of Finistère"
    assert titles["guides/tides.html"] == "Reading a tide table"
    assert titles["notes/garden_plan.md"] == "garden plan"
    assert titles["bread.txt"] == "bread"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("which lighthouse did keepers call hell", "lighthouses.md"),
        ("when do spring tides happen moon", "guides/tides.html"),
        ("sourdough starter", "bread.txt"),
        ("where should tomatoes be planted", "notes/garden_plan.md"),
    ],
)
def test_the_right_document_ranks_first(index_path: Path, query: str, expected: str) -> None:
    hits = LocalIndex.load(index_path)(query, 3)
    assert hits[0].url == (index_path.parent.parent / "corpus" / expected).resolve().as_uri()


def test_reloaded_index_ranks_like_the_fresh_one(corpus: Path, index_path: Path) -> None:
    fresh, _ = LocalIndex.build(corpus)
    for query in ["sea", "water", "lighthouse keepers"]:
        assert fresh(query, 5) == LocalIndex.load(index_path)(query, 5)


def test_snippet_holds_query_terms(index_path: Path) -> None:
    hit = LocalIndex.load(index_path, snippet_chars=80)("coefficient island", 1)[0]
    assert "coefficient" in hit.snippet and "island" in hit.snippet
    assert len(hit.snippet) <= 82 and hit.snippet.startswith("…")


def test_tokenize_is_unicode_lowercase_without_stopwords() -> None:
    assert tokenize("The Phare d'Ar-Men, à Sein: Été 1881!") == [
        "phare", "d", "ar", "men", "à", "sein", "été", "1881"
    ]  # fmt: skip


def test_snippet_window_prefers_more_distinct_terms() -> None:
    text = "alpha " + "filler " * 60 + "alpha beta gamma " + "filler " * 60
    piece = snippet(text, {"alpha", "beta", "gamma"}, 60)
    assert "alpha beta gamma" in piece


def test_base_url_replaces_file_urls(corpus: Path, tmp_path: Path) -> None:
    path = tmp_path / "web.json"
    build_index(corpus, path, base_url="http://127.0.0.1:8765/")
    hit = LocalIndex.load(path)("garden tomatoes", 1)[0]
    assert hit.url == "http://127.0.0.1:8765/notes/garden_plan.md"
    override = LocalIndex.load(path, base_url="http://evals.local")("garden tomatoes", 1)[0]
    assert override.url == "http://evals.local/notes/garden_plan.md"


def test_fetch_page_opens_file_hits_under_allowed_root(corpus: Path, index_path: Path) -> None:
    hit = LocalIndex.load(index_path)("tide table", 1)[0]
    page = fetch_text(hit.url, FetchSettings(allow_file_roots=[corpus]))
    assert page.title == "Reading a tide table" and "coefficient" in page.text


def test_tool_output_format_and_no_hits(index_path: Path) -> None:
    tool = search_tool(LocalIndex.load(index_path))
    result = tool.run({"query": "sourdough bread", "max_results": 2})
    assert result.ok
    first = result.text.split("\n")
    assert first[0] == "1. bread" and first[1].startswith("   file://")
    assert first[2].startswith("   Sourdough bread")
    assert result.metadata["hits"][0]["title"] == "bread"
    assert tool.run({"query": "zeppelin quantum"}).text == "No results for 'zeppelin quantum'."
    assert tool.run({"query": "the of and"}).text == "No results for 'the of and'."
    assert "query is empty" in (tool.run({"query": "   "}).error or "")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, "'query' is required"),
        ({"query": 42}, "'query': Input should be a valid string"),
        ({"query": "x", "max_results": 0}, "'max_results': Input should be greater than"),
        ({"query": "x", "max_results": 11}, "'max_results': Input should be less than"),
        ({"query": "x", "max_results": "many"}, "'max_results': Input should be a valid"),
        ({"query": "x" * 401}, "'query': String should have at most 400"),
        ({"query": "x", "lang": "fr"}, "'lang' is not a parameter"),
        ("[]", "must be an object"),
    ],
)
def test_bad_arguments_are_error_results(
    index_path: Path, arguments: dict[str, Any] | str, message: str
) -> None:
    result = search_tool(LocalIndex.load(index_path)).run(arguments)
    assert result.error is not None and message in result.error


def test_corrupt_or_missing_index_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="is not a folder"):
        build_index(tmp_path / "nope", tmp_path / "i.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    backend = make_search_backend(SearchSettings(index_path=bad), online=False)
    assert isinstance(backend, UnavailableBackend) and "edgeagent index DIR" in backend.message
    result = search_tool(backend).run({"query": "anything"})
    assert result.error is not None and "cannot read search index" in result.error


def test_backend_selection(corpus: Path, index_path: Path) -> None:
    assert isinstance(make_search_backend(SearchSettings(), online=True), DdgsBackend)
    local = SearchSettings(backend="local", index_path=index_path)
    assert isinstance(make_search_backend(local, online=True), LocalIndex)
    assert isinstance(make_search_backend(SearchSettings(index_path=index_path), False), LocalIndex)
    in_memory = make_search_backend(SearchSettings(corpus_dir=corpus), online=False)
    assert isinstance(in_memory, LocalIndex) and in_memory("sourdough", 1)[0].title == "bread"
    result = search_tool(make_search_backend(SearchSettings(), online=False)).run({"query": "x"})
    assert result.error is not None and "run `edgeagent index DIR`" in result.error


# --- ddgs, with the network edge replaced --------------------------------------------------------

ROWS = [
    {"title": "Ar-Men lighthouse", "href": "https://example.org/ar-men", "body": "A rock  tower."},
    {"title": "No link", "href": "", "body": "dropped"},
    {"title": "Sein", "href": "https://example.org/sein", "body": "x" * 500},
]


class FakeDDGS:
    """Answers DDGS.text() from a script: each entry is rows to return or an exception."""

    def __init__(self, script: list[list[dict[str, Any]] | Exception]) -> None:
        self.script = list(script)
        self.calls: list[dict[str, Any]] = []

    def text(self, query: str, **kwargs: Any) -> list[dict[str, Any]]:
        self.calls.append({"query": query, **kwargs})
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step


def ddgs_backend(fake: FakeDDGS, **overrides: Any) -> DdgsBackend:
    settings = SearchSettings(backoff_s=0, **overrides)
    return DdgsBackend(settings, ddgs_factory=lambda: fake)


def test_ratelimit_is_retried_then_results_come_back() -> None:
    fake = FakeDDGS([RatelimitException("202 Ratelimit"), ROWS])
    hits = ddgs_backend(fake)("ar-men lighthouse", 5)
    assert [h.url for h in hits] == ["https://example.org/ar-men", "https://example.org/sein"]
    assert hits[0] == SearchHit(
        title="Ar-Men lighthouse", url="https://example.org/ar-men", snippet="A rock tower."
    )
    assert hits[1].snippet.endswith("…") and len(hits[1].snippet) <= 301
    assert [c["backend"] for c in fake.calls] == ["auto", "auto"]
    assert fake.calls[0]["max_results"] == 5


def test_backoff_is_bounded_and_falls_back_to_next_backend() -> None:
    waits: list[float] = []
    fake = FakeDDGS([RatelimitException("rl")] * 3 + [ROWS])
    settings = SearchSettings(ratelimit_retries=2, backoff_s=3, max_backoff_s=4)
    backend = DdgsBackend(settings, ddgs_factory=lambda: fake, sleep=waits.append)
    assert len(backend("q", 1)) == 1
    assert waits == [3, 4]
    assert [c["backend"] for c in fake.calls] == ["auto", "auto", "auto", "duckduckgo"]


def test_no_results_is_an_empty_list() -> None:
    fake = FakeDDGS([DDGSException("No results found.")])
    assert ddgs_backend(fake)("qwzx", 5) == []
    assert len(fake.calls) == 1
    result = search_tool(ddgs_backend(FakeDDGS([DDGSException("No results found.")]))).run(
        {"query": "qwzx"}
    )
    assert result.ok and result.text == "No results for 'qwzx'."


def test_all_backends_failing_is_clear_error_text() -> None:
    fake = FakeDDGS(
        [
            RatelimitException("rl"),
            RatelimitException("rl"),
            TimeoutException("timed out"),
            DDGSException("ConnectError"),
        ]  # fmt: skip
    )
    result = search_tool(ddgs_backend(fake)).run({"query": "lighthouse", "max_results": 3})
    assert result.error is not None
    assert result.error.startswith("web search failed on every backend (auto: RatelimitException")
    assert "duckduckgo: TimeoutException: timed out" in result.error
    assert "brave: DDGSException: ConnectError" in result.error
    assert "try again later" in result.error


def test_an_empty_corpus_is_an_error_not_an_empty_index(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "image.png").write_bytes(b"\x89PNG")  # not a document
    with pytest.raises(IndexBuildError, match="holds no documents to search"):
        build_index(tmp_path / "docs", tmp_path / "i.json")
    assert not (tmp_path / "i.json").exists()
    backend = make_search_backend(SearchSettings(corpus_dir=tmp_path / "docs"), online=False)
    assert isinstance(backend, UnavailableBackend) and "no documents" in backend.message


def test_an_index_that_cannot_be_written_is_one_line(corpus: Path, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(IndexBuildError, match="cannot write the search index .*a-file/i.json"):
        build_index(corpus, tmp_path / "a-file" / "i.json")  # a file where a folder should be
