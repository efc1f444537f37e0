"""The statistics the eval pages use: a 95% interval for an accuracy, a paired test for a change.

- `wilson(correct, cases)`: the Wilson score interval, which stays inside [0, 1] and is sane at
  0/n and n/n, where the normal approximation is not.
- `mcnemar(a_only, b_only)`: the exact two-sided McNemar test on the discordant pairs of a
  paired comparison (cases right in one run only), i.e. a binomial test of b against (b + c) / 2.
- `paired_bootstrap(a, b)`: a two-sided p-value for the mean difference of paired non-binary
  scores (resampling the cases), for scores that are not right/wrong.

Not here: which cases are paired (`evals.runner.compare` matches them by id), any formatting.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

Z95 = 1.959963984540054  # the normal quantile for a two-sided 95% interval


def wilson(correct: int, cases: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for `correct` out of `cases`; (0, 1) when there are no cases."""
    if cases <= 0:
        return 0.0, 1.0
    if not 0 <= correct <= cases:
        raise ValueError(f"correct must be within 0..{cases}, got {correct}")
    p = correct / cases
    denominator = 1 + z * z / cases
    centre = (p + z * z / (2 * cases)) / denominator
    half = z * math.sqrt(p * (1 - p) / cases + z * z / (4 * cases * cases)) / denominator
    # Clamp rounding noise, and make the ends exact where the count is 0 or all.
    low = 0.0 if correct == 0 else max(0.0, centre - half)
    high = 1.0 if correct == cases else min(1.0, centre + half)
    return low, high


def mcnemar(a_only: int, b_only: int) -> float:
    """Exact two-sided McNemar p-value: `a_only` cases right in A alone, `b_only` in B alone.
    Under no change each discordant pair goes either way with probability 1/2."""
    if a_only < 0 or b_only < 0:
        raise ValueError("discordant counts cannot be negative")
    n = a_only + b_only
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(a_only, b_only) + 1))
    return min(1.0, 2 * tail / 2**n)


def paired_bootstrap(
    a: Sequence[float], b: Sequence[float], resamples: int = 10_000, seed: int = 0
) -> float:
    """Two-sided p-value for mean(b - a) = 0: how often the resampled mean difference, shifted
    to have mean zero, is at least as far from zero as the observed one."""
    if len(a) != len(b):
        raise ValueError(f"paired scores need equal lengths, got {len(a)} and {len(b)}")
    if not a:
        return 1.0
    diffs = [y - x for x, y in zip(a, b, strict=True)]
    observed = sum(diffs) / len(diffs)
    centred = [d - observed for d in diffs]
    rng = random.Random(seed)
    n = len(diffs)
    extreme = sum(
        abs(sum(rng.choices(centred, k=n)) / n) >= abs(observed) - 1e-12 for _ in range(resamples)
    )
    return (extreme + 1) / (resamples + 1)


def interval_text(correct: int, cases: int) -> str:
    """ "12–31%": the 95% Wilson interval as the pages print it."""
    low, high = wilson(correct, cases)
    return f"{low:.0%}–{high:.0%}".replace("%–", "–")
