"""The local search index: BM25 over a folder of .md, .txt and .html documents, kept as JSON.

`build_index(corpus_dir, index_path)` (what `edgeagent index DIR` calls) reads every document
under the folder, extracts text (trafilatura for HTML) and a title (first markdown heading,
<title>, or the file name), and writes one JSON file: the documents' text and the postings.
`LocalIndex.load(index_path)` reads it back; a LocalIndex is itself a search backend,
`index(query, max_results) -> list[SearchHit]`, ranked with Okapi BM25 (k1=1.5, b=0.75).

URLs of hits: `file://` absolute URLs by default (fetch_page opens them when the corpus folder is
in `FetchSettings.allow_file_roots`), or `{base_url}/{relative_path}` when the index is built or
loaded with a base URL (a local HTTP server serving the corpus folder, as the offline evals do).

What it is not: a vector or semantic index, an incremental indexer (a rebuild rereads the whole
folder), or a store for binary documents (PDF, office files are skipped). JSON, not pickle, so
an index file can be inspected and can never run code when loaded.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote

import trafilatura
from pydantic import BaseModel

K1 = 1.5
B = 0.75
INDEX_VERSION = 1
SUFFIXES = {".md", ".markdown", ".txt", ".html", ".htm"}
WORD = re.compile(r"\w+")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
# Small on purpose: only words that carry no topic; BM25's idf already discounts the rest.
STOPWORD_TEXT = (
    "a an and are as at be but by for from has have he her his how i if in into is it its of "
    "on or our she so than that the their them then there these they this to was we were what "
    "when where which who why will with you your"
)
STOPWORDS = frozenset(STOPWORD_TEXT.split())


class IndexBuildError(ValueError):
    """A folder that cannot be indexed (missing, empty) or an index that cannot be written;
    the message is one line."""


class SearchHit(BaseModel):
    """One search result, whichever backend found it."""

    title: str
    url: str
    snippet: str = ""


class IndexStats(BaseModel):
    corpus_dir: Path
    index_path: Path
    documents: int
    terms: int
    skipped: list[str] = []  # files with a supported suffix that could not be read


def tokenize(text: str) -> list[str]:
    return [t for t in WORD.findall(text.lower()) if t not in STOPWORDS]


def read_document(path: Path) -> tuple[str, str]:
    """(title, text) of one document; the title falls back to the file name."""
    raw = path.read_text(encoding="utf-8", errors="replace")
    title = ""
    if path.suffix.lower() in (".html", ".htm"):
        tree = trafilatura.load_html(raw)
        if tree is not None:
            title = tree.findtext(".//title") or tree.findtext(".//h1") or ""
        text = trafilatura.extract(raw, output_format="txt", include_comments=False) or ""
        text = text or trafilatura.html2txt(raw)
    else:
        text = raw
        heading = HEADING.search(raw)
        title = heading.group(1) if heading else ""
    title = " ".join(title.split()) or path.stem.replace("_", " ").replace("-", " ")
    return title, text


def snippet(text: str, terms: set[str], width: int) -> str:
    """A window of about `width` characters holding the most distinct query terms."""
    flat = " ".join(text.split())
    hits = [(m.start(), m.group().lower()) for m in WORD.finditer(flat)]
    hits = [(start, word) for start, word in hits if word in terms]
    begin = 0
    if hits:
        # Sliding window over the term positions: count distinct terms within the window.
        counts: Counter[str] = Counter()
        best, j, span = -1, 0, width * 4 // 5
        for start, word in hits:
            while j < len(hits) and hits[j][0] < start + span:
                counts[hits[j][1]] += 1
                j += 1
            distinct = sum(1 for n in counts.values() if n > 0)
            if distinct > best:
                best, begin = distinct, start
            counts[word] -= 1
        begin = max(0, begin - width // 5)
        if begin > 0:  # start on a word, not inside one
            begin = flat.find(" ", begin) + 1 or begin
    end = min(len(flat), begin + width)
    if end < len(flat):  # end on a word too
        cut = flat.rfind(" ", begin, end)
        end = cut if cut > begin else end
    piece = flat[begin:end].strip()
    return ("…" if begin > 0 else "") + piece + ("…" if end < len(flat) else "")


class LocalIndex:
    """An in-memory BM25 index; callable as a search backend."""

    def __init__(
        self,
        docs: list[dict[str, Any]],
        postings: dict[str, list[list[int]]],
        corpus_dir: Path,
        base_url: str | None = None,
        snippet_chars: int = 300,
    ) -> None:
        self.docs = docs  # each: {"path": relative posix path, "title", "text", "length"}
        self.postings = postings  # term -> [[doc number, term frequency], ...]
        self.corpus_dir = corpus_dir
        self.base_url = base_url
        self.snippet_chars = snippet_chars
        lengths = [d["length"] for d in docs]
        self.avgdl = (sum(lengths) / len(lengths)) if lengths else 0.0

    @classmethod
    def build(cls, corpus_dir: Path, base_url: str | None = None) -> tuple[LocalIndex, list[str]]:
        """Index every supported file under corpus_dir; returns the index and skipped files."""
        corpus_dir = Path(corpus_dir).expanduser().resolve()
        if not corpus_dir.is_dir():
            raise IndexBuildError(f"{corpus_dir} is not a folder")
        docs: list[dict[str, Any]] = []
        postings: dict[str, list[list[int]]] = {}
        skipped: list[str] = []
        for path in sorted(corpus_dir.rglob("*")):
            relative = path.relative_to(corpus_dir)
            if path.suffix.lower() not in SUFFIXES or not path.is_file():
                continue
            if any(part.startswith(".") for part in relative.parts):
                continue  # hidden files and folders (.git, editor backups)
            try:
                title, text = read_document(path)
            except OSError:
                skipped.append(relative.as_posix())
                continue
            tokens = tokenize(f"{title}\n{text}")
            for term, tf in Counter(tokens).items():
                postings.setdefault(term, []).append([len(docs), tf])
            docs.append({"path": relative.as_posix(), "title": title, "text": text,
                         "length": len(tokens)})  # fmt: skip
        if not docs:  # an empty index would only ever answer "no results"
            unread = f" ({len(skipped)} could not be read)" if skipped else ""
            kinds = ", ".join(sorted(SUFFIXES))
            raise IndexBuildError(f"{corpus_dir} holds no documents to search{unread}: {kinds}")
        return cls(docs, postings, corpus_dir, base_url), skipped

    def save(self, index_path: Path) -> None:
        data = {
            "version": INDEX_VERSION,
            "corpus_dir": str(self.corpus_dir),
            "base_url": self.base_url,
            "docs": self.docs,
            "postings": self.postings,
        }
        index_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = index_path.with_name(index_path.name + ".tmp")
        tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        tmp.replace(index_path)  # a reader never sees a half-written index

    @classmethod
    def load(
        cls, index_path: Path, base_url: str | None = None, snippet_chars: int = 300
    ) -> LocalIndex:
        """Read an index file; base_url given here overrides the one it was built with."""
        try:
            data = json.loads(Path(index_path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ValueError(f"cannot read search index {index_path}: {e}") from e
        if not isinstance(data, dict) or data.get("version") != INDEX_VERSION:
            raise ValueError(f"{index_path} is not a version {INDEX_VERSION} search index")
        return cls(
            data["docs"],
            data["postings"],
            Path(data["corpus_dir"]),
            base_url or data.get("base_url"),
            snippet_chars,
        )

    def url_for(self, doc: dict[str, Any]) -> str:
        if self.base_url:
            return f"{self.base_url.rstrip('/')}/{quote(doc['path'])}"
        return (self.corpus_dir / doc["path"]).as_uri()

    def scores(self, terms: set[str]) -> dict[int, float]:
        """Okapi BM25 of every document holding at least one of the terms."""
        n = len(self.docs)
        scores: dict[int, float] = {}
        for term in terms:
            postings = self.postings.get(term, [])
            idf = math.log(1 + (n - len(postings) + 0.5) / (len(postings) + 0.5))
            for doc_id, tf in postings:
                norm = 1 - B + B * self.docs[doc_id]["length"] / (self.avgdl or 1)
                scores[doc_id] = scores.get(doc_id, 0.0) + idf * tf * (K1 + 1) / (tf + K1 * norm)
        return scores

    def search(self, query: str, max_results: int = 5) -> list[SearchHit]:
        terms = set(tokenize(query))
        ranked = sorted(self.scores(terms).items(), key=lambda item: (-item[1], item[0]))
        return [
            SearchHit(
                title=self.docs[doc_id]["title"],
                url=self.url_for(self.docs[doc_id]),
                snippet=snippet(self.docs[doc_id]["text"], terms, self.snippet_chars),
            )
            for doc_id, _score in ranked[:max_results]
        ]

    __call__ = search


def build_index(corpus_dir: Path, index_path: Path, base_url: str | None = None) -> IndexStats:
    """Index a folder and write the index file; what `edgeagent index DIR` runs."""
    index, skipped = LocalIndex.build(corpus_dir, base_url)
    try:
        index.save(Path(index_path))
    except OSError as e:  # a read-only or full cache
        why = e.strerror or str(e)
        raise IndexBuildError(f"cannot write the search index {index_path}: {why}") from None
    return IndexStats(
        corpus_dir=index.corpus_dir,
        index_path=Path(index_path),
        documents=len(index.docs),
        terms=len(index.postings),
        skipped=skipped,
    )
