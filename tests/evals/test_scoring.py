"""The text scorers: normalization, exact match, F1 and contains, on known right and wrong cases."""

from __future__ import annotations

import pytest

from evals.scoring import contains_answer, exact_match, f1, normalize, score_answer


def test_normalize_lowercases_and_drops_punctuation_articles_and_spaces() -> None:
    assert normalize("  The Zorvath   Bridge! ") == "zorvath bridge"
    assert normalize("An “old” mill, a dam.") == "old mill dam"
    assert normalize("48,200") == normalize("48200") == "48200"
    assert normalize("theatre another") == "theatre another"  # articles only as whole words


@pytest.mark.parametrize(
    ("prediction", "answers", "expected"),
    [
        ("Halvern", ["Halvern"], 1.0),
        ("halvern.", ["Halvern"], 1.0),
        ("The Halvern", ["Halvern"], 1.0),
        ("612 m", ["612 metres", "612 m"], 1.0),
        ("It was born in Halvern.", ["Halvern"], 0.0),
        ("Marrowdale", ["Halvern"], 0.0),
        ("", ["Halvern"], 0.0),
    ],
)
def test_exact_match(prediction: str, answers: list[str], expected: float) -> None:
    assert exact_match(prediction, answers) == expected


def test_f1_gives_partial_credit_and_takes_the_best_alias() -> None:
    assert f1("Elspeth Varnock", ["Elspeth Varnock"]) == 1.0
    assert f1("Varnock", ["Elspeth Varnock"]) == pytest.approx(2 / 3)
    assert f1("It was designed by Elspeth Varnock.", "Elspeth Varnock") == pytest.approx(0.5)
    assert f1("612", ["612 metres", "612"]) == 1.0
    assert f1("Marrowdale", ["Halvern"]) == 0.0
    assert f1("anything", []) == 0.0


@pytest.mark.parametrize(
    ("prediction", "answers", "expected"),
    [
        ("The designer was born in Halvern, I believe.", ["Halvern"], True),
        ("Its main span is 612 metres long.", ["612 metres", "612 m"], True),
        ("About 612 m.", ["612 metres", "612 m"], True),
        ("It has 48200 inhabitants", ["48,200"], True),
        ("It opened in 1612.", ["612"], False),  # whole tokens, not substrings
        ("Halverna", ["Halvern"], False),
        ("Elspeth designed it.", ["Elspeth Varnock"], False),  # every token, in order
        ("Varnock Elspeth", ["Elspeth Varnock"], False),
        ("The answer is unknown.", ["the"], False),  # an answer that normalizes to nothing
        ("I could not find it.", ["Halvern"], False),
    ],
)
def test_contains_answer(prediction: str, answers: list[str], expected: bool) -> None:
    assert contains_answer(prediction, answers) is expected


def test_score_answer_reports_all_three() -> None:
    scores = score_answer("It is in Halvern.", ["Halvern"])
    assert scores["em"] == 0.0 and scores["contains"] is True
    assert scores["f1"] == pytest.approx(0.4)  # 1 of 4 tokens, the whole answer
