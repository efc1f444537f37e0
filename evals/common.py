"""What every eval suite shares: the case and result types, the fixed train/test split.

A suite is a module with two functions:
    load_cases(split, limit=None, data=None) -> list[EvalCase]
    run_case(generator, case, settings) -> CaseResult
and may have a third, to run many cases together (BFCL decodes several at once):
    run_cases(generator, cases, settings) -> Iterator[CaseResult], in the order they finish
The runner (`evals.runner`) loads the model once, runs the cases, and writes the results.
Scores are in [0, 1]; the scorers are plain functions that the trainer reuses as rewards.

Not here: how any one suite builds its prompts or scores its answers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, Field

Split = Literal["train", "test", "all"]


def split_of(case_id: str) -> Literal["train", "test"]:
    """Half the cases are test, by a hash of the id: the same on every machine and every run,
    and independent of which other cases exist, so adding cases never moves old ones."""
    digest = hashlib.sha256(case_id.encode()).digest()
    return "test" if digest[0] % 2 == 0 else "train"


def split_of_case(case_id: str) -> Literal["train", "test"]:
    """The split of an eval case as its suite assigns it: an arm or variant after a ':' (doom
    loops' `count-3:off`, search-QA's `q12:tools`, long context's `needle-10000-0:rlm`) shares
    the split of the question before it, so every arm of a question sits on the same side."""
    return split_of(case_id.split(":", 1)[0])


def in_split(case_id: str, split: Split) -> bool:
    return split == "all" or split_of(case_id) == split


class EvalCase(BaseModel):
    suite: str
    id: str
    category: str = ""
    prompt: str = ""
    expected: Any = None
    data: dict[str, Any] = Field(default_factory=dict)  # whatever else the suite needs


class CaseResult(BaseModel):
    suite: str
    id: str
    category: str = ""
    score: float = Field(ge=0.0, le=1.0)
    correct: bool
    output: str = ""
    expected: Any = None
    details: dict[str, Any] = Field(default_factory=dict)
    seconds: float = 0.0
    trajectory_id: str | None = None
    # Provenance, stamped by the runner; None on lines written before it recorded them.
    commit: str | None = None  # the short git commit of the code that ran the case
    settings_hash: str | None = None  # `settings_hash(settings)` of the settings it ran under


def settings_hash(settings: BaseModel) -> str:
    """12 hex digits naming a settings object's values: equal settings, equal hash."""
    text = settings.model_dump_json()  # fields in their declared order, so stable
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def guard_stops(steps: Iterable[Any]) -> int:
    """How many of an episode's turns the doom-loop guard stopped (finish reason "doom_loop"),
    recorded per case so that `evals.results --redo-stopped` finds them after a change to the
    guard, a middle turn included."""
    return sum(getattr(s, "finish_reason", None) == "doom_loop" for s in steps)
