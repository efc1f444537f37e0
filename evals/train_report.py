"""What a training run writes about itself: the figures of every step (`OUT/history.jsonl`),
their curve (`OUT/curve.png`) and the report (`OUT/report.md`: the command, the settings, the
data counts, the curve, and the test split before and after, case by case, with the doom-loop
ratio per guard setting).

Not here: the run (`evals.train`), comparing two eval runs (`evals.compare`).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from evals import runner
from evals.compare import compare
from model.train import distributed

Method = Literal["sft", "dpo", "rl"]


def write_history(out: Path, history: list[dict[str, float]]) -> None:
    """Append figures to OUT/history.jsonl as each step ends, so a stopped run keeps them and
    its resumed run's curve shows every step (the first process only)."""
    if not distributed.is_main():
        return
    with (out / "history.jsonl").open("a") as f:
        for row in history:
            f.write(json.dumps(row) + "\n")


def read_history(out: Path) -> list[dict[str, float]]:
    path = out / "history.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_curve(history: list[dict[str, float]], method: Method, path: Path) -> bool:
    """Reward per step (RL) or loss and margin per step (SFT, DPO); False with nothing to plot."""
    keys = {"rl": ["reward", "greedy_reward"], "dpo": ["loss", "margin"], "sft": ["loss"]}[method]
    rows = [r for r in history if "step" in r]
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for key in keys:
        points = [(r["step"], r[key]) for r in rows if key in r]
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", label=key)
    ax.set_xlabel("optimizer step")
    ax.set_title(f"{method}: " + ", ".join(keys))
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def loop_ratios(run: dict[str, Any]) -> dict[str, float]:
    """The doom-loop ratio of an eval run's doomloop suite per guard setting (its categories are
    FAMILY:off and FAMILY:on), over all families."""
    rows = run.get("summary", {}).get("doomloop", {}).get("categories", {})
    looped: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for category, row in rows.items():
        if "loop_ratio" in row:
            guard = category.rpartition(":")[2]
            looped[guard][0] += row["loop_ratio"] * row["cases"]
            looped[guard][1] += row["cases"]
    return {guard: n / cases for guard, (n, cases) in looped.items() if cases}


def report_markdown(
    method: Method,
    suite: str,
    settings: BaseModel,
    commands: str,
    data: dict[str, Any],
    before: Path | None,
    after: Path | None,
) -> str:
    """The report of `method` trained on `suite` with `settings`; `before` and `after` are eval
    run folders, compared case by case."""
    lines = [
        f"# Training report: {method} on {suite} (train split)",
        "",
        f"Command: `{commands}`",
        "",
        "Settings: `" + settings.model_dump_json() + "`",
        "",
        "Data: " + ", ".join(f"{k} {v}" for k, v in data.items()),
        "",
        "![curve](curve.png)",
        "",
    ]
    if before and after:
        lines += ["## Test split, before and after", "", compare(before, after), ""]
        off_on = (loop_ratios(runner.read_run(before)), loop_ratios(runner.read_run(after)))
        if off_on[0] or off_on[1]:
            lines += ["## Doom-loop ratio", "", "| guard | before | after |", "|---|---|---|"]
            for c in sorted(set(off_on[0]) | set(off_on[1])):
                b, a = (f"{x[c]:.1%}" if c in x else "–" for x in off_on)
                lines.append(f"| {c} | {b} | {a} |")
            lines.append("")
    return "\n".join(lines)
