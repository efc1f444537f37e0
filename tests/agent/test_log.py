"""The trajectory log: round trips, torn lines, kill -9, concurrent writers, find, stats, views."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent import log as log_module
from agent.log import (
    LOG_VERSION,
    MAX_DEPTH,
    AmbiguousEpisodeError,
    LogError,
    LogReader,
    TrajectoryLog,
    default_log_path,
    find,
    read_log,
    read_trajectories,
)
from agent.stats import stats
from agent.trajectory import Step, ToolRun, Trajectory
from model.messages import Message, ToolCall, ToolCallParseError
from tui.logview import format_episode, format_list, format_stats

REPO = Path(__file__).resolve().parents[2]


def make_step(index: int, *, tool: str | None = "web_search", error: str | None = None) -> Step:
    calls = [ToolCall(name=tool, arguments={"query": f"q{index}"}, id=f"c{index}")] if tool else []
    runs = [
        ToolRun(call=c, text=f"result {index} " + "x" * 50, error=error, duration_s=0.25)
        for c in calls
    ]
    return Step(
        index=index,
        prompt_ids=list(range(index, index + 20)),
        completion_ids=[7, 8, 9],
        completion_text=f"thinking about step {index}",
        finish_reason="tool_call" if tool else "stop",
        temperature=0.7,
        calls=calls,
        tool_runs=runs,
        reused_tokens=10 * index,
        ttft_s=0.05,
        decode_s=0.5,
        step_s=0.75,
    )


def make_traj(task: str = "what is up", *, steps: int = 2, **fields: object) -> Trajectory:
    messages = [
        Message(role="system", content="be brief"),
        Message(role="user", content=task),
        Message(role="assistant", content="", tool_calls=[ToolCall(name="web_search")]),
        Message(role="tool", content="found it", name="web_search"),
        Message(role="assistant", content="the answer"),
    ]
    base: dict[str, object] = {
        "task": task,
        "model": "tiny",
        "settings": {"sampling": {"temperature": 0.7}},
        "messages": messages,
        "steps": [make_step(i) for i in range(steps)],
        "outcome": "answer",
        "final_answer": "the answer",
        "total_s": 3.5,
        "rewards": {"exact": 1.0},
        "meta": {"case": "c1"},
    }
    return Trajectory.model_validate(base | fields)


def rich_traj() -> Trajectory:
    """Parse errors, a failed tool run, a note and an RLM sub-episode with steps of its own."""
    sub = make_traj("sub question", steps=1, mode="sub", parent_id="parent")
    step = make_step(0, error="timeout after 5s")
    step = step.model_copy(
        update={
            "parse_errors": [ToolCallParseError(raw="<tool_call>{bad", message="bad JSON")],
            "note": "nudged: finish with an answer",
            "sub_episodes": [sub],
        }
    )
    return make_traj("rlm task ünïcode ✓", id="parent", mode="rlm", steps=0).model_copy(
        update={"steps": [step, make_step(1, tool=None)]}
    )


def lines_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


# ------------------------------------------------------------------------------ round trips


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "log.jsonl"  # parents are created
    trajs = [make_traj("one"), rich_traj(), make_traj("three", steps=0, outcome="step_limit")]
    log = TrajectoryLog(path)
    for t in trajs:
        log.write(t)
    contents = read_log(path)
    assert contents.trajectories == trajs
    assert contents.skipped_lines == 0
    assert contents.trajectories[1].steps[0].sub_episodes[0].steps[0].tool_runs[0].call.name == (
        "web_search"
    )
    assert path.stat().st_mode & 0o777 == 0o600


def test_line_format(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    traj = make_traj(steps=2)
    TrajectoryLog(path).write(traj)
    lines = lines_of(path)
    assert [line["kind"] for line in lines] == ["start", "step", "step", "end"]
    assert all(line["v"] == LOG_VERSION and line["episode"] == traj.id for line in lines)
    header = lines[0]["trajectory"]
    assert "steps" not in header and "outcome" not in header
    assert [m["role"] for m in header["messages"]] == ["system", "user"]  # the opening only
    assert lines[1]["step"]["index"] == 0
    end = lines[-1]
    assert end["outcome"] == "answer" and end["final_answer"] == "the answer"
    assert len(end["messages"]) == 5 and end["rewards"] == {"exact": 1.0}
    assert path.read_bytes().endswith(b"\n")


def test_live_events_equal_write(tmp_path: Path) -> None:
    traj = make_traj(steps=3)
    log = TrajectoryLog(tmp_path / "log.jsonl")
    log.start(traj.model_copy(update={"steps": [], "outcome": None, "messages": traj.messages[:2]}))
    for s in traj.steps:
        log.step(traj.id, s)
    log.end(traj)
    assert read_trajectories(log.path) == [traj]


def test_missing_file_is_empty(tmp_path: Path) -> None:
    contents = read_log(tmp_path / "nope.jsonl")
    assert contents.trajectories == [] and contents.skipped_lines == 0
    assert find(tmp_path / "nope.jsonl", "ab") is None


def test_default_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("EDGEAGENT_LOG", raising=False)
    monkeypatch.setenv("EDGEAGENT_CACHE", str(tmp_path / "cache"))
    assert default_log_path() == tmp_path / "cache" / "trajectories.jsonl"
    monkeypatch.setenv("EDGEAGENT_LOG", str(tmp_path / "mine.jsonl"))
    assert default_log_path() == tmp_path / "mine.jsonl"


# ------------------------------------------------------------------------ damaged logs


def test_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    log = TrajectoryLog(path)
    trajs = [make_traj("a"), make_traj("b")]
    for t in trajs:
        log.write(t)
    whole = json.dumps({"v": 1, "kind": "step", "episode": trajs[1].id, "step": {"index": 9}})
    with path.open("ab") as f:
        f.write(whole.encode()[: len(whole) // 2])  # a write cut mid-JSON
    contents = read_log(path)
    assert contents.trajectories == trajs
    assert contents.skipped_lines == 1

    # The next writer ends the torn line first, so only that line is lost.
    later = make_traj("c")
    log.write(later)
    contents = read_log(path)
    assert contents.trajectories == [*trajs, later]
    assert contents.skipped_lines == 1


def test_unknown_version_and_junk_lines(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    first, second = make_traj("a"), make_traj("b")
    TrajectoryLog(path).write(first)
    future = {"v": 2, "kind": "start", "episode": "zz", "trajectory": {"task": "t"}}
    with path.open("a") as f:
        f.write(json.dumps(future) + "\n")
        f.write("[1, 2]\n")  # JSON, but not an event
        f.write("\n")  # blank lines are not counted
        f.write(json.dumps({"v": 1, "kind": "step", "episode": "nostart", "step": {}}) + "\n")
    TrajectoryLog(path).write(second)
    contents = read_log(path)
    assert contents.trajectories == [first, second]
    assert contents.unknown_version_lines == 1
    assert contents.skipped_lines == 3


def test_every_skipped_line_is_counted_with_its_reason(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    first, second = make_traj("a"), make_traj("b")
    TrajectoryLog(path).write(first)
    step = {"v": 1, "kind": "step", "episode": first.id, "step": {"index": "nine"}}
    with path.open("ab") as f:
        f.write(b'{"v": 1, "kind": "st\n')  # half a line
        f.write(b'{"v": 1, "kind": "start", "episode": "\xff\xfe", "trajectory": {}}\n')
        f.write(json.dumps({"v": 1, "kind": "start", "episode": 7}).encode() + b"\n")
        f.write(json.dumps({"v": 3, "kind": "start", "episode": "z"}).encode() + b"\n")
        f.write(
            json.dumps({"v": 1, "kind": "step", "episode": "gone", "step": {}}).encode() + b"\n"
        )
    TrajectoryLog(path).write(second)
    with path.open("ab") as f:  # after `second` ended: a step of no open episode
        f.write(json.dumps(step).encode() + b"\n")
    contents = read_log(path)
    assert contents.trajectories == [first, second]
    assert contents.skipped == {
        "torn or not JSON": 1,
        "not UTF-8": 1,
        "not a log event": 1,
        "unknown log version": 1,
        "no start line before it": 2,
    }
    assert contents.skipped_lines == 6 and contents.unknown_version_lines == 1
    assert contents.lines == 6 + 2 * (2 + 2)  # two episodes of a start, two steps and an end


def test_wrong_types_in_a_step_are_skipped_and_the_episode_kept(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    log = TrajectoryLog(path)
    traj = make_traj("a", steps=1)
    log.start(traj)
    with path.open("a") as f:
        f.write(json.dumps({"v": 1, "kind": "step", "episode": traj.id, "step": {"index": "x"}}))
        f.write("\n")
    log.step(traj.id, traj.steps[0])
    log.end(traj)
    contents = read_log(path)
    assert [t.id for t in contents.trajectories] == [traj.id]
    assert len(contents.trajectories[0].steps) == 1
    assert contents.skipped == {"fields of the wrong type": 1}


def test_deep_nesting_is_skipped_without_recursion(tmp_path: Path) -> None:
    # json.loads of 100,000 nested brackets raised RecursionError out of `log show`.
    path = tmp_path / "log.jsonl"
    first = make_traj("a")
    TrajectoryLog(path).write(first)
    with path.open("a") as f:
        f.write("[" * 100_000 + "]" * 100_000 + "\n")
        deep = {"v": 1, "kind": "start", "episode": "deep", "trajectory": {"task": "t"}}
        for _ in range(MAX_DEPTH):
            deep = {"v": 1, "kind": "start", "episode": "deep", "trajectory": {"x": deep}}
        f.write(json.dumps(deep) + "\n")
    contents = read_log(path)
    assert contents.trajectories == [first]
    assert contents.skipped == {f"nested deeper than {MAX_DEPTH}": 2}


def test_brackets_inside_strings_do_not_count_as_nesting(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    traj = make_traj("[" * 5000 + "{" * 5000 + '\\"[[[', steps=1)
    TrajectoryLog(path).write(traj)
    contents = read_log(path)
    assert contents.trajectories == [traj] and contents.skipped_lines == 0


def test_a_line_over_the_length_limit_is_skipped_unread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(log_module, "MAX_LINE_BYTES", 4096)
    path = tmp_path / "log.jsonl"
    first, second = make_traj("a"), make_traj("b")
    TrajectoryLog(path).write(first)
    with path.open("a") as f:
        f.write('{"v": 1, "note": "' + "x" * 3_000_000 + '"}\n')
    TrajectoryLog(path).write(second)
    contents = read_log(path)
    assert contents.trajectories == [first, second]
    assert contents.skipped == {"longer than 64 MiB": 1}


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full to fill the disk")
def test_write_errors_are_kept_not_raised_when_tolerated() -> None:
    traj = make_traj("a")
    with pytest.raises(OSError):
        TrajectoryLog(Path("/dev/full")).write(traj)  # evals and training must hear of it
    log = TrajectoryLog(Path("/dev/full"), tolerate_errors=True)
    assert log.check() is None  # it opens; only writing fails
    log.write(traj)
    assert log.failure == "cannot write the trajectory log /dev/full: No space left on device"


def test_check_says_why_a_log_cannot_be_written(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    problem = TrajectoryLog(tmp_path / "a-file" / "log.jsonl").check()
    assert problem is not None and problem.startswith("cannot write the trajectory log")
    assert TrajectoryLog(tmp_path / "new" / "log.jsonl").check() is None


def test_a_log_that_is_not_a_regular_file_is_a_log_error(tmp_path: Path) -> None:
    for path in (tmp_path, Path("/dev/zero")):  # /dev/zero would be read for ever
        with pytest.raises(LogError, match="cannot read the log .* not a regular file"):
            read_log(path)


def test_unfinished_episode_is_interrupted(tmp_path: Path) -> None:
    log = TrajectoryLog(tmp_path / "log.jsonl")
    traj = make_traj(steps=0, outcome=None, final_answer=None)
    log.start(traj)
    log.step(traj.id, make_step(0))
    done = make_traj("later")
    log.write(done)  # another episode ends after this one began
    got = read_trajectories(log.path)
    assert [t.id for t in got] == [traj.id, done.id]  # start order, not end order
    assert got[0].outcome == "interrupted" and len(got[0].steps) == 1
    # The streaming reader yields in end order, the unfinished one last.
    assert [t.id for t in LogReader(log.path)] == [done.id, traj.id]


def test_rewritten_episode_supersedes(tmp_path: Path) -> None:
    log = TrajectoryLog(tmp_path / "log.jsonl")
    traj = make_traj()
    log.write(traj)
    rescored = traj.model_copy(update={"rewards": {"exact": 0.0}})
    log.write(rescored)
    assert read_trajectories(log.path) == [rescored]


# ---------------------------------------------------------------------------- processes

CHILD = """
import sys, time
from pathlib import Path
from agent.log import TrajectoryLog
from agent.trajectory import Step, Trajectory

log = TrajectoryLog(Path(sys.argv[1]))
for line in Path(sys.argv[2]).read_text().splitlines():
    log.write(Trajectory.model_validate_json(line))
live = Trajectory(id="live0000", task="long task", mode="offline")
log.start(live)
for i in range(10_000):
    log.step(live.id, Step(index=i, prompt_ids=[1] * 500, completion_ids=[2] * 50,
                           completion_text="x" * 2000, finish_reason="tool_call", temperature=0.7))
    print(f"step {i}", flush=True)
    time.sleep(0.01)
"""


def wait_for_lines(proc: subprocess.Popen[str], n: int, timeout: float) -> list[str]:
    """The first `n` stdout lines of `proc`, failing after `timeout` seconds."""
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while len(seen) < n:
        left = deadline - time.monotonic()
        if left <= 0 or not sel.select(left):
            raise AssertionError(f"child printed {seen} in {timeout}s; stderr follows")
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"child exited early: {proc.stderr and proc.stderr.read()}")
        seen.append(line)
    return seen


def spawn(code: str, *args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)],
        cwd=REPO,
        env=os.environ | {"PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_kill_9_mid_episode(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    done = [make_traj("first"), rich_traj()]
    given = tmp_path / "done.jsonl"
    given.write_text("".join(t.model_dump_json() + "\n" for t in done))
    proc = spawn(CHILD, path, given)
    try:
        wait_for_lines(proc, 3, timeout=10)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=5) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    contents = read_log(path)
    assert contents.trajectories[:2] == done
    live = contents.trajectories[2]
    assert (live.id, live.outcome, live.mode) == ("live0000", "interrupted", "offline")
    assert len(live.steps) >= 3
    assert [s.index for s in live.steps] == list(range(len(live.steps)))
    assert contents.skipped_lines <= 1  # the kill may land mid-write; only that line is lost


WRITER = """
import sys, time
from pathlib import Path
from agent.log import TrajectoryLog
from agent.trajectory import Step, Trajectory

log, name, go = TrajectoryLog(Path(sys.argv[1])), sys.argv[2], Path(sys.argv[3])
deadline = time.monotonic() + 10
while not go.exists() and time.monotonic() < deadline:
    time.sleep(0.001)  # start together, so the writes really race
traj = Trajectory(id=name, task=name)
log.start(traj)
for i in range(198):
    log.step(name, Step(index=i, prompt_ids=[], completion_ids=[i], finish_reason="stop",
                        completion_text=name[0] * 10_000, temperature=1.0))
log.end(traj.model_copy(update={"outcome": "answer"}))
"""


def test_concurrent_writers_do_not_interleave(tmp_path: Path) -> None:
    path, go = tmp_path / "log.jsonl", tmp_path / "go"
    procs = [spawn(WRITER, path, name, go) for name in ("aaaa", "bbbb")]
    time.sleep(0.3)  # let both import before the gate opens
    go.touch()
    for p in procs:
        _, err = p.communicate(timeout=30)
        assert p.returncode == 0, err
    raw = path.read_bytes().splitlines()
    assert len(raw) == 400
    events = [json.loads(line) for line in raw]  # raises if any two lines interleaved
    for e in events:
        if e["kind"] == "step":
            assert e["step"]["completion_text"] == e["episode"][0] * 10_000
    contents = read_log(path)
    assert contents.skipped_lines == 0
    assert sorted((t.id, len(t.steps), t.outcome) for t in contents.trajectories) == [
        ("aaaa", 198, "answer"),
        ("bbbb", 198, "answer"),
    ]


# ------------------------------------------------------------------------------ find, stats


def test_find_by_prefix(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    log = TrajectoryLog(path)
    for episode_id in ("abc123", "abd456", "xyz789"):
        log.write(make_traj(episode_id, id=episode_id))
    found = find(path, "abc")
    assert found is not None and found.task == "abc123"
    assert find(path, "xyz789") is not None
    assert find(path, "q") is None
    with pytest.raises(AmbiguousEpisodeError) as e:
        find(path, "ab")
    message = str(e.value)
    assert "\n" not in message and "2 episodes" in message and "abc123" in message


def test_stats(tmp_path: Path) -> None:
    failing = make_traj("b", steps=0, mode="offline", outcome="step_limit", total_s=1.5)
    failing.steps = [make_step(0, error="boom"), make_step(1), make_step(2), make_step(3)]
    looped = make_traj("c", steps=0, outcome="error", total_s=5.5)
    looped.steps = [make_step(0, tool=None).model_copy(update={"finish_reason": "doom_loop"})]
    trajs = [rich_traj(), failing, looped, make_traj("d", steps=0, outcome="doom_loop")]
    # Through the log, so stats see what a reader sees.
    log = TrajectoryLog(tmp_path / "log.jsonl")
    for t in trajs:
        log.write(t)
    s = stats(read_trajectories(log.path))
    assert s.episodes == 4
    assert s.by_outcome == {"answer": 1, "step_limit": 1, "error": 1, "doom_loop": 1}
    assert s.by_mode == {"rlm": 1, "offline": 1, "online": 2}
    assert s.mean_steps == pytest.approx((2 + 4 + 1 + 0) / 4)
    assert s.median_steps == 1.5
    assert s.sampled_tokens == 3 * 7  # sub-episode tokens are not counted
    assert s.tool_calls == {"web_search": 5}
    assert (s.tool_runs, s.tool_errors) == (5, 2)
    assert s.tool_error_rate == pytest.approx(0.4)
    assert s.parse_errors == 1
    assert s.doom_loops == 2
    assert s.mean_total_s == pytest.approx((3.5 + 1.5 + 5.5 + 3.5) / 4)
    assert s.sub_episodes == 1
    assert stats([]).episodes == 0


# -------------------------------------------------------------------------------- logview


def test_format_episode() -> None:
    traj = rich_traj()
    long_result = "r" * 250 + "TAIL" * 50
    traj.steps[1] = make_step(1).model_copy(
        update={
            "tool_runs": [
                ToolRun(call=ToolCall(name="fetch", arguments={"u": 1}), text=long_result)
            ]
        }
    )
    text = format_episode(traj)
    assert "episode parent" in text and "mode rlm" in text and "outcome answer" in text
    assert "rlm task ünïcode ✓" in text
    assert 'web_search({"query": "q0"})' in text
    assert "ERROR: timeout after 5s" in text
    assert "thinking about step 0" in text
    assert "parse error: bad JSON" in text and "nudged: finish with an answer" in text
    assert "sub question" in text  # the sub-episode, nested
    assert 'fetch({"u": 1})' in text and "r" * 250 in text and "TAIL" * 50 not in text
    assert 'web_search({"query": "q1"}) (not run)' in text  # asked for, never run
    assert text.rstrip().endswith("the answer")
    assert "final answer:" in text


def test_format_list_and_stats() -> None:
    trajs = [
        make_traj(f"task number {i} " + "long " * 30, created=f"2025-01-0{i}T00:00:00+00:00")
        for i in range(1, 6)
    ]
    text = format_list(trajs, limit=3)
    rows = text.splitlines()
    assert rows[0].split()[:5] == ["id", "created", "mode", "outcome", "steps"]
    assert [r.split()[0] for r in rows[1:4]] == [trajs[4].id, trajs[3].id, trajs[2].id]
    assert "task number 5" in rows[1] and "long long" in rows[1] and len(rows[1]) < 140
    assert rows[-1] == "(2 older episodes not shown)"
    assert format_list([]) == "no episodes"

    s = stats(trajs[:2] + [make_traj("x", steps=1, outcome="error")])
    out = format_stats(s)
    assert "episodes" in out and "answer 2, error 1" in out
    assert "web_search 5" in out and "0 of 5 (0%)" in out
