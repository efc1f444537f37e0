"""The Python-tool suite (`pytools`): does the agent make the one call a task needs, then say
the answer, without calling again?

Tasks come from `evals.pytasks_data` (18 families of arithmetic, string and list questions,
360 train and 126 test; category = kind), or a JSONL file of `Task`s (`--data`). Each runs as
a real agent episode with only the python tool, as `edgeagent ask --tools python` runs it
(`agent.loop.run`, the real sandbox), greedy, at most `MAX_NEW_TOKENS` a turn. Correct: the
model's closing answer states the expected value (`evals.pytasks_check.judge`). That is its
answer, or the answer it was made to give without tools at the step or repeated-call limit,
read without the loop's "(Stopped ...)" note (whose step count is no answer); an episode that
ended otherwise (a doom loop, a token or time limit) has none. An answer the loop built for a
model that gave none (`meta.answered_by == "fallback"`: an empty reply, or a repeated call
answered from its earlier result) is recorded and counted wrong.

Details per case: `steps` (model turns), `tool_calls`, `repeated_identical_calls` (calls with
the same name and arguments as an earlier one of the episode), `result_as_code` (python calls
whose code is only an earlier call's output, as in `python('391')`), `empty_answer` (the
model's closing turn said nothing and called nothing), `answered_by`, `outcome`,
`finish_reason` (of the last turn), `tool_errors`, `codes` (each call's code, or its arguments
as JSON where it sent no code; cut to `CODE_CHARS`), `tokens`, `family`, `check` and `why`.

Not here: the tasks (`evals.pytasks_data`), what counts as right (`evals.pytasks_check`).
"""

from __future__ import annotations

import json
import time
from itertools import zip_longest
from pathlib import Path
from typing import Any

from agent.loop import run
from agent.settings import Settings
from agent.toolbox import toolbox
from agent.trajectory import Trajectory
from evals.common import CaseResult, EvalCase, Split, guard_stops, in_split
from evals.pytasks_check import Task, judge
from evals.pytasks_data import FAMILIES, tasks
from model.generate import Generator

SUITE = "pytools"
MAX_NEW_TOKENS = 256  # a call of a few lines, or an answer of a sentence or two
CODE_CHARS = 200
# The model's own closing answers: ended by it, or forced at a limit with the tools withheld.
ANSWERED = ("answer", "step_limit", "repeated_call")


def load_cases(split: Split, limit: int | None = None, data: Any = None) -> list[EvalCase]:
    """The tasks of `split` (generated, or the JSONL file `data`), families interleaved so
    that a small limit still samples every family and kind."""
    found = _read_tasks(Path(data).expanduser()) if data is not None else tasks("all")
    by_family: dict[str, list[Task]] = {}
    for task in found:
        if in_split(task.id, split):
            by_family.setdefault(task.family, []).append(task)
    order = [*FAMILIES, *sorted(set(by_family) - set(FAMILIES))]
    rounds = zip_longest(*(by_family.get(f, []) for f in order))
    cases = [case_of(t) for group in rounds for t in group if t is not None]
    return cases[:limit] if limit is not None else cases


def case_of(task: Task) -> EvalCase:
    return EvalCase(suite=SUITE, id=task.id, category=task.kind, prompt=task.question,
                    expected=task.answer, data=task.model_dump())  # fmt: skip


def _read_tasks(path: Path) -> list[Task]:
    """One `Task` a line (id, family, kind, question, answer, check, code, ...); a wrong line
    is a one-line error naming it, before any model loads."""
    if not path.is_file():
        raise FileNotFoundError(f"pytools data {path} is not a file (JSONL of tasks)")
    found = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                found.append(Task.model_validate_json(line))
            except ValueError as e:
                first = str(e).splitlines()[0]
                raise ValueError(f"{path}:{number}: not a pytools task ({first})") from None
    return found


def episode_settings(settings: Settings) -> Settings:
    """The python tool only, greedy, short turns, not logged."""
    agent = settings.agent.model_copy(update={"tools": ["python"], "log": False})
    sampling = settings.sampling.model_copy(
        update={
            "temperature": 0.0,
            "max_new_tokens": min(settings.sampling.max_new_tokens, MAX_NEW_TOKENS),
        }
    )
    return settings.model_copy(update={"offline": False, "agent": agent, "sampling": sampling})


def call_key(name: str, arguments: Any) -> str:
    return name + json.dumps(arguments, sort_keys=True, default=str)


def tool_use(traj: Trajectory) -> dict[str, Any]:
    """How the episode used its tools: calls, repeats, results fed back as code, errors."""
    seen: set[str] = set()
    outputs: set[str] = set()
    codes: list[str] = []
    repeated = result_as_code = errors = 0
    for step in traj.steps:
        for done in step.tool_runs:
            key = call_key(done.call.name, done.call.arguments)
            repeated += key in seen
            seen.add(key)
            code = str(done.call.arguments.get("code", ""))
            # No code: what it sent instead (a 0.5B model copies the tool's schema as arguments).
            shown = code if "code" in done.call.arguments else json.dumps(done.call.arguments)
            codes.append(shown[:CODE_CHARS])
            result_as_code += bool(outputs) and _bare(code) in outputs
            errors += done.error is not None
            if done.text.strip():
                outputs.add(_bare(done.text))
    return {"tool_calls": len(codes), "repeated_identical_calls": repeated,
            "result_as_code": result_as_code, "tool_errors": errors, "codes": codes}  # fmt: skip


def _bare(text: str) -> str:
    """Code or output without print(...), quotes and spaces: "print('391')" is "391"."""
    text = text.strip()
    if text.startswith("print(") and text.endswith(")"):
        text = text[len("print(") : -1]
    return text.strip().strip("'\"").strip()


def empty_answer(traj: Trajectory) -> bool:
    """The model's closing turn said nothing and called nothing (the loop may have filled in)."""
    said = [m for m in traj.messages if m.role == "assistant"]
    if not said:
        return True
    last = said[-1]
    return not last.tool_calls and not last.content.strip()


def model_answer(traj: Trajectory) -> str:
    """The closing answer without the loop's note on why it stopped."""
    answer = (traj.final_answer or "").strip()
    if traj.outcome in ("step_limit", "repeated_call"):
        text, cut, note = answer.rpartition("\n\n(Stopped")
        answer = text.strip() if cut and note.endswith(")") else answer
    return answer


def verdict(traj: Trajectory, task: Task) -> tuple[bool, dict[str, str]]:
    """Whether the episode's own closing answer states the task's answer, and why not: the
    suite's score, and the trainer's task reward (`evals.rewards`)."""
    if traj.meta.get("answered_by", "model") == "fallback":
        return False, {"why": "not the model's answer (the loop's fallback text)"}
    if traj.outcome not in ANSWERED:
        return False, {"why": f"the episode ended on {traj.outcome}, not an answer"}
    return judge(task, model_answer(traj))


def run_case(generator: Generator, case: EvalCase, settings: Settings) -> CaseResult:
    """One real agent episode with the python tool, scored on the model's own answer."""
    task = Task.model_validate(case.data)
    episode = episode_settings(settings)
    meta = {"suite": SUITE, "case": case.id}
    start = time.perf_counter()
    with toolbox(episode, question=case.prompt) as tools:
        traj = run(generator, case.prompt, tools, episode, meta=meta)
    seconds = time.perf_counter() - start
    answered_by = traj.meta.get("answered_by", "model")
    ok, why = verdict(traj, task)
    details = {
        "family": task.family,
        "check": task.check,
        **why,
        "steps": len(traj.steps),
        **tool_use(traj),
        "empty_answer": empty_answer(traj),
        "answered_by": answered_by,
        "outcome": traj.outcome,
        "finish_reason": traj.steps[-1].finish_reason if traj.steps else "",
        "guard_stops": guard_stops(traj.steps),
        "tokens": traj.sampled_tokens,
    }
    return CaseResult(
        suite=SUITE,
        id=case.id,
        category=case.category,
        score=1.0 if ok else 0.0,
        correct=ok,
        output=(traj.final_answer or "").strip(),
        expected=case.expected,
        details=details,
        seconds=seconds,
        trajectory_id=traj.id,
    )
