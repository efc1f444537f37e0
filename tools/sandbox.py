"""The `python` tool: a persistent, locked-down Python REPL for code the model writes.

What it protects against, in two layers:

- Language (RestrictedPython 9 plus tools/sandbox_guards.py): no `open`, `eval`, `exec`,
  `compile`, `globals`, `vars`, `input`, `help`, `exit`, `breakpoint`; imports only from an
  allowlist of pure-computation modules, handed out as read-only snapshots without their
  module-valued attributes (`datetime.sys`, `json.codecs`); no names or attributes starting with
  "_" (so no `__class__.__subclasses__()`, `__globals__`, `__builtins__`), no frame, code or
  traceback objects (`gi_frame`, `f_back`, `tb_frame`), no attribute walks through `str.format`,
  no 3-argument `type()`, writes only to lists, dicts and instances of classes the code defined.
- Process (tools/sandbox_child.py): a separate `python -I -B` with an empty environment, a
  temporary working directory (removed afterwards), root dropped to nobody when we have it,
  RLIMIT_CPU, RLIMIT_AS, RLIMIT_FSIZE 0 (no file writes), RLIMIT_NPROC 0 and the fork/exec/
  spawn functions removed (no new processes), RLIMIT_CORE 0, RLIMIT_NOFILE small; an empty
  network namespace via `unshare -n` where the system permits it (`network_isolation` says
  which), and the socket modules unimportable in any case; a wall-clock timeout after which the
  parent kills the child's process group; capped output, capped protocol lines, and protocol
  messages on a dedicated pipe, validated, so printed text can never pose as one.

What it does NOT protect against:

- Kernel or interpreter exploits: there is no seccomp filter, so code that escapes the language
  layer (a RestrictedPython or CPython bug) can make any system call the child's user may,
  within the rlimits. The process layer limits the damage; it does not make escapes impossible.
- Reading files: after such an escape, files readable by nobody (or by our user, where root
  could not be dropped) can be read and printed back; writing and forking stay blocked.
- The network, when `unshare` is not permitted: then only the language layer stops sockets.
- Side channels (CPU caches, Spectre-style attacks, timing), and use of the host's resources
  within the limits (CPU seconds, memory, the wall-clock timeout).
- What the parent hands in: variables set with `set_variable` are readable by the code, and a
  callback such as `llm_query` is a channel out of the sandbox: text the code sends it reaches
  the model (prompt injection), so budgets bound how often, not what.

One `Sandbox` owns one long-lived child; `run` executes in the same globals each time, like a
REPL. If the child dies (timeout, memory, crash) the next `run` starts a fresh one, re-sends the
variables set with `set_variable`, and reports `state_lost`. Not thread-safe: one caller.
"""

from __future__ import annotations

import json
import keyword
import time
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tools.base import Tool, ToolResult
from tools.sandbox_guards import ALLOWED_MODULES
from tools.sandbox_process import (
    CallbackMessage,
    Child,
    ChildExited,
    FatalMessage,
    ProtocolError,
    ReadyMessage,
    ResultMessage,
    network_isolation,
    parse_message,
)
from tools.settings import SandboxSettings

_RESERVED_NAMES = frozenset({"FINAL", "print", "printed"})
_MAX_ERROR_CHARS = 1000


class SandboxOutcome(BaseModel):
    """What one `run` did."""

    ok: bool
    stdout: str = ""
    error: str | None = None
    timed_out: bool = False
    final: str | None = None
    truncated: bool = False
    state_lost: bool = False


Callback = Callable[..., object]


class Sandbox:
    """A persistent restricted-Python REPL in a child process.

    `callbacks` maps names visible in the sandbox (e.g. "llm_query") to parent-side functions;
    each is called as `fn(*args, depth=self.depth, **kwargs)` with the JSON values the code
    passed, and its result goes back to the code as a string. Time spent in callbacks does not
    count against `timeout_s`; their number is capped per run and per sandbox.
    """

    def __init__(
        self,
        settings: SandboxSettings | None = None,
        *,
        callbacks: Mapping[str, Callback] | None = None,
        depth: int = 0,
    ) -> None:
        self.settings = settings or SandboxSettings()
        self.callbacks = dict(callbacks or {})
        for name in self.callbacks:
            _check_name(name)
        self.depth = depth
        self.callbacks_used = 0
        self._variables: dict[str, str] = {}  # name -> its encoded "set" message
        self._child: Child | None = None
        self._had_child = False
        self._finalizer: weakref.finalize | None = None

    @property
    def network_isolation(self) -> str:
        """How the child is kept off the network: "unshare -n", "unshare -r -n" or "none"."""
        prefix = network_isolation() if self.settings.isolate_network else ()
        return " ".join(["unshare", *prefix[1:-1]]) if prefix else "none"

    def info(self) -> dict[str, Any]:
        """Metadata for logs and tool results."""
        child = self._child.info if self._child else {}
        return {"network": self.network_isolation, "depth": self.depth, **child}

    def set_variable(self, name: str, value: Any) -> None:
        """Bind a JSON-able value in the sandbox globals; sent once, re-sent after a restart."""
        _check_name(name)
        if name in self.callbacks:
            raise ValueError(f"{name!r} is a callback of this sandbox")
        message = {"op": "set", "name": name, "value": value}
        line = json.dumps(message, allow_nan=False)
        self._variables[name] = line
        if self._child is not None and self._child.alive():
            try:
                self._child.send(line)
            except ChildExited:
                self._discard_child()

    def run(self, code: str) -> SandboxOutcome:
        """Run `code` in the persistent globals; never raises for anything the code does."""
        if not isinstance(code, str):
            raise TypeError("code must be a string")
        state_lost = False
        if self._child is None or not self._child.alive():
            state_lost = self._had_child
            self._discard_child()
            error = self._start()
            if error is not None:
                return SandboxOutcome(ok=False, error=error, state_lost=state_lost)
        outcome = self._run_in_child(code)
        outcome.state_lost = state_lost
        return outcome

    def close(self) -> None:
        """Kill the child and remove its directory; a later `run` starts a new one."""
        self._discard_child()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> str | None:
        config = self.settings.model_dump(include=_CHILD_SETTINGS)
        config["callbacks"] = sorted(self.callbacks)
        config["max_message_bytes"] = self.settings.max_message_bytes
        max_bytes = self.settings.max_message_bytes
        try:
            child = Child.spawn(config, self.settings.isolate_network, max_bytes)
        except OSError as e:
            return f"sandbox failed to start: {e}"
        self._child, self._had_child = child, True
        self._finalizer = weakref.finalize(self, child.kill)
        deadline = time.monotonic() + self.settings.startup_timeout_s
        try:
            message = self._read(deadline)
            if not isinstance(message, ReadyMessage):
                detail = message.error if isinstance(message, FatalMessage) else "no ready message"
                raise ProtocolError(detail)
            child.info = {"pid": message.pid, "uid": message.uid}
            for line in self._variables.values():
                child.send(line)
        except (ProtocolError, ChildExited, TimeoutError) as e:
            reason = child.exit_reason() if isinstance(e, ChildExited) else str(e) or "timeout"
            self._discard_child()
            return f"sandbox failed to start: {reason}"
        return None

    def _run_in_child(self, code: str) -> SandboxOutcome:
        assert self._child is not None
        deadline = time.monotonic() + self.settings.timeout_s
        calls = 0
        try:
            self._child.send({"op": "run", "code": code})
            while True:
                message = self._read(deadline)
                if isinstance(message, ResultMessage):
                    return self._outcome(message)
                if not isinstance(message, CallbackMessage):
                    raise ProtocolError(f"unexpected {message.type} message")
                started = time.monotonic()
                reply = self._answer(message, calls)
                calls += 1
                deadline += time.monotonic() - started  # the callback's time is not the code's
                self._child.send(reply)
        except TimeoutError:
            self._discard_child()
            return SandboxOutcome(
                ok=False, error=f"timed out after {self.settings.timeout_s} s", timed_out=True
            )
        except ChildExited:
            reason = self._child.exit_reason()
            self._discard_child()
            return SandboxOutcome(ok=False, error=f"sandbox process died ({reason})")
        except ProtocolError as e:
            self._discard_child()
            return SandboxOutcome(ok=False, error=f"sandbox protocol error: {e}")
        except BaseException:
            self._discard_child()  # e.g. KeyboardInterrupt in a callback: the child is mid-call
            raise

    def _read(self, deadline: float) -> Any:
        assert self._child is not None
        line = self._child.reader.read_line(deadline)
        if line is None:
            raise TimeoutError
        return parse_message(line)

    def _answer(self, message: CallbackMessage, calls_this_run: int) -> dict[str, Any]:
        """Call the parent-side function, within budget; every failure becomes an error reply."""
        fn = self.callbacks.get(message.name)
        if fn is None or "depth" in message.kwargs:
            return {"op": "callback_result", "ok": False, "error": f"bad call to {message.name}"}
        budget = None
        if calls_this_run >= self.settings.max_callbacks:
            budget = f"{self.settings.max_callbacks} calls per run"
        elif self.callbacks_used >= self.settings.max_callbacks_total:
            budget = f"{self.settings.max_callbacks_total} calls per sandbox"
        if budget is not None:
            error = f"{message.name}: budget of {budget} is used up"
            return {"op": "callback_result", "ok": False, "budget": True, "error": error}
        self.callbacks_used += 1
        try:
            value = fn(*message.args, depth=self.depth, **message.kwargs)
        except Exception as e:  # the code sees the failure, the agent goes on
            error = f"{message.name} failed: {type(e).__name__}: {e}"[:_MAX_ERROR_CHARS]
            return {"op": "callback_result", "ok": False, "error": error}
        return {"op": "callback_result", "ok": True, "value": str(value)}

    def _outcome(self, message: ResultMessage) -> SandboxOutcome:
        """The child's result, capped again here: the child is not trusted to have done so."""
        limit = self.settings.output_chars
        stdout, truncated = message.stdout[:limit], message.truncated or len(message.stdout) > limit
        error = message.error[:_MAX_ERROR_CHARS] if message.error is not None else None
        if error is None and not message.ok:
            error = "unknown error"
        final = message.final[: self.settings.final_chars] if message.final is not None else None
        return SandboxOutcome(
            ok=error is None, stdout=stdout, error=error, final=final, truncated=truncated
        )

    def _discard_child(self) -> None:
        if self._finalizer is not None:
            self._finalizer()  # kills the child once; detaches itself
            self._finalizer = None
        self._child = None


_CHILD_SETTINGS = {
    "cpu_s",
    "cpu_total_s",
    "memory_mb",
    "output_chars",
    "flood_chars",
    "final_chars",
    "open_files",
}


def _check_name(name: str) -> None:
    if (
        not isinstance(name, str)
        or not name.isidentifier()
        or name.startswith("_")
        or keyword.iskeyword(name)
        or name in _RESERVED_NAMES
    ):
        raise ValueError(f"{name!r} cannot be a sandbox variable or callback name")


def run_file(path: str, settings: SandboxSettings | None = None) -> SandboxOutcome:
    """Run one file in a fresh sandbox (the `edgeagent sandbox FILE` command)."""
    try:
        code = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        return SandboxOutcome(ok=False, error=f"cannot read {path}: {e}")
    with Sandbox(settings) as sandbox:
        return sandbox.run(code)


class PythonArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(description="Python code; the value of a final expression is shown")


def python_tool(sandbox: Sandbox) -> Tool:
    """The `python` tool over one sandbox (its state lasts for the episode)."""
    names = ", ".join(m for m in ALLOWED_MODULES)
    extras = "".join(f" {name}(...) is available." for name in sorted(sandbox.callbacks))
    description = (
        "Run Python code in a sandbox that keeps its variables between calls. Use print() to "
        "show results; a final expression's value is shown too. No files, network or OS "
        f"access; importable modules: {names}. Call FINAL(answer) to give your final answer."
        + extras
    )

    def run(args: PythonArgs) -> ToolResult:
        outcome = sandbox.run(args.code)
        return outcome_result(outcome, sandbox)

    return Tool(name="python", description=description, args=PythonArgs, fn=run)


def outcome_result(outcome: SandboxOutcome, sandbox: Sandbox) -> ToolResult:
    """A ToolResult whose text is the output, followed by the error line when the run failed."""
    parts = []
    if outcome.state_lost:
        parts.append("[the sandbox was restarted: variables from earlier calls are lost]")
    if outcome.stdout:
        parts.append(outcome.stdout.rstrip("\n"))
    if outcome.error is not None:
        parts.append(outcome.error)
    metadata = outcome.model_dump(include={"timed_out", "final", "state_lost"}) | sandbox.info()
    return ToolResult(
        text="\n".join(parts),
        error=outcome.error,
        truncated=outcome.truncated,
        metadata=metadata,
    )
