"""The in-car suite: are offline answers right, honest and quick? Quality and latency at once.

Generated prompts (`evals.incar_data`: conversions, arithmetic, facts, car controls, safety,
small talk; category = kind), or a JSONL file of the same items (`--data`), each run as an
offline agent episode exactly as the app's in-car mode runs it (`agent.loop.run_episode` with
`settings.offline`: no tools, the offline system prompt), greedy, at most `MAX_NEW_TOKENS`
new tokens. Score 1 when the episode ended on an answer and the kind's checker
(`evals.incar_check.judge`) finds it right; details say why (number found against the value,
claim detected, safe action named) beside the timings the runner summarises: `ttft_s` (the
first turn's time to first token), `total_s`, `decode_s`, `tokens`, `tok_s`, `prompt_tokens`,
`reused_tokens` (the generator keeps its prefix cache between cases, as the app does between
turns; the first case of a run pays for the system prompt).

Not here: the app's own startup or model loading, or any judging by a model.
"""

from __future__ import annotations

import hashlib
import json
import time
from itertools import zip_longest
from pathlib import Path
from typing import Any

from agent.loop import run
from agent.settings import Settings
from agent.trajectory import Trajectory
from evals.common import CaseResult, EvalCase, Split, guard_stops, in_split
from evals.incar_check import CHECKS, judge
from evals.incar_data import KINDS, Item, items
from model.generate import Generator

SUITE = "incar"
MAX_NEW_TOKENS = 96  # a one- or two-sentence answer; more is a failure of concision anyway


def load_cases(split: Split, limit: int | None = None, data: Any = None) -> list[EvalCase]:
    """The prompts of `split` (generated, or the JSONL file `data`), kinds interleaved so that
    a small limit still samples every kind."""
    found = _read_items(Path(data).expanduser()) if data is not None else items()
    by_kind: dict[str, list[EvalCase]] = {}
    for case_id, kind, prompt, expected in found:
        if in_split(case_id, split):
            case = EvalCase(suite=SUITE, id=case_id, category=kind, prompt=prompt,
                            expected=expected)  # fmt: skip
            by_kind.setdefault(kind, []).append(case)
    order = [*KINDS, *sorted(set(by_kind) - set(KINDS))]
    mixed = [sorted(by_kind.get(k, []), key=_shuffled) for k in order]
    rounds = zip_longest(*mixed)
    cases = [c for group in rounds for c in group if c is not None]
    return cases[:limit] if limit is not None else cases


def _shuffled(case: EvalCase) -> str:
    """A fixed order within a kind that mixes its templates (km/miles beside °C/°F...)."""
    return hashlib.sha256(f"order:{case.id}".encode()).hexdigest()


def _read_items(path: Path) -> list[Item]:
    """`{"id", "kind", "prompt", "expected": {"check": ..., ...}}` a line; a wrong line is a
    one-line error naming it, before any model loads."""
    if not path.is_file():
        raise FileNotFoundError(f"incar data {path} is not a file (JSONL: id, kind, prompt, "
                                "expected)")  # fmt: skip
    found: list[Item] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            item = (str(row["id"]), str(row["kind"]), str(row["prompt"]), dict(row["expected"]))
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}:{number}: not an incar item ({e!r})") from None
        if item[3].get("check") not in CHECKS:
            raise ValueError(f"{path}:{number}: expected.check must be one of {list(CHECKS)}")
        if missing := _missing(item[3]):
            raise ValueError(f"{path}:{number}: a {item[3]['check']} check needs {missing}")
        found.append(item)
    return found


def _missing(expected: dict[str, Any]) -> str:
    """What a check's expected answer lacks, in words; empty when it is whole."""
    check = expected["check"]
    if check == "number" and "value" not in expected and not {"low", "high"} <= set(expected):
        return "a value, or low and high"
    need = {"text": "accepted", "safety": "safe"}.get(check)
    if need and not (isinstance(expected.get(need), list) and expected[need]):
        return f"a non-empty list {need}"
    return ""


def offline_settings(settings: Settings) -> Settings:
    """In-car mode: offline (no tools, the offline system prompt), greedy, short answers."""
    agent = settings.agent.model_copy(update={"log": False})
    sampling = settings.sampling.model_copy(
        update={
            "temperature": 0.0,
            "max_new_tokens": min(settings.sampling.max_new_tokens, MAX_NEW_TOKENS),
        }
    )
    return settings.model_copy(update={"offline": True, "agent": agent, "sampling": sampling})


def offline_episode(
    generator: Generator, prompt: str, settings: Settings
) -> tuple[Trajectory, float]:
    """One in-car episode, and its wall time in seconds."""
    start = time.perf_counter()
    traj = run(generator, prompt, {}, offline_settings(settings), mode="offline")
    return traj, time.perf_counter() - start


def timings(traj: Trajectory, total_s: float) -> dict[str, Any]:
    """The numbers the runner summarises, from the episode's steps."""
    steps = traj.steps
    tokens = traj.sampled_tokens
    decode_s = sum(s.decode_s for s in steps)
    return {
        "ttft_s": steps[0].ttft_s if steps else total_s,
        "total_s": total_s,
        "decode_s": decode_s,
        "tokens": tokens,
        "tok_s": (tokens - len(steps)) / decode_s if decode_s > 0 and tokens > len(steps) else 0.0,
        "prompt_tokens": len(steps[0].prompt_ids) if steps else 0,
        "reused_tokens": steps[0].reused_tokens if steps else 0,
    }


def run_case(generator: Generator, case: EvalCase, settings: Settings) -> CaseResult:
    traj, total_s = offline_episode(generator, case.prompt, settings)
    answer = (traj.final_answer or "").strip()
    if traj.meta.get("answered_by") == "fallback":  # the model said nothing; the loop filled in
        ok, why = False, {"why": "the model gave no answer (the loop's fallback text)"}
    elif traj.outcome == "answer":
        ok, why = judge(case.expected, answer, case.prompt)
    else:  # a doom loop or a stop: whatever text it left is not an answer
        ok, why = False, {"why": f"the episode ended on {traj.outcome}, not an answer"}
    details = {
        **timings(traj, total_s),
        "outcome": traj.outcome,
        "finish_reason": traj.steps[-1].finish_reason if traj.steps else "",
        "guard_stops": guard_stops(traj.steps),
        "check": case.expected["check"],
        **why,
    }
    return CaseResult(
        suite=SUITE,
        id=case.id,
        category=case.category,
        score=1.0 if ok else 0.0,
        correct=ok,
        output=answer,
        expected=case.expected,
        details=details,
        seconds=total_s,
        trajectory_id=traj.id,
    )
