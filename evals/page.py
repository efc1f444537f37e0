"""The results page: evals/RESULTS.md's text from the run folders' summaries.

`page(runs, command, tests, folder)` writes the header, a headline table (each suite's groups:
BFCL's live and non-live, search-QA's arms, long context's arms, the guard off and on), then
per suite what "right" means (`MEANING`), how much of its test split each model ran, which
commits produced its results, and every category with its cases and 95% Wilson interval; last
the published figures of small models, for context.

Not here: running the suites or reading run folders (evals.results, evals.runner), plots
(evals.plots).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from evals import runner
from evals.latency import BUDGET_S
from evals.stats import wilson

# A column whose name ends so is the model as users get it: its shipped adapter merged.
SHIPPED = "+adapter"
HERE = Path(__file__).parent
# Published figures, for context only: they are BFCL's overall scores over categories this
# suite does not run (multi-turn, agentic, memory, web search), with each lab's own prompts.
PUBLISHED = [
    ("LFM2-350M", "BFCLv3 22.95 · BFCLv4 12.29", "Liquid AI, LFM2.5-230M model card table"),
    ("LFM2.5-350M", "BFCLv3 44.11 · BFCLv4 21.86", "Liquid AI, LFM2.5-230M model card table"),
    ("LFM2.5-1.2B-Instruct", "BFCLv3 49.12", "Liquid AI, LFM2.5-1.2B-Instruct model card"),
    ("Qwen2.5-0.5B-Instruct (FC)", "BFCL overall 27.1", "BFCL paper (ICML 2025), Table 1"),
    ("Qwen3-0.6B (FC)", "BFCL V4 overall 23.93", "BFCL leaderboard, updated 2026-04-12"),
]

# What "right" means in each suite, and what its groups are: one line above each table.
MEANING = {
    "bfcl": "Right: BFCL's AST rules (function names, required parameters, types, allowed "
    "values); in the irrelevance categories, making no call. live and non-live are BFCL's "
    "two halves (user-contributed and expert-written functions). The all rows weigh each "
    "category by its size, and live_irrelevance is a quarter of the split: a model that "
    "never calls a function scores there, so read the categories. As in BFCL's checker, an "
    "output whose call cannot be read is no call: right in the irrelevance categories, wrong "
    "elsewhere. These verdicts equal bfcl-eval's own checker's on every output here "
    "(`python -m evals.bfcl_official`).",
    "searchqa": "Right: the normalized answer appears in the final answer; EM and F1 beside "
    "it. tools: the agent with the local search index and page fetch, where the loop starts a "
    "read of the best hit after a search and a separate focused call answers from the pages "
    "read; tools-free-choice: the same tools with those steers off, so the model picks what "
    "to read and writes its own answer; notools: the model alone, which should be near zero, "
    "since the facts are invented.",
    "longctx": "Right: the exact answer (numbers compared as numbers for count and "
    "aggregate). direct: the text's first lines that fit the model's whole context window, "
    "in the prompt (details say how much was cut); scaffold: a fixed search for the "
    "question's rarest term, then the model answers from what it found, with no tool turn; "
    "model: nothing searched for it, the model calls the search, count, read or python "
    "tools itself and writes its own answer; rlm (the default for users): both. The fixed "
    "search's evidence holds the answer of every needle, multikey and count test case, and "
    "of no aggregate, twostep or paraphrase one.",
    "doomloop": "Right: the case ended, not in a loop; answered: it ended with the right "
    "answer (every prompt's answer is checked); loops: the model's first turn looped (the "
    "guard's n-gram counted 4 times, or out of tokens mostly repeating; tool: also the same "
    "call twice). off: one greedy generation, guard disabled; on: the guard armed, a caught "
    "loop nudged and resampled once as the agent does (recovered: that resample ended). "
    "Both arms' first turns are decoded alike (batched, same dtype); agent-off/agent-on: "
    "python-tool episodes.",
    "latency": f"Right: any answer within {BUDGET_S:g} s, offline, whether or not it is a good "
    "one; the timings are what matter (whether the answer is right is the incar suite's "
    "question).",
    "incar": "Right: the offline answer checked by its kind: conversion and arithmetic, the "
    "stated number within 2% of the exact value; fact, an accepted answer named; control, no "
    "claimed action and a plain 'I cannot'; safety, the safe action (pull over, stop, rest) "
    "in the first sentence; chat, a short reply that claims no action. Timings are from the "
    "same episodes (0 where the pre-processor answered). As shipped, the pre-processor "
    "answers with no model turn what it understands: conversions and trip sums "
    "(`agent/incar.py`), requests to operate the car (`agent/controls.py`), warning lights "
    "(`agent/dashboard.py`) and phone use while driving (`agent/distraction.py`); the model "
    "without it, and the pre-processor on prompts written apart, are in evals/README, In-car "
    "quality, Arms.",
    "pytools": "Right: in an agent episode with only the python tool (greedy), the model's "
    "closing answer (or the one it gave at the step or repeated-call limit, tools withheld) "
    "states the task's value (a number equal to it, floats within 0.01; "
    "the string, case kept for upper and title case; a list's items in order). An answer the "
    "loop filled in for the model (an empty reply, or a repeated call answered from its "
    "earlier result) is wrong. Categories are kinds: arithmetic (products, sums of powers, "
    "factorials, powers and remainders, gcd/lcm, digit and range sums, averages), string "
    "(vowels, letter counts, lengths, case, reversals) and list (sorting, largest or "
    "smallest, distinct items, sums); the right move is one call, then the answer. Per case "
    "the JSONL also records repeated identical calls and empty answers.",
}


def mode_of(suite: str, category: str) -> str | None:
    """The group a category belongs to on the headline table: BFCL's live or non-live, or
    the mode after a category's last ':' or '/' (tools, rlm, guard off, ...)."""
    if suite == "bfcl":
        return "live" if category.startswith("live_") else "non-live"
    for sep in (":", "/"):
        if sep in category:
            return category.rsplit(sep, 1)[1]
    return None


def merge(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Several category rows as one: cases and counts summed, ratios and means weighted."""
    cases = sum(r["cases"] for r in rows)
    if not cases:
        return {}
    merged = {"cases": cases, "correct": sum(r["correct"] for r in rows)}
    merged["accuracy"] = merged["correct"] / cases
    if all("loop_ratio" in r for r in rows):
        merged["loop_ratio"] = sum(r["loop_ratio"] * r["cases"] for r in rows) / cases
    for key in runner.COUNTED:
        if any(key in r for r in rows):
            merged[key] = sum(r.get(key, 0) for r in rows)
    for key in runner.AVERAGED:
        if all(key in r for r in rows):
            merged[key] = sum(r[key] * r["cases"] for r in rows) / cases
    return merged


def cell(row: dict[str, Any]) -> str:
    """Accuracy, then correct/cases and the 95% Wilson interval, then suite figures."""
    if not row:
        return "–"
    low, high = wilson(row["correct"], row["cases"])
    loop = f", CI {low:.0%}–{high:.0%}".replace("%–", "–")
    loop += f", loops {row['loop_ratio']:.0%}" if "loop_ratio" in row else ""
    if row.get("recovered"):  # guard on: the loops it caught that the resample then answered
        loop += f", {row['recovered']} recovered"
    if "answered" in row:
        loop += f", {row['answered']} answered"
    elif "correct_answer" in row:
        n = row["correct_answer"]
        loop += f", {n} right answer{'' if n == 1 else 's'}"
    if "empty_answer" in row:
        loop += f", {row['empty_answer']} empty"
    if "repeated_identical_calls" in row:
        loop += f", {row['repeated_identical_calls']} repeated a call"
    if "em" in row and "f1" in row:
        loop += f", EM {row['em']:.0%}, F1 {row['f1']:.0%}"
    return f"{row['accuracy']:.0%} ({row['correct']}/{row['cases']}{loop})"


def headline(runs: list[dict[str, Any]]) -> list[str]:
    """One table: each suite's modes (live/non-live, tools/notools, direct/rlm, off/on)."""
    lines = ["| suite | group | " + " | ".join(r["model"] for r in runs) + " |"]
    lines.append("|---|---|" + "---|" * len(runs))
    for suite in runner.SUITES:
        summaries = [r["summary"].get(suite) for r in runs]
        if not any(summaries):
            continue
        groups = sorted({
            m for s in summaries if s for c in s["categories"] if (m := mode_of(suite, c))
        })  # fmt: skip
        for group in [*groups, "all"]:
            cells = []
            for s in summaries:
                rows = s["categories"] if s else {}
                chosen = [r for c, r in rows.items() if group in ("all", mode_of(suite, c))]
                cells.append(cell(merge(chosen)))
            lines.append(f"| {suite} | {group} | " + " | ".join(cells) + " |")
    return lines


def coverage(suite: str, runs: list[dict[str, Any]], tests: list | None) -> str:
    """How much of the test split each model's figures cover, per headline group."""
    if tests is None:
        return "Test split: size unknown (its data is not installed)."

    def counts(categories: list[str]) -> str:
        groups = Counter(mode_of(suite, c) for c in categories)
        parts = [f"{g} {n}" for g, n in sorted(groups.items()) if g]
        return f"{len(categories)}" + (f" ({', '.join(parts)})" if parts else "")

    ran = []
    for r in runs:
        rows = r["summary"].get(suite, {}).get("categories", {})
        held = [c for c, row in rows.items() for _ in range(row["cases"])]
        whole = " = all" if len(held) >= len(tests) else ""
        ran.append(f"{r['model']} {counts(held)}{whole}")
    return f"Test split: {counts([c.category for c in tests])}. Run: " + "; ".join(ran) + "."


def provenance(suite: str, runs: list[dict[str, Any]]) -> str:
    """Which commits produced each model's results of a suite, when it is not one known one:
    several (a folder grown by commands at different commits), or unrecorded (lines written
    before the results carried their commit)."""
    parts = []
    for r in runs:
        commits = r["summary"].get(suite, {}).get("commits", {})
        if len(commits) > 1:
            counts = ", ".join(f"{c} {n:,}" for c, n in commits.items())
            parts.append(f"{r['model']} mixed commits: {counts}")
        elif runner.UNRECORDED in commits:
            parts.append(f"{r['model']} unrecorded ({commits[runner.UNRECORDED]:,} cases)")
    if not parts:
        return ""
    return ("Commits per case: " + "; ".join(parts) + " (unrecorded: written before each "
            "result carried its commit; run.json's commit is the last command's).")  # fmt: skip


def case_seconds(run: dict[str, Any]) -> float:
    """The summed time of every case a run's summary counts."""
    return sum(
        row["mean_seconds"] * row["cases"]
        for suite in run["summary"].values()
        for row in suite["categories"].values()
    )


def page(
    runs: list[dict[str, Any]], command: str, tests: dict[str, list | None], folder: Path
) -> str:
    models = [r["model"] for r in runs]
    first = runs[0]
    hours = "; ".join(f"{r['model']} {case_seconds(r) / 3600:.1f} h" for r in runs)
    dtype_flag = "" if first["dtype"] == "float32" else f"--dtype {first['dtype']} "
    if first.get("quant", "none") != "none":
        dtype_flag += f"--quant {first['quant']} "
    batches = sorted({r.get("settings", {}).get("eval", {}).get("batch", 1) for r in runs})
    batched = (
        f", BFCL and guard-off doom-loop cases {' or '.join(map(str, batches))} at a time"
        if batches[-1] > 1
        else ""
    )
    lines = [
        "# Eval results: the embedded models",
        "",
        "Every test case of every suite: `.venv/bin/python -m evals.results --limits all "
        f"{dtype_flag}--resume` (2 CPU cores, {first['dtype']}, greedy{batched}; it keeps the "
        "cases a run folder already holds, so it can be stopped and started again). This "
        f"page: `{command}`, "
        f"from the runs in `{_shown(folder)}/<model>/` (per-case JSONL; run.json holds settings, "
        f"commit and date; {first['date'][:10]}, commit {first['commit']}). Test split "
        "only. Each cell is accuracy (correct/cases, CI: the 95% Wilson interval); each "
        "suite says how much of its test split ran, and on a few cases one case is many "
        f"points. A `{SHIPPED}` column is the model as users get it: its shipped LoRA adapter "
        f"merged, default settings. Time, the sum of the per-case times: {hours}.",
        "",
        "## Headline",
        "",
        *headline(runs),
        "",
    ]
    for suite in runner.SUITES:
        if not any(suite in r["summary"] for r in runs):
            continue
        lines += [f"## {suite}", "", MEANING[suite], coverage(suite, runs, tests.get(suite))]
        lines += [x for x in [provenance(suite, runs)] if x] + [""]
        lines += [f"![{suite}](results/{suite}.png)", ""]
        lines += ["| category | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
        summaries = [r["summary"].get(suite, {"categories": {}, "all": {}}) for r in runs]
        categories = sorted({c for s in summaries for c in s["categories"]})
        for category in [*categories, "all"]:
            rows = [s["all"] if category == "all" else s["categories"].get(category, {})
                    for s in summaries]  # fmt: skip
            name = "**all**" if category == "all" else category
            lines.append(f"| {name} | " + " | ".join(cell(r) for r in rows) + " |")
        for r, s in zip(runs, summaries, strict=True):
            for key, t in s.get("timings", {}).items():
                lines.append(
                    f"\n{r['model']} {key}: median {t['median']:.2f}, mean {t['mean']:.2f}, "
                    f"p90 {t['p90']:.2f}"
                )
        lines.append("")
    lines += [
        "## Published figures, for context",
        "",
        "Not comparable one to one: these are overall scores over BFCL's whole set (multi-turn,",
        "agentic and more), with each lab's own handler; our suite runs the single-turn AST",
        "categories only, with our prompt and the model's own chat template.",
        "",
        "| model | figure | source |",
        "|---|---|---|",
        *(f"| {m} | {f} | {s} |" for m, f, s in PUBLISHED),
        "",
    ]
    return "\n".join(lines)


def _shown(folder: Path) -> str:
    """A runs folder as the page names it: relative to the project where it lies inside."""
    try:
        return str(folder.resolve().relative_to(HERE.parent))
    except ValueError:
        return str(folder)
