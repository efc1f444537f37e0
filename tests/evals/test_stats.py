"""The statistics: Wilson intervals and the paired tests, against values worked out by hand."""

from __future__ import annotations

import math

import pytest

from evals.stats import interval_text, mcnemar, paired_bootstrap, wilson


def test_wilson_matches_the_closed_form_and_stays_in_bounds() -> None:
    low, high = wilson(5, 10)  # p = 1/2: centre 1/2, half-width z*sqrt(1/40 + z^2/400)/(1+z^2/10)
    z = 1.959963984540054
    half = z * math.sqrt(0.25 / 10 + z * z / 400) / (1 + z * z / 10)
    assert low == pytest.approx(0.5 - half) and high == pytest.approx(0.5 + half)
    assert (round(low, 4), round(high, 4)) == (0.2366, 0.7634)
    assert wilson(0, 10) == (0.0, pytest.approx(z * z / (10 + z * z)))  # 0/n: [0, z²/(n+z²)]
    assert wilson(10, 10)[1] == 1.0 and wilson(0, 0) == (0.0, 1.0)
    assert interval_text(23, 64) == "25–48%"
    with pytest.raises(ValueError):
        wilson(11, 10)


def test_exact_mcnemar_on_discordant_pairs() -> None:
    assert mcnemar(0, 10) == 2 / 1024  # ten changes, all one way
    assert mcnemar(10, 0) == 2 / 1024
    assert mcnemar(1, 9) == 2 * 11 / 1024  # 2 * (C(10,0) + C(10,1)) / 2^10
    assert mcnemar(3, 3) == 1.0 and mcnemar(0, 0) == 1.0
    assert mcnemar(0, 1) == 1.0  # one change says nothing


def test_paired_bootstrap_sees_a_large_shift_and_not_noise() -> None:
    a = [0.1 * (i % 5) for i in range(40)]
    assert paired_bootstrap(a, [x + 0.5 for x in a], resamples=2000) < 0.01
    noise = [x + (0.05 if i % 2 else -0.05) for i, x in enumerate(a)]
    assert paired_bootstrap(a, noise, resamples=2000) > 0.5
    with pytest.raises(ValueError):
        paired_bootstrap([1.0], [1.0, 2.0])
