"""Two eval runs side by side, per suite and category, with a paired test of the change.

`compare(folder_a, folder_b)` reads both run folders' per-case JSONL, matches the cases by id,
and prints per suite and category, then per headline group of the results page (BFCL's live
and non-live, search-QA's tools and notools, ...) and for the whole suite: each run's accuracy
with its case count, the change, how many cases were paired (and how many only one run
holds), the discordant pairs (right in A only, right in B only) and the exact McNemar p-value
on them; where the scores are not just 0 and 1 (search-QA's blend of "contains" and F1), also
a paired bootstrap p-value for the change in mean score. With every case paired, the
accuracies and the test are over the same cases; where some are unmatched, each accuracy is
over its own run's cases and the test over the paired ones only, as the table says.

Not here: running the suites, or which change is worth making (a p-value is not a verdict).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evals import runner
from evals.common import CaseResult
from evals.page import mode_of
from evals.stats import mcnemar, paired_bootstrap

HEADER = (
    "| suite | category | A | B | B − A | paired | unmatched A/B | A only right | "
    "B only right | p (McNemar) | p (mean score, bootstrap) |"
)


def compare(folder_a: Path, folder_b: Path) -> str:
    """The comparison table as Markdown, preceded by what each run is."""
    a, b = runner.read_run(folder_a), runner.read_run(folder_b)
    lines = [f"A: {_describe(a, folder_a)}", f"B: {_describe(b, folder_b)}", "", HEADER,
             "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for suite in suites_in(folder_a, folder_b):
        held_a = runner.held_results(folder_a / f"{suite}.jsonl")
        held_b = runner.held_results(folder_b / f"{suite}.jsonl")
        categories = sorted({r.category for r in [*held_a.values(), *held_b.values()]})
        groups = sorted({g for c in categories if (g := mode_of(suite, c))})
        for category in categories:
            in_a = [r for r in held_a.values() if r.category == category]
            in_b = [r for r in held_b.values() if r.category == category]
            lines.append(f"| {suite} | {category} | " + " | ".join(row(in_a, in_b)) + " |")
        for group in [*groups, "all"]:  # the page's headline groups (live, tools, rlm, ...)
            in_a = [r for r in held_a.values() if group in ("all", mode_of(suite, r.category))]
            in_b = [r for r in held_b.values() if group in ("all", mode_of(suite, r.category))]
            lines.append(f"| {suite} | **{group}** | " + " | ".join(row(in_a, in_b)) + " |")
    lines += ["", "p: exact two-sided McNemar test on the paired cases that one run got right "
              "and the other wrong; A and B: correct/cases of each run's own cases. Bootstrap: "
              "the paired cases' scores resampled 2,000 times (its least p is 1/2,001 ≈ 0.0005), "
              "where scores are not only 0 and 1."]  # fmt: skip
    return "\n".join(lines)


def suites_in(*folders: Path) -> list[str]:
    """The suites either folder holds results for, known ones in their usual order first."""
    found = {p.stem for f in folders for p in f.glob("*.jsonl")}
    return [s for s in runner.SUITES if s in found] + sorted(found - set(runner.SUITES))


def row(in_a: list[CaseResult], in_b: list[CaseResult]) -> list[str]:
    """The cells after suite and category: accuracies, change, pairing and the test."""
    by_id_b = {r.id: r for r in in_b}
    pairs = [(r, by_id_b[r.id]) for r in in_a if r.id in by_id_b]
    a_only = sum(x.correct and not y.correct for x, y in pairs)
    b_only = sum(y.correct and not x.correct for x, y in pairs)
    acc_a, acc_b = _accuracy(in_a), _accuracy(in_b)
    delta = f"{acc_b - acc_a:+.1%}" if acc_a is not None and acc_b is not None else "–"
    p = f"{mcnemar(a_only, b_only):.3g}" if pairs else "–"
    unmatched = f"{len(in_a) - len(pairs)}/{len(in_b) - len(pairs)}"
    scores = [(x.score, y.score) for x, y in pairs]
    graded = any(s not in (0.0, 1.0) for pair in scores for s in pair)
    a_scores, b_scores = [x for x, _ in scores], [y for _, y in scores]
    boot = paired_bootstrap(a_scores, b_scores, resamples=2000) if graded else None
    return [_cell(in_a), _cell(in_b), delta, str(len(pairs)), unmatched, str(a_only),
            str(b_only), p, "–" if boot is None else f"{boot:.3g}"]  # fmt: skip


def _accuracy(results: list[CaseResult]) -> float | None:
    return sum(r.correct for r in results) / len(results) if results else None


def _cell(results: list[CaseResult]) -> str:
    if not results:
        return "–"
    correct = sum(r.correct for r in results)
    return f"{correct / len(results):.1%} ({correct}/{len(results)})"


def _describe(run: dict[str, Any], folder: Path) -> str:
    adapter = f" + {run['adapter']}" if run.get("adapter") else ""
    commits = ", ".join(run.get("commits") or [run.get("commit", "?")])
    return f"{folder}: {run['model']}{adapter} ({run.get('date', '?')}, commits {commits})"
