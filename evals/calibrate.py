"""Sizing a training step on the dev set: the share of a step's change to keep, chosen so the
model declines where no function fits about as often as a target rate.

Why: runs of the same recipe end with their line between calling and declining in different
places (the shipped eighth declines on 168 of the 192 dev no-fit cases, the recipe's rerun on
182 and calls too little where a function fits), and a step trained on the model's own pairs
moves every run's line by about as much (evals/TRAINING.md, "A tenth step tried on both
eighths"). A fixed share of it cannot bring both to the same place; a share chosen by
measurement can.

How: the shares `SHARES` of the step's change (`model.adapter.average` of the start and the
step, weights 1 - s and s) are tried in order on the BFCL dev split's no-fit cases
(`evals.references.no_fit_dev_cases`, greedy); the first whose decline count is at or below
`target` x cases ends the search, and it or the share before it is kept, whichever count is
nearer the target (the smaller share on a tie; the nearer of the last two if none gets
there). So it
assumes the rate falls as the share grows, as it did on both runs measured. Quarters, because
an eighth of the step moved the dev count by about 4 of 192, inside its noise.

Each share's per-case results are kept in `OUT/dev/` and read back when a run is repeated
(a stopped run goes on where it was).

Not here: the step itself (`edgeagent train dpo --anchors`, `evals.anchors`), loading a model
(the caller's `load`), the adapters' arithmetic (`model.adapter`).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, Field

from agent.settings import Settings
from evals import bfcl, runner
from evals.choices import CALIBRATION_TARGET
from evals.common import CaseResult, EvalCase
from evals.stats import wilson
from model.adapter import CONFIG, WEIGHTS, average
from model.generate import Generator

SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)
RECORD = "calibration.json"

Evaluate = Callable[[Path, Path], list[CaseResult]]  # (adapter, per-case jsonl) -> results


class Tried(BaseModel, frozen=True):
    """One share of the step, measured on the dev split."""

    share: float
    declined: int
    cases: int
    low: float = Field(description="95% Wilson interval of the decline rate")
    high: float


class Calibration(BaseModel):
    start: str
    step: str
    target: float
    rank: int | None
    chosen: float = Field(description="the share of the step's change kept")
    tried: list[Tried]


def calibrate(
    start: Path,
    step: Path,
    out: Path,
    evaluate: Evaluate,
    target: float = CALIBRATION_TARGET,
    rank: int | None = None,
) -> Calibration:
    """Try the shares in order, keep the one nearest the target as the adapter in `out`, and
    write `out/calibration.json`. `evaluate(adapter, jsonl)` runs the dev cases with that
    adapter, appending each result to `jsonl` (and skipping those already there)."""
    if not 0.0 < target < 1.0:
        raise ValueError(f"the target decline rate is a fraction between 0 and 1; got {target}")
    tried: list[Tried] = []
    adapters: dict[float, Path] = {}
    for share in SHARES:
        adapters[share] = (
            start
            if share == 0
            else average([start, step], [1 - share, share], out / "dev" / f"share-{share}", rank)
        )
        results = evaluate(adapters[share], out / "dev" / f"share-{share}.jsonl")
        declined = sum(r.correct for r in results)
        low, high = wilson(declined, len(results))
        tried.append(Tried(share=share, declined=declined, cases=len(results), low=low, high=high))
        if declined <= target * len(results):
            break
    chosen = nearest(tried, target)
    keep(adapters[chosen], out)
    record = Calibration(start=str(start), step=str(step), target=target, rank=rank,
                         chosen=chosen, tried=tried)  # fmt: skip
    (out / RECORD).write_text(record.model_dump_json(indent=1) + "\n")
    return record


def nearest(tried: list[Tried], target: float) -> float:
    """The last share tried or the one before it, whichever rate is nearer `target`."""
    last = tried[-1]
    if len(tried) == 1:
        return last.share
    before = tried[-2]
    gap = lambda t: abs(t.declined / t.cases - target)  # noqa: E731
    return before.share if gap(before) <= gap(last) else last.share


def keep(adapter: Path, out: Path) -> None:
    """Copy the chosen adapter's two files into `out` (nothing to do where it is `out`)."""
    out.mkdir(parents=True, exist_ok=True)
    for name in (CONFIG, WEIGHTS):
        if (adapter / name).resolve() != (out / name).resolve():
            shutil.copyfile(adapter / name, out / name)


def dev_runner(
    load: Callable[[Path], Generator],
    cases: list[EvalCase],
    settings: Settings,
    bars: Callable[[str, list], runner.Progress | None] = lambda name, cases: None,
) -> Evaluate:
    """An `Evaluate` that runs `cases` (greedy, `settings.eval.batch` at once) on the model
    `load(adapter)` gives, appending to the jsonl; the cases already there are read back."""

    def evaluate(adapter: Path, jsonl: Path) -> list[CaseResult]:
        held = {}
        if jsonl.is_file():
            held = {r.id: r for r in map(CaseResult.model_validate_json, jsonl.open())}
        todo = [c for c in cases if c.id not in held]
        if todo:
            progress = bars(jsonl.stem, todo)
            jsonl.parent.mkdir(parents=True, exist_ok=True)
            with jsonl.open("a") as f:
                for done, r in enumerate(bfcl.run_cases(load(adapter), todo, settings), 1):
                    f.write(r.model_dump_json() + "\n")
                    f.flush()  # a stopped run keeps what it measured
                    held[r.id] = r
                    if progress:
                        progress("bfcl", done, len(todo), r)
        return [held[c.id] for c in cases]

    return evaluate
