"""The eval plots: accuracy per category as bars with their 95% Wilson intervals, for one run
(`plot_run`, in a run folder) or several models side by side (`plot_models`, on the results
page).

Not here: what the figures are (`evals.runner.summarize`), the pages around them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evals.stats import wilson


def _pyplot() -> Any:
    """matplotlib's pyplot without a display; imported late, since most commands never plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_run(suite: str, summary: dict[str, Any], path: Path, title: str) -> None:
    """Accuracy per category of one run, with 95% intervals."""
    plt = _pyplot()
    rows = summary["categories"]
    names = list(rows)
    fig, ax = plt.subplots(figsize=(max(5, 0.8 * len(names) + 2), 3.6))
    values = [rows[n]["accuracy"] for n in names]
    bars = ax.bar(names, values, color="#4878a8", yerr=error_bars(list(rows.values())),
                  capsize=3, error_kw={"elinewidth": 0.8})  # fmt: skip
    ax.bar_label(bars, labels=[f"{v:.0%}" for v in values], fontsize=8, padding=2)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("accuracy")
    ax.set_title(f"{suite}: {title}", fontsize=10)
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def error_bars(rows: list[dict[str, Any]]) -> list[list[float]]:
    """Each row's 95% Wilson interval as matplotlib's yerr: distances below and above."""
    spans = [wilson(r["correct"], r["cases"]) if r else (0.0, 0.0) for r in rows]
    accs = [r.get("accuracy", 0.0) for r in rows]
    return [[a - lo for a, (lo, _) in zip(accs, spans, strict=True)],
            [hi - a for a, (_, hi) in zip(accs, spans, strict=True)]]  # fmt: skip


def plot_models(suite: str, runs: list[dict[str, Any]], path: Path) -> None:
    """Accuracy per category, one bar per model."""
    plt = _pyplot()
    categories = sorted(
        {c for r in runs for c in r["summary"].get(suite, {}).get("categories", {})}
    )
    width = 0.8 / len(runs)
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(categories) + 2), 3.8))
    for i, run in enumerate(runs):
        rows = run["summary"].get(suite, {}).get("categories", {})
        xs = [j + i * width for j in range(len(categories))]
        values = [rows.get(c, {}).get("accuracy", 0.0) for c in categories]
        ax.bar(xs, values, width, label=run["model"])
        bars = [rows.get(c, {}) for c in categories]
        ax.errorbar(xs, values, yerr=error_bars(bars), fmt="none", ecolor="black",
                    elinewidth=0.8, capsize=2)  # fmt: skip
    ax.set_xticks([j + width * (len(runs) - 1) / 2 for j in range(len(categories))], categories)
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy")
    ax.set_title(suite)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
