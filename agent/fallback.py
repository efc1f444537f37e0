"""The answer an episode gives when the model gave none: built from what the episode found.

A 0.5B model sometimes ends with an empty turn, or keeps repeating a call whose result is
already in front of it, and the user would see nothing. Then the answer is the last successful
tool result, said in plain words, or one sentence saying that nothing was found.

Not here: judging whether a non-empty answer is right, or asking the model again (the loop's
wrap-up turn does that before this is needed).
"""

from __future__ import annotations

from collections.abc import Iterable

from agent.trajectory import Outcome, ToolRun, Trajectory

NOTHING_FOUND = "I could not find an answer to that: no tool returned a usable result."
SHOWN_CHARS = 1200  # of a long result (a page), enough to read the answer in, not a wall of text


def from_result(tool: str, text: str) -> str:
    """A successful tool result as an answer: one line inline, more as a quoted block."""
    body = text.strip()
    if not body:
        return f"The {tool} tool ran but printed nothing, so I have no answer to show."
    if len(body) > SHOWN_CHARS:
        cut = body[:SHOWN_CHARS]
        body = cut[: cut.rfind("\n")] if "\n" in cut else cut
        body += "\n…"
    if "\n" not in body:
        return f"The {tool} result is: {body}"
    return f"The {tool} result:\n\n{body}"


def from_runs(runs: Iterable[ToolRun]) -> str:
    """The last successful result of the episode's tool runs, or the one-sentence "not found"."""
    ok = [r for r in runs if r.error is None and r.text.strip()]
    if not ok:
        return NOTHING_FOUND
    last = ok[-1]
    return from_result(last.call.name, last.text)


def or_found(answer: str, runs: Iterable[ToolRun]) -> str:
    """The model's answer, or, when it is empty, the answer built from what was found."""
    return answer if answer.strip() else from_runs(runs)


def episode_answer(traj: Trajectory, answer: str) -> str:
    """`answer`, or, when the model gave none, one built from the episode's tool runs, marked
    `meta.answered_by = "fallback"` so evals tell it from the model's (a sub-episode's empty
    answer stays empty: its caller reads that)."""
    if traj.mode == "sub" or answer.strip():
        return answer
    traj.meta["answered_by"] = "fallback"
    return or_found(answer, (r for s in traj.steps for r in s.tool_runs))


def partial(traj: Trajectory, said: Iterable[str], why: Outcome) -> str:
    """The answer of an episode stopped at a budget: the model's last words (`said`, newest
    first), or what was found, and why it stopped."""
    last = episode_answer(traj, next((c for c in said if c.strip()), ""))
    note = {"token_limit": "the token budget", "time_limit": "the time limit"}.get(why, why)
    return f"{last}\n\n(Stopped at {note}.)"
