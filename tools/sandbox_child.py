"""The sandbox's child process: locks itself down, then runs restricted code for its parent.

tools/sandbox.py starts it as `python -I -B sandbox_child.py READ_FD WRITE_FD CONFIG_JSON` in an
empty environment and a throwaway directory. Before reading any code it imports everything it
will ever need, drops root when it has it, sets its rlimits and removes the Python-level ways to
start processes or open sockets. Then it reads JSON-line requests on READ_FD (set a variable,
run code, a callback's answer) and writes JSON-line replies on WRITE_FD; fd 1 and 2 go nowhere
the code can use, so printed text can never pass for a protocol message.

It is not meant to be imported by the agent, and it does not defend itself against its parent:
the parent is trusted, the code it runs is not.
"""

from __future__ import annotations

import ast
import contextlib
import gc
import json
import math
import os
import resource
import signal
import sys
import warnings
from collections.abc import Callable
from typing import Any, TextIO

from RestrictedPython import compile_restricted_eval, compile_restricted_exec

if __package__:
    from tools import sandbox_guards as guards
else:
    # Started as a script under `python -I`, which keeps our own directory off sys.path; append
    # it (never prepend: a tools/ file must not shadow the standard library).
    sys.path.append(os.path.dirname(os.path.abspath(__file__)))
    import sandbox_guards as guards  # noqa: E402

_NOBODY = 65534
_BALLAST_BYTES = 4 * 2**20  # freed on MemoryError so we can still report it
_ERROR_CHARS = 500
# fmt: off
_PROCESS_FUNCTIONS = (
    "fork", "forkpty", "system", "popen", "posix_spawn", "posix_spawnp", "execv", "execve",
    "execl", "execle", "execlp", "execlpe", "execvp", "execvpe", "spawnl", "spawnle",
    "spawnlp", "spawnlpe", "spawnv", "spawnve", "spawnvp", "spawnvpe", "kill", "killpg",
    "register_at_fork",
)
_BLOCKED_MODULES = (
    "subprocess", "_posixsubprocess", "socket", "_socket", "ssl", "_ssl", "select",
    "selectors", "ctypes", "_ctypes", "multiprocessing", "_multiprocessing", "threading",
    "_thread", "pty", "fcntl", "mmap", "signal", "_signal", "resource",
)
# fmt: on


class CpuLimitExceeded(BaseException):
    """Raised into user code by SIGXCPU; a BaseException so `except Exception` can't eat it."""


class OutputLimitExceeded(BaseException):
    """Raised by print once the code has printed far more than we keep."""


class CallbackError(Exception):
    """A callback to the parent failed; the parent's message says why."""


class CallbackBudgetExceeded(CallbackError):
    """The parent refused a callback because its per-run or per-sandbox budget is spent."""


def harden_process(config: dict[str, Any]) -> dict[str, Any]:
    """Drop root, set rlimits, remove fork/exec/socket entry points; returns what was done."""
    uid = _drop_root()
    _set_limit(resource.RLIMIT_CORE, 0)
    _set_limit(resource.RLIMIT_FSIZE, 0)
    _set_limit(resource.RLIMIT_NPROC, 0)  # per user and not enforced for root: see _drop_root
    _set_limit(resource.RLIMIT_AS, config["memory_mb"] * 2**20)
    _set_limit(resource.RLIMIT_NOFILE, config["open_files"])
    _set_limit(resource.RLIMIT_CPU, config["cpu_total_s"])  # lifetime cap; runs get a soft one
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past FSIZE fails instead of killing
    posix = sys.modules[os.name]
    for module in (os, posix):
        for name in _PROCESS_FUNCTIONS:
            if hasattr(module, name):
                setattr(module, name, _process_denied)
    for name in _BLOCKED_MODULES:
        sys.modules[name] = None  # type: ignore[assignment]  # makes `import name` fail
    return {"uid": uid}


def _drop_root() -> int:
    # RLIMIT_NPROC does not bind root, and root can read every file: become nobody when we can.
    if os.geteuid() == 0:
        try:
            os.setgroups([])
            os.setgid(_NOBODY)
            os.setuid(_NOBODY)
        except OSError:
            pass  # e.g. inside a user namespace where 65534 is not mapped
    return os.geteuid()


def _set_limit(which: int, value: int) -> None:
    _, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(which, (value, value))


def _process_denied(*args: object, **kwargs: object) -> None:
    raise PermissionError("starting processes is disabled in the sandbox")


def _arm_cpu_limit(cpu_s: int) -> None:
    """A soft CPU limit `cpu_s` seconds from now (the hard one is the process's lifetime cap)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(usage.ru_utime + usage.ru_stime + cpu_s)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


class Capture:
    """The code's printed output: keeps `cap` characters, aborts after `flood` characters."""

    def __init__(self, cap: int, flood: int) -> None:
        self.cap, self.flood = cap, flood
        self.parts: list[str] = []
        self.kept = self.seen = 0
        self.truncated = False

    def write(self, text: str) -> int:
        text = clean_text(text)
        self.seen += len(text)
        room = self.cap - self.kept
        if len(text) > room:
            text, self.truncated = text[: max(room, 0)], True
        if text:
            self.parts.append(text)
            self.kept += len(text)
        if self.seen > self.flood:
            raise OutputLimitExceeded(f"more than {self.flood} characters printed")
        return len(text)

    def flush(self) -> None:
        pass

    def text(self) -> str:
        return "".join(self.parts)


class Printer:
    """What `print` compiles to under RestrictedPython (`_print_(_getattr_)._call_print`)."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def _call_print(
        self, *objects: object, sep: str | None = " ", end: str | None = "\n", **kw: object
    ) -> None:
        if kw.get("file") is not None:
            raise TypeError("print(file=...) is not available in the sandbox")
        sep = " " if sep is None else sep
        end = "\n" if end is None else end
        if type(sep) is not str or type(end) is not str:
            raise TypeError("sep and end must be strings")
        self._runtime.capture.write(sep.join(str(obj) for obj in objects) + end)

    def __call__(self) -> str:  # the `printed` name
        return self._runtime.capture.text()


class Runtime:
    """One child's state: the protocol pipes, the persistent globals, the current run."""

    def __init__(self, config: dict[str, Any], reader: TextIO, writer: TextIO) -> None:
        self.config = config
        self.reader, self.writer = reader, writer
        self.capture = Capture(config["output_chars"], config["flood_chars"])
        self.final: str | None = None
        self.in_user_code = False
        self.ballast: bytearray | None = bytearray(_BALLAST_BYTES)
        extra: dict[str, Any] = {"_print_": lambda _getattr_=None: Printer(self)}
        extra["FINAL"] = self.record_final
        for name in config["callbacks"]:
            extra[name] = self.make_callback(name)
        builtins = guards.make_builtins(guards.build_modules(), extra)
        self.globals: dict[str, Any] = {"__builtins__": builtins, "__name__": "__sandbox__"}

    def send(self, message: dict[str, Any]) -> None:
        # ASCII-only JSON: a lone surrogate the code printed must not break the encoding.
        self.writer.write(json.dumps(message) + "\n")
        self.writer.flush()

    def receive(self) -> dict[str, Any]:
        line = self.reader.readline()
        if not line:
            os._exit(0)  # the parent is gone: nobody is left to answer
        return json.loads(line)

    def record_final(self, answer: object) -> None:
        self.final = clean_text(str(answer)[: self.config["final_chars"]])

    def make_callback(self, name: str) -> Callable[..., str]:
        def callback(*args: Any, **kwargs: Any) -> str:
            if "depth" in kwargs:
                raise TypeError(f"{name}() got an unexpected keyword argument 'depth'")
            message = {"type": "callback", "name": name, "args": _plain(args)}
            message["kwargs"] = _plain(kwargs)
            if len(json.dumps(message)) > self.config["max_message_bytes"]:
                raise ValueError(f"{name}(): arguments too large")
            # No CPU-limit exception may land mid-exchange: it would desync the protocol.
            self.in_user_code = False
            try:
                self.send(message)
                reply = self.receive()
            finally:
                self.in_user_code = True
            if reply.get("ok"):
                return str(reply.get("value", ""))
            error_class = CallbackBudgetExceeded if reply.get("budget") else CallbackError
            raise error_class(str(reply.get("error")))

        callback.__name__ = callback.__qualname__ = name
        return callback

    def run(self, code: str) -> dict[str, Any]:
        self.capture = Capture(self.config["output_chars"], self.config["flood_chars"])
        self.final = None
        error = None
        try:
            body, last = compile_user_code(code)
        except SyntaxError as e:
            error = e.msg
        except Exception as e:  # e.g. RecursionError from absurdly nested code, null bytes
            error = describe_error(e)
        else:
            try:
                error = self.execute(body, last)
            except CpuLimitExceeded as e:  # landed in execute's own lines, after the code
                self.in_user_code = False
                error = describe_error(e)
        return {
            "type": "result",
            "ok": error is None,
            "stdout": self.capture.text(),
            "error": error,
            "final": self.final,
            "truncated": self.capture.truncated,
        }

    def execute(self, body: Any, last: Any) -> str | None:
        self.globals["_print"] = Printer(self)  # for print() in a trailing expression
        _arm_cpu_limit(self.config["cpu_s"])
        self.in_user_code = True
        try:
            exec(body, self.globals)
            if last is not None:
                value = eval(last, self.globals)
                if value is not None:
                    self.capture.write(repr(value)[: self.config["output_chars"]] + "\n")
        except MemoryError:
            self.ballast = None  # give back room to build the reply
            gc.collect()
            return f"MemoryError: out of memory (limit {self.config['memory_mb']} MB)"
        except BaseException as e:  # everything the code raises is its result
            return describe_error(e)
        finally:
            self.in_user_code = False
        return None

    def restore_ballast(self) -> None:
        if self.ballast is None:
            with contextlib.suppress(MemoryError):
                self.ballast = bytearray(_BALLAST_BYTES)


def compile_user_code(code: str) -> tuple[Any, Any]:
    """Restricted code objects for the statements and, REPL-style, a trailing expression."""
    try:
        tree = ast.parse(code, "<sandbox>", "exec")
    except SyntaxError as e:
        where = f" (line {e.lineno})" if e.lineno else ""
        raise SyntaxError(f"SyntaxError: {e.msg}{where}") from None
    for node in ast.walk(tree):
        # Annotations do nothing here, and string ones are what typing.get_type_hints would
        # eval() outside RestrictedPython if anything ever asked for them: drop them.
        if isinstance(node, ast.arg):
            node.annotation = None
        elif isinstance(node, ast.FunctionDef):
            node.returns = None
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(body=tree.body.pop().value)
    body = compile_restricted_exec(ast.Module(body=tree.body, type_ignores=[]), "<sandbox>")
    errors = list(body.errors)
    last_code = None
    if last is not None:
        compiled = compile_restricted_eval(last, "<sandbox>")
        errors.extend(compiled.errors)
        last_code = compiled.code
    if errors:
        raise SyntaxError("SyntaxError: " + "; ".join(errors))
    return body.code, last_code


def describe_error(e: BaseException) -> str:
    """One readable line: "NameError: name 'x' is not defined"."""
    try:
        message = " ".join(str(e).split())
    except Exception:  # a broken __str__ must not break the report
        message = ""
    line = f"{type(e).__name__}: {message}" if message else type(e).__name__
    return clean_text(line[:_ERROR_CHARS])


def clean_text(text: str) -> str:
    """`text` with lone surrogates replaced: the parent accepts only valid Unicode."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def _plain(value: Any, depth: int = 0) -> Any:
    """A copy made of exact JSON types only, so no user-defined method runs while we encode."""
    if depth > 50:
        raise ValueError("callback arguments are nested too deeply")
    if type(value) is str:
        return clean_text(value)
    if type(value) is float and not math.isfinite(value):
        raise ValueError("callback arguments must be finite numbers")  # JSON has no NaN
    if value is None or type(value) in (int, float, bool):
        return value
    if type(value) in (list, tuple):
        return [_plain(item, depth + 1) for item in value]
    if type(value) is dict and all(type(key) is str for key in value):
        return {key: _plain(item, depth + 1) for key, item in value.items()}
    raise TypeError("callback arguments must be str, int, float, bool, None, list or dict")


class _Discard:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def serve(runtime: Runtime) -> None:
    """Answer the parent's requests until it closes the pipe."""
    while True:
        request = runtime.receive()
        if request.get("op") == "set":
            runtime.globals[request["name"]] = request["value"]
        elif request.get("op") == "run":
            runtime.send(runtime.run(request["code"]))
            runtime.restore_ballast()


def main(argv: list[str]) -> None:
    reader = os.fdopen(int(argv[1]), "r", encoding="utf-8", newline="\n")
    writer = os.fdopen(int(argv[2]), "w", encoding="utf-8", newline="\n")
    try:
        config = json.loads(argv[3])
        warnings.simplefilter("ignore")  # warnings would print to stderr, which goes nowhere
        runtime = Runtime(config, reader, writer)
        sys.stdout = sys.stderr = _Discard()  # the code prints through Printer, never here
        info = harden_process(config)
        signal.signal(signal.SIGXCPU, lambda signum, frame: _on_cpu_limit(runtime))
    except Exception as e:  # report any startup failure to the parent
        writer.write(json.dumps({"type": "fatal", "error": describe_error(e)}) + "\n")
        writer.flush()
        raise SystemExit(1) from None
    runtime.send({"type": "ready", "pid": os.getpid(), **info})
    serve(runtime)


def _on_cpu_limit(runtime: Runtime) -> None:
    # The kernel repeats SIGXCPU every CPU second past the soft limit: if the code catches
    # this, it gets it again, until the parent's wall-clock timeout or the hard limit ends it.
    if runtime.in_user_code:
        raise CpuLimitExceeded(f"CPU time limit of {runtime.config['cpu_s']} s exceeded")


if __name__ == "__main__":
    main(sys.argv)
