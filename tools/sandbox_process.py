"""The parent's side of the sandbox pipes: starting the child, and reading what it says safely.

Everything the child writes is untrusted: a message is one JSON line on a dedicated pipe (never
the child's stdout), at most `max_bytes` long, and must validate against one of the message
models below or the child is killed. Nothing here unpickles, evals or trusts a length the child
announces.

This is plumbing for tools/sandbox.py and deliberately has no policy of its own (timeouts,
budgets, restarts live there).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, TypeAdapter, ValidationError

CHILD_SCRIPT = Path(__file__).with_name("sandbox_child.py")
_STDERR_KEEP = 4000


class ProtocolError(Exception):
    """The child said something that is not a valid message: it is killed."""


class ChildExited(Exception):
    """The child closed its end of the pipe: it died or exited."""


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ReadyMessage(_Message):
    type: Literal["ready"]
    pid: int
    uid: int


class FatalMessage(_Message):
    type: Literal["fatal"]
    error: str


class CallbackMessage(_Message):
    type: Literal["callback"]
    name: str
    args: list[JsonValue]
    kwargs: dict[str, JsonValue]


class ResultMessage(_Message):
    type: Literal["result"]
    ok: bool
    stdout: str
    error: str | None
    final: str | None
    truncated: bool


ChildMessage = ReadyMessage | FatalMessage | CallbackMessage | ResultMessage
_MESSAGE = TypeAdapter(Annotated[ChildMessage, Field(discriminator="type")])


def parse_message(line: bytes) -> ChildMessage:
    """Validate one line from the child; ProtocolError for anything else."""
    try:
        return _MESSAGE.validate_json(line)
    except ValidationError as e:
        first = e.errors(include_url=False)[0]
        raise ProtocolError(f"invalid message from the sandbox: {first['msg']}") from None


class LineReader:
    """Reads newline-terminated messages from a non-blocking fd, refusing over-long lines."""

    def __init__(self, fd: int, max_bytes: int) -> None:
        self.fd, self.max_bytes = fd, max_bytes
        self.buffer = bytearray()
        os.set_blocking(fd, False)

    def read_line(self, deadline: float) -> bytes | None:
        """The next line, or None once `deadline` (time.monotonic) passes first."""
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                line = bytes(self.buffer[:end])
                del self.buffer[: end + 1]
                if len(line) > self.max_bytes:
                    raise ProtocolError(f"message from the sandbox over {self.max_bytes} bytes")
                return line
            if len(self.buffer) > self.max_bytes:
                raise ProtocolError(f"message from the sandbox over {self.max_bytes} bytes")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            readable, _, _ = select.select([self.fd], [], [], remaining)
            if readable:
                self._fill()

    def _fill(self) -> None:
        try:
            chunk = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return
        if not chunk:
            raise ChildExited
        self.buffer += chunk


def write_all(fd: int, data: bytes, deadline: float) -> None:
    """Write everything to a non-blocking fd; ChildExited if the child is gone or stuck."""
    view = memoryview(data)
    while view:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ChildExited
        _, writable, _ = select.select([], [fd], [], remaining)
        if not writable:
            continue
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            continue
        except (BrokenPipeError, OSError):
            raise ChildExited from None


@functools.cache
def network_isolation() -> tuple[str, ...]:
    """The command prefix that gives the child an empty network namespace, or () if none works.

    Tried once per process: `unshare -n` (needs root or CAP_SYS_ADMIN), then `unshare -r -n`
    (an unprivileged user namespace, where the kernel allows those).
    """
    unshare = shutil.which("unshare")
    if unshare is None:
        return ()
    for flags in (("-n",), ("-r", "-n")):
        command = [unshare, *flags, "--", sys.executable, "-I", "-c", "pass"]
        try:
            probe = subprocess.run(
                command,
                env={},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            continue
        if probe.returncode == 0:
            return (unshare, *flags, "--")
    return ()


@dataclass
class Child:
    """One running child process and the parent's ends of its pipes."""

    process: subprocess.Popen[bytes]
    to_child: int
    reader: LineReader
    workdir: str
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def spawn(cls, config: dict[str, Any], isolate_network: bool, max_bytes: int) -> Child:
        workdir = tempfile.mkdtemp(prefix="edgeagent-sandbox-")
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        prefix = network_isolation() if isolate_network else ()
        command = [*prefix, sys.executable, "-I", "-B", str(CHILD_SCRIPT)]
        command += [str(to_child_r), str(from_child_w), json.dumps(config)]
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,  # only the interpreter itself writes here: crash text
                cwd=workdir,
                env={},
                pass_fds=(to_child_r, from_child_w),
                start_new_session=True,  # its own process group, killed as a whole
            )
        except OSError:
            for fd in (to_child_r, to_child_w, from_child_r, from_child_w):
                os.close(fd)
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        os.close(to_child_r)
        os.close(from_child_w)
        os.set_blocking(to_child_w, False)
        return cls(process, to_child_w, LineReader(from_child_r, max_bytes), workdir)

    def send(self, message: dict[str, Any] | str, timeout_s: float = 30.0) -> None:
        # ASCII-only JSON both ways: lone surrogates in code or output cannot break the encoding.
        line = message if isinstance(message, str) else json.dumps(message)
        write_all(self.to_child, line.encode() + b"\n", time.monotonic() + timeout_s)

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """Kill the child's process group, reap it, close the pipes, remove its directory."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.process.kill()
        self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()
        for fd in (self.to_child, self.reader.fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def exit_reason(self) -> str:
        """Why a dead child died, in a few words, with the last line it wrote to stderr."""
        code = self.process.wait()
        reason = f"exit code {code}"
        if code < 0:
            reason = f"killed by {signal.Signals(-code).name}"
        last = self._stderr_tail().strip().splitlines()
        return f"{reason}: {last[-1]}" if last else reason

    def _stderr_tail(self) -> str:
        stream = self.process.stderr
        if stream is None:
            return ""
        os.set_blocking(stream.fileno(), False)
        try:
            data = stream.read(_STDERR_KEEP) or b""
        except OSError:
            data = b""
        finally:
            stream.close()
        return data.decode("utf-8", "replace")
