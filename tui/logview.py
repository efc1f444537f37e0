"""Plain-text views of the trajectory log for the CLI: one episode, a list, the stats.

Every function returns a string and prints nothing; the CLI decides where it goes. Long text
(completions, tool output, tasks) is cut here, because a terminal is not the place to read a
whole web page; the full record stays in the log. Reading the log is `agent.log`'s job.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence

from agent.log import LogContents
from agent.stats import LogStats
from agent.trajectory import Step, ToolRun, Trajectory
from model.messages import ToolCall

RESULT_CHARS = 300  # of each tool result
COMPLETION_CHARS = 2000  # of each model completion
TASK_CHARS = 48  # of the task, in the list


def _cut(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _indent(text: str, prefix: str = "    ") -> str:
    return textwrap.indent(text, prefix, lambda _: True)


def format_call(call: ToolCall) -> str:
    return f"{call.name}({json.dumps(call.arguments, ensure_ascii=False)})"


def _format_run(run: ToolRun) -> str:
    head = f"-> {format_call(run.call)} [{run.duration_s:.2f}s]"
    if run.error is not None:
        return f"{head} ERROR: {_cut(run.error, RESULT_CHARS)}"
    tail = " (truncated)" if run.truncated else ""
    return f"{head}{tail}\n{_indent(_cut(run.text, RESULT_CHARS))}"


def _not_run(step: Step) -> list[ToolCall]:
    pending = [run.call for run in step.tool_runs]
    missing = []
    for call in step.calls:
        if call in pending:
            pending.remove(call)  # by value: ids do not survive a trip through the log
        else:
            missing.append(call)
    return missing


def _format_step(step: Step) -> str:
    lines = [
        f"--- step {step.index}: {step.finish_reason}, {len(step.completion_ids)} tokens, "
        f"{step.step_s:.2f}s, T={step.temperature:g}"
    ]
    if step.completion_text.strip():
        lines.append(_indent(_cut(step.completion_text, COMPLETION_CHARS)))
    # Calls that were parsed but never ran (a limit hit first) still show what the model asked.
    lines += [f"  call {format_call(c)} (not run)" for c in _not_run(step)]
    lines += [_indent(_format_run(run), "  ") for run in step.tool_runs]
    lines += [
        f"  parse error: {e.message} in {_cut(_one_line(e.raw), 80)!r}" for e in step.parse_errors
    ]
    if step.note:
        lines.append(f"  note: {step.note}")
    for sub in step.sub_episodes:
        lines.append(_indent(format_episode(sub), "  | "))
    return "\n".join(lines)


def format_episode(traj: Trajectory) -> str:
    """Header, each step (completion, tool calls and results, notes), then the final answer."""
    header = [
        f"episode {traj.id}" + (f" (sub-episode of {traj.parent_id})" if traj.parent_id else ""),
        f"created {traj.created}  mode {traj.mode}  model {traj.model or '?'}"
        + (f"  adapter {traj.adapter}" if traj.adapter else ""),
        f"outcome {traj.outcome or '?'}  {len(traj.steps)} steps  {traj.total_s:.1f}s  "
        f"{traj.sampled_tokens} sampled tokens",
        f"task: {_cut(traj.task, COMPLETION_CHARS)}",
    ]
    if traj.error:
        header.append(f"error: {traj.error}")
    if traj.rewards:
        header.append("rewards: " + ", ".join(f"{k}={v:g}" for k, v in traj.rewards.items()))
    parts = ["\n".join(header), *(_format_step(s) for s in traj.steps)]
    if traj.final_answer is not None:
        parts.append(f"final answer:\n{_indent(traj.final_answer.strip())}")
    return "\n".join(parts)


def format_skipped(contents: LogContents, path: object) -> str | None:
    """One line saying how many lines of the log were skipped and why; None when none were."""
    if not contents.skipped_lines:
        return None
    by_count = sorted(contents.skipped.items(), key=lambda kv: (-kv[1], kv[0]))
    reasons = ", ".join(f"{n} {why}" for why, n in by_count)
    return f"skipped {contents.skipped_lines} of {contents.lines} lines of {path}: {reasons}"


def _short_time(created: str) -> str:
    # "2025-01-02T03:04:05+00:00" -> "2025-01-02 03:04:05": the zone is always UTC here.
    return created[:19].replace("T", " ")


def format_list(trajectories: Sequence[Trajectory], limit: int = 20) -> str:
    """The `limit` most recent episodes, newest first, one row each."""
    if not trajectories:
        return "no episodes"
    # The log is in start order; `created` is second-granular, so ties keep log order.
    recent = sorted(enumerate(trajectories), key=lambda p: (p[1].created, p[0]), reverse=True)
    rows = [("id", "created", "mode", "outcome", "steps", "task")]
    rows += [
        (
            t.id,
            _short_time(t.created),
            t.mode,
            t.outcome or "?",
            str(len(t.steps)),
            _one_line(t.task),
        )
        for _, t in recent[:limit]
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(r[:5], widths, strict=True))
        + "  "
        + _cut(r[5], TASK_CHARS)
        for r in rows
    ]
    if len(trajectories) > limit:
        lines.append(f"({len(trajectories) - limit} older episodes not shown)")
    return "\n".join(line.rstrip() for line in lines)


def _counts(counts: dict[str, int]) -> str:
    if not counts:
        return "-"
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def format_stats(stats: LogStats) -> str:
    rows = [
        ("episodes", str(stats.episodes)),
        ("outcomes", _counts(stats.by_outcome)),
        ("modes", _counts(stats.by_mode)),
        ("steps", f"mean {stats.mean_steps:.1f}, median {stats.median_steps:g}"),
        ("sampled tokens", str(stats.sampled_tokens)),
        ("tool calls", _counts(stats.tool_calls)),
        (
            "tool errors",
            f"{stats.tool_errors} of {stats.tool_runs} ({stats.tool_error_rate:.0%})",
        ),
        ("parse errors", str(stats.parse_errors)),
        ("doom loops", str(stats.doom_loops)),
        ("mean time", f"{stats.mean_total_s:.1f}s"),
        ("sub-episodes", str(stats.sub_episodes)),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
