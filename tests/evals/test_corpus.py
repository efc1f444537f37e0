"""The search-QA corpus generator: deterministic, and every question answerable from its docs."""

from __future__ import annotations

from pathlib import Path

import pytest

from evals.corpus import Question, generate, read_questions, write_corpus
from evals.scoring import contains_answer, normalize
from tools.index import read_document


def files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*")
            if p.is_file()}  # fmt: skip


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Question]]:
    folder = tmp_path_factory.mktemp("corpus")
    return folder, write_corpus(folder, seed=7, n_entities=30)


def text_of(folder: Path, doc: str) -> str:
    """What the search index (and so the agent) reads: HTML through trafilatura."""
    title, text = read_document(folder / doc)
    return f"{title}\n{text}"


def test_same_seed_same_bytes_other_seed_other_corpus(tmp_path: Path) -> None:
    write_corpus(tmp_path / "a", seed=1, n_entities=20)
    write_corpus(tmp_path / "b", seed=1, n_entities=20)
    write_corpus(tmp_path / "c", seed=2, n_entities=20)
    a, b, c = (files(tmp_path / x) for x in "abc")
    assert a == b
    assert a["questions.jsonl"] != c["questions.jsonl"]
    assert set(a) != set(c)  # other names, so other file names


def test_layout_and_formats(corpus: tuple[Path, list[Question]]) -> None:
    folder, questions = corpus
    written = files(folder)
    docs = [name for name in written if name.startswith("docs/")]
    assert len(docs) == 30 and "questions.jsonl" in written
    assert {Path(d).suffix for d in docs} == {".html", ".md", ".txt"}
    lengths = [len(written[d]) for d in docs if d.endswith((".md", ".txt"))]
    assert min(lengths) >= 1400 and max(lengths) <= 4500
    assert read_questions(folder / "questions.jsonl") == questions


def test_questions_are_unique_and_well_formed(corpus: tuple[Path, list[Question]]) -> None:
    folder, questions = corpus
    assert len({q.id for q in questions}) == len(questions)
    assert len({normalize(q.question) for q in questions}) == len(questions)
    assert {q.category for q in questions} == {"single", "two-hop"}
    for q in questions:
        assert len(q.docs) == q.hops == (1 if q.category == "single" else 2)
        assert all((folder / d).is_file() for d in q.docs)
        assert not contains_answer(q.question, [q.answer, *q.aliases]), q.id


def test_answers_appear_in_the_evidence(corpus: tuple[Path, list[Question]]) -> None:
    folder, questions = corpus
    for q in questions:
        assert contains_answer(text_of(folder, q.docs[-1]), [q.answer]), q.id


def test_two_hop_chains_resolve_and_need_both_docs(corpus: tuple[Path, list[Question]]) -> None:
    folder, questions = corpus
    two_hop = [q for q in questions if q.hops == 2]
    assert len(two_hop) >= 5
    for q in two_hop:
        first, second = (text_of(folder, d) for d in q.docs)
        assert q.via and normalize(q.via) in normalize(first), q.id  # hop 1 names the middle
        assert normalize(second).startswith(normalize(q.via)), q.id  # the middle one's own doc
        assert normalize(q.via) not in normalize(q.question), q.id
        assert not contains_answer(first, [q.answer, *q.aliases]), q.id  # not a shortcut
        assert contains_answer(second, [q.answer]), q.id


def test_names_are_unique_across_entities() -> None:
    docs, _ = generate(seed=3, n_entities=40)
    titles = [text.split("\n", 1)[0] for path, text in docs.items() if path.endswith(".txt")]
    assert len(set(titles)) == len(titles)
    stems = [Path(p).stem for p in docs]
    assert len(set(stems)) == len(stems)


def test_too_few_entities_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least 5"):
        generate(seed=0, n_entities=4)
