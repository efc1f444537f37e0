"""Text scorers for short factual answers: SQuAD-style normalization, exact match, token F1,
and "contains the answer".

Every scorer takes the prediction and a list of acceptable answers (the answer and its
aliases) and takes the best over them. Normalization: lowercase, drop punctuation (any Unicode
punctuation, so "48,200" and "48200" are the same answer), drop the articles a/an/the, collapse
whitespace.

Which to trust:
- `exact_match` is strict: a small model that answers "It opened in 1931." scores 0.
- `f1` gives partial credit for overlapping tokens and punishes padding, so it favours short
  answers; a correct answer in a ten-word sentence scores about 0.3.
- `contains_answer` asks whether the normalized answer appears as a whole run of tokens in the
  normalized prediction ("612" is not found inside "1612"). It is the right notion of correct
  for sentence answers, but it can be gamed by listing many candidates; a reward built on it
  should add `f1` or a length penalty.

Plain functions with no state: the eval suites and the trainer's rewards call the same code.
Not here: running a model, or judging answers with one.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable

ARTICLES = re.compile(r"\b(a|an|the)\b")


def _strip_punctuation(text: str) -> str:
    return "".join(ch for ch in text if not unicodedata.category(ch).startswith("P"))


def normalize(text: str) -> str:
    """Lowercase, no punctuation, no articles, single spaces."""
    text = _strip_punctuation(text.lower())
    text = ARTICLES.sub(" ", text)
    return " ".join(text.split())


def tokens(text: str) -> list[str]:
    return normalize(text).split()


def _answers(answers: str | Iterable[str]) -> list[str]:
    """Accept one answer or many; drop those that normalize to nothing."""
    items = [answers] if isinstance(answers, str) else list(answers)
    return [a for a in items if normalize(a)]


def exact_match(prediction: str, answers: str | Iterable[str]) -> float:
    """1.0 when the normalized prediction equals a normalized answer, else 0.0."""
    pred = normalize(prediction)
    return float(any(pred == normalize(a) for a in _answers(answers)))


def _f1_one(pred: list[str], gold: list[str]) -> float:
    common = Counter(pred) & Counter(gold)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def f1(prediction: str, answers: str | Iterable[str]) -> float:
    """Token-overlap F1 between prediction and the best-matching answer, in [0, 1]."""
    pred = tokens(prediction)
    return max((_f1_one(pred, tokens(a)) for a in _answers(answers)), default=0.0)


def _has_run(haystack: list[str], needle: list[str]) -> bool:
    size = len(needle)
    return any(haystack[i : i + size] == needle for i in range(len(haystack) - size + 1))


def contains_answer(prediction: str, answers: str | Iterable[str]) -> bool:
    """Whether some answer's normalized tokens appear, in order and adjacent, in the prediction."""
    pred = tokens(prediction)
    return any(_has_run(pred, tokens(a)) for a in _answers(answers))


def score_answer(prediction: str, answers: str | Iterable[str]) -> dict[str, float | bool]:
    """All three at once: {"em", "f1", "contains"}."""
    return {
        "em": exact_match(prediction, answers),
        "f1": f1(prediction, answers),
        "contains": contains_answer(prediction, answers),
    }
