"""The trajectory log: an append-only JSONL file that survives a crash mid-episode.

One JSON object per line and one line per event, so when the process dies every finished step
is already on disk. Every line carries the log format version `v` (`LOG_VERSION`, currently 1),
its `kind` and the `episode` id:

    {"v": 1, "kind": "start", "episode": ID, "trajectory": {...}}   header: no steps, no outcome
    {"v": 1, "kind": "step", "episode": ID, "step": {...}}          one `Step`, sub-episodes inside
    {"v": 1, "kind": "end", "episode": ID, "outcome": ..., "final_answer": ..., "error": ...,
     "total_s": ..., "rewards": {...}, "meta": {...}, "messages": [...]}   the final conversation

The reader groups lines by episode in the order the episodes started; an episode without an
"end" line reads back with outcome "interrupted". Torn, invalid, orphaned and unknown-version
lines are skipped and counted by reason (`LogContents.skipped`), never raised. The reader is
bounded: a line longer than `MAX_LINE_BYTES` (64 MiB) is skipped without being held in memory,
and one nested deeper than `MAX_DEPTH` (200 brackets; real lines reach about 30) is skipped
before it is parsed, so a hostile line costs neither memory nor a RecursionError.

Atomicity: each line is one `os.write` of the complete encoded line on a descriptor opened with
O_APPEND, then `os.fsync`. On a local Linux filesystem one write() to a regular file is applied
whole at the end of the file, so lines from writers in different processes never interleave.
That holds up to about 2 GiB per line (the kernel splits larger writes) and does NOT hold on
NFS, where O_APPEND is emulated by the client. Writers also take an advisory `flock` for the
append, so a line torn by a crash (a short write, a power loss) is ended with a newline by the
next writer exactly once: it costs that one line and nothing after it. A reader takes no lock
and may see a line still being written; it skips it like a torn one. POSIX only (fcntl, pread).

What this is not: a database (no index; `find` reads the whole file) and not rotated or pruned
(the file grows until the user moves it away). The types live in `agent.trajectory`, totals
over episodes in `agent.stats`.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from agent.trajectory import Step, Trajectory
from model.embedded import cache_root
from model.messages import Message

LOG_VERSION = 1
MAX_LINE_BYTES = 64 * 2**20  # an end line holds the whole conversation; pages are capped at 3 MB
MAX_DEPTH = 200  # JSON nesting; far below Python's recursion limit, far above a real line
_BRACKETS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')  # strings hide brackets

# The fields the "end" line carries; the "start" header leaves them out (they are not known yet).
_END_FIELDS = ("outcome", "final_answer", "error", "total_s", "rewards", "meta", "messages")
_HEADER_EXCLUDE = {"steps", "outcome", "final_answer", "error", "total_s", "rewards"}


class LogError(Exception):
    """A log problem the caller should show the user as one line."""


class AmbiguousEpisodeError(LogError):
    """An id prefix that matches more than one episode."""


def default_log_path() -> Path:
    """$EDGEAGENT_LOG if set, else <cache_root()>/trajectories.jsonl."""
    if env := os.environ.get("EDGEAGENT_LOG"):
        return Path(env).expanduser()
    return cache_root() / "trajectories.jsonl"


# ----------------------------------------------------------------------------------- writing


class TrajectoryLog:
    """Appends episode events to one JSONL file; safe to share between processes.

    The file is opened per event rather than held open: an event costs one fsync anyway (far
    more than an open), and there is no descriptor to leak or to close on shutdown.

    With `tolerate_errors`, a write that fails (a read-only or full disk) does not end the
    episode: the first failure is kept in `failure`, later events are dropped, and the caller
    says so. Without it (evals, training) the failure is raised, as losing their record matters.
    """

    def __init__(self, path: Path, tolerate_errors: bool = False) -> None:
        self.path = Path(path)
        self.tolerate_errors = tolerate_errors
        self.failure: str | None = None  # why writing stopped, when errors are tolerated

    def check(self) -> str | None:
        """Why the log cannot be written (one line), or None; opens it, writes nothing."""
        try:
            fd, _created = self._open()
        except OSError as e:
            return f"cannot write the trajectory log {self.path}: {e.strerror or e}"
        os.close(fd)
        return None

    def start(self, traj: Trajectory) -> None:
        """Record the header: call before the first step, with the conversation so far."""
        header = traj.model_dump(mode="json", exclude=_HEADER_EXCLUDE)
        self._append({"kind": "start", "episode": traj.id, "trajectory": header})

    def step(self, episode_id: str, step: Step) -> None:
        self._append({"kind": "step", "episode": episode_id, "step": step.model_dump(mode="json")})

    def end(self, traj: Trajectory) -> None:
        """Record the outcome and the final conversation."""
        end = traj.model_dump(mode="json", include=set(_END_FIELDS))
        self._append({"kind": "end", "episode": traj.id, **end})

    def write(self, traj: Trajectory) -> None:
        """Write a finished trajectory at once: start, every step, end (what evals use)."""
        # The header keeps only the opening messages: the end line carries the whole
        # conversation, and repeating it would double the size of every episode.
        opening = traj.model_copy(update={"messages": _opening_messages(traj)})
        self.start(opening)
        for step in traj.steps:
            self.step(traj.id, step)
        self.end(traj)

    def _append(self, event: dict[str, Any]) -> None:
        if self.failure is not None:
            return  # an episode half logged is still read back, as "interrupted"
        try:
            self._write(event)
        except (OSError, LogError) as e:
            if not self.tolerate_errors:
                raise
            why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            self.failure = f"cannot write the trajectory log {self.path}: {why}"

    def _write(self, event: dict[str, Any]) -> None:
        line = json.dumps({"v": LOG_VERSION, **event}, ensure_ascii=False, separators=(",", ":"))
        data = line.encode("utf-8") + b"\n"
        fd, created = self._open()
        try:
            # Held until close. Without it the torn-line check below races: another writer's
            # append grows the file page by page, so its last byte is briefly not "\n".
            fcntl.flock(fd, fcntl.LOCK_EX)
            if _ends_torn(fd):
                data = b"\n" + data  # end a line torn by a crash, so only that line is lost
            written = os.write(fd, data)
            if written != len(data):
                # A short write (disk full) leaves a torn line; the next writer ends it.
                raise LogError(f"{self.path}: wrote {written} of {len(data)} bytes (disk full?)")
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            _fsync_dir(self.path.parent)  # so the new file's name survives a power loss too

    def _open(self) -> tuple[int, bool]:
        # O_RDWR, not O_WRONLY: `_ends_torn` reads the last byte. 0o600: conversations are private.
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        created = not self.path.exists()
        try:
            return os.open(self.path, flags, 0o600), created
        except FileNotFoundError:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, flags, 0o600), True


def _opening_messages(traj: Trajectory) -> list[Message]:
    """The messages before the model's first turn: the conversation as the episode began."""
    for i, message in enumerate(traj.messages):
        if message.role == "assistant":
            return traj.messages[:i]
    return traj.messages


def _ends_torn(fd: int) -> bool:
    # Whole lines always end in "\n", so any other last byte is the rest of a crashed write.
    size = os.fstat(fd).st_size
    return size > 0 and os.pread(fd, 1, size - 1) != b"\n"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return  # some platforms cannot open directories; the data itself is already synced
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------------- reading


class LogContents(BaseModel):
    trajectories: list[Trajectory]
    lines: int = 0  # non-blank lines read
    skipped_lines: int = 0  # every line not used, unknown versions included
    unknown_version_lines: int = 0  # of those, lines whose `v` this reader does not know
    skipped: dict[str, int] = Field(default_factory=dict)  # why -> how many lines


# Why a line is skipped, as `LogContents.skipped` and the CLI word it.
TORN = "torn or not JSON"
NOT_UTF8 = "not UTF-8"
TOO_LONG = f"longer than {MAX_LINE_BYTES // 2**20} MiB"
TOO_DEEP = f"nested deeper than {MAX_DEPTH}"
UNKNOWN_VERSION = "unknown log version"
NOT_EVENT = "not a log event"
ORPHAN = "no start line before it"
INVALID = "fields of the wrong type"


class _Unusable(Exception):
    """A well-formed line that cannot be folded in (no start before it, an invalid step)."""

    def __init__(self, reason: str = INVALID) -> None:
        super().__init__(reason)
        self.reason = reason


class _Episode:
    """An episode being reassembled from its lines."""

    def __init__(self, episode_id: str, header: dict[str, Any]) -> None:
        self.id = episode_id
        self.header = header
        self.steps: list[Step] = []

    def finish(self, end: dict[str, Any] | None) -> Trajectory:
        # The line's episode id wins over the header's: it is what the steps were filed under.
        fields = {**self.header, "id": self.id, "steps": self.steps}
        if end is None:
            fields["outcome"] = "interrupted"
        else:
            fields.update({k: end[k] for k in _END_FIELDS if k in end})
        try:
            return Trajectory.model_validate(fields)
        except (ValidationError, RecursionError) as e:
            raise _Unusable from e


class LogReader:
    """Reassembles trajectories line by line, streaming; counts what it skips.

    Iterating yields each episode when its "end" line arrives, then the unfinished ones as
    "interrupted" at the end of the file. `read_log` puts them back in start order.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.lines = 0
        self.skipped: Counter[str] = Counter()
        self.order: dict[str, int] = {}  # episode id -> position of its latest start line
        self._starts = 0

    @property
    def skipped_lines(self) -> int:
        return sum(self.skipped.values())

    @property
    def unknown_version_lines(self) -> int:
        return self.skipped[UNKNOWN_VERSION]

    def __iter__(self) -> Iterator[Trajectory]:
        open_episodes: dict[str, _Episode] = {}
        for raw in self._lines():
            event = self._parse(raw)
            if event is None:
                continue
            try:
                finished = self._apply(event, open_episodes)
            except _Unusable as e:
                self.skipped[e.reason] += 1
                continue
            if finished is not None:
                yield finished
        for episode in open_episodes.values():
            try:
                yield episode.finish(None)
            except _Unusable as e:
                self.skipped[e.reason] += 1  # its start line: the only one left to blame

    def _lines(self) -> Iterator[bytes | None]:
        """Each non-blank line, stripped; None for a line over MAX_LINE_BYTES (never held)."""
        if self.path.exists() and not self.path.is_file():  # a folder, /dev/zero: no end
            raise LogError(f"cannot read the log {self.path}: it is not a regular file")
        try:
            f = self.path.open("rb")
        except FileNotFoundError:
            return
        except OSError as e:  # no permission
            raise LogError(f"cannot read the log {self.path}: {e.strerror or e}") from None
        with f:
            # A binary file splits on b"\n" only, so a torn last line arrives on its own.
            while line := f.readline(MAX_LINE_BYTES + 1):
                if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                    while (rest := f.readline(2**20)) and not rest.endswith(b"\n"):
                        pass  # read past the rest of the long line, a MiB at a time
                    self.lines += 1
                    yield None
                elif line := line.strip():
                    self.lines += 1
                    yield line

    def _parse(self, raw: bytes | None) -> dict[str, Any] | None:
        """The line as an event of this version, or None (counted by reason) if it is not one."""
        reason, event = _unreadable(raw), None
        if reason is None and raw is not None:
            try:
                event = json.loads(raw)
            except UnicodeDecodeError:
                reason = NOT_UTF8
            except ValueError:  # torn or corrupt
                reason = TORN
            except RecursionError:  # _unreadable measured the depth; this is the backstop
                reason = TOO_DEEP
        if reason is None and (not isinstance(event, dict) or "v" not in event):
            reason = NOT_EVENT
        elif reason is None and event["v"] != LOG_VERSION:
            reason = UNKNOWN_VERSION
        elif reason is None and (
            event.get("kind") not in ("start", "step", "end")
            or not isinstance(event.get("episode"), str)
        ):
            reason = NOT_EVENT
        if reason is not None:
            self.skipped[reason] += 1
            return None
        return event

    def _apply(
        self, event: dict[str, Any], open_episodes: dict[str, _Episode]
    ) -> Trajectory | None:
        """Fold one event in; the finished trajectory when it is an end line."""
        episode_id: str = event["episode"]
        if event["kind"] == "start":
            if not isinstance(event.get("trajectory"), dict):
                raise _Unusable
            # A second start for the same id (a re-scored eval written again) supersedes it.
            open_episodes[episode_id] = _Episode(episode_id, event["trajectory"])
            self._starts += 1
            self.order[episode_id] = self._starts
            return None
        episode = open_episodes.get(episode_id)
        if episode is None:  # its start line was lost, or the episode already ended
            raise _Unusable(ORPHAN)
        if event["kind"] == "step":
            try:
                episode.steps.append(Step.model_validate(event.get("step")))
            except (ValidationError, RecursionError) as e:
                raise _Unusable from e
            return None
        del open_episodes[episode_id]
        try:
            return episode.finish(event)
        except _Unusable:
            open_episodes[episode_id] = episode  # a bad end line: keep the steps, "interrupted"
            raise


def _unreadable(raw: bytes | None) -> str | None:
    """Why a line must not even be parsed (too long, nested too deep), or None."""
    if raw is None:
        return TOO_LONG
    if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:
        return None  # cannot be deeper than its brackets: the common case costs two counts
    depth = 0
    for token in _BRACKETS.finditer(raw):
        bracket = token.group()
        if bracket in (b"[", b"{"):
            depth += 1
            if depth > MAX_DEPTH:
                return TOO_DEEP
        elif bracket in (b"]", b"}"):
            depth -= 1
    return None


def read_log(path: Path) -> LogContents:
    """Every episode in `path` in the order they started (latest record per id) and the skips.
    Raises LogError when the file exists but cannot be read (a folder, no permission)."""
    reader = LogReader(path)
    latest = {t.id: t for t in reader}
    found = sorted(latest.values(), key=lambda t: reader.order[t.id])
    return LogContents(
        trajectories=found,
        lines=reader.lines,
        skipped_lines=reader.skipped_lines,
        unknown_version_lines=reader.unknown_version_lines,
        skipped=dict(reader.skipped),
    )


def read_trajectories(path: Path) -> list[Trajectory]:
    return read_log(path).trajectories


def find(path: Path, id_prefix: str) -> Trajectory | None:
    """The episode whose id starts with `id_prefix` (top-level episodes only); None if none."""
    return find_in(read_trajectories(path), id_prefix)


def find_in(trajectories: list[Trajectory], id_prefix: str) -> Trajectory | None:
    """`find` over trajectories already read."""
    exact = [t for t in trajectories if t.id == id_prefix]
    matches = exact or [t for t in trajectories if t.id.startswith(id_prefix)]
    ids = sorted({t.id for t in matches})
    if len(ids) > 1:
        shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
        raise AmbiguousEpisodeError(
            f"episode id prefix {id_prefix!r} matches {len(ids)} episodes: {shown}"
        )
    return matches[0] if matches else None
