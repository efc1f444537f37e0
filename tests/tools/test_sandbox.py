"""The python sandbox, end to end: real child processes, real limits, no mocks of the sandbox.

Escape attempts print a sentinel if they get through; each must fail with the expected kind of
error and leave the shared sandbox working (checked after every case), so one case breaking
the sandbox cannot make the others pass.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tools.sandbox import Sandbox, SandboxOutcome, SandboxSettings, python_tool, run_file
from tools.sandbox_guards import build_modules
from tools.sandbox_process import (
    CHILD_SCRIPT,
    ChildExited,
    LineReader,
    ProtocolError,
    network_isolation,
    parse_message,
)

SENTINEL = "ESCAPED-7f3a"
FAST = SandboxSettings(timeout_s=5, cpu_s=2, memory_mb=256)


@pytest.fixture(scope="module")
def shared() -> Iterator[Sandbox]:
    with Sandbox(FAST) as sandbox:
        yield sandbox


def assert_alive(sandbox: Sandbox) -> None:
    outcome = sandbox.run("print(6 * 7)")
    assert outcome.ok and outcome.stdout == "42\n", outcome


# (id, code, a piece of the expected error). Each code prints SENTINEL only if it got through.
ESCAPES = [
    ("subclass-walk", "().__class__.__bases__[0].__subclasses__()", "invalid attribute name"),
    ("subclass-getattr", "getattr(getattr((), '__class__'), '__base__')", "not allowed"),
    ("subclass-mro", "o = type(()).mro()[-1]\ngetattr(o, '__subclasses__')()", "not allowed"),
    (
        "gi-frame-walk",
        "def g():\n    yield 1\nit = g()\nit.gi_frame.f_back.f_globals",
        "restricted name",
    ),
    ("gi-frame-getattr", "def g():\n    yield 1\ngetattr(g(), 'gi_frame')", "not allowed"),
    ("gi-code", "def g():\n    yield 1\ngetattr(g(), 'gi_code')", "not allowed"),
    ("coroutine", "async def c():\n    pass\nc().cr_frame", "not allowed"),
    ("f-globals", "def f():\n    pass\ngetattr(f, '__globals__')['__builtins__']", "not allowed"),
    ("f-code", "def f():\n    pass\nf.__code__", "invalid attribute name"),
    ("traceback", "try:\n    1 / 0\nexcept Exception as e:\n    e.__traceback__", "invalid"),
    (
        "traceback-getattr",
        "try:\n    1 / 0\nexcept Exception as e:\n    tb = getattr(e, '__traceback__')",
        "not allowed",
    ),
    ("str-format-walk", "'{0.__class__.__mro__}'.format(1)", "not allowed"),
    ("str-format-globals", "def f():\n    pass\n'{0.__globals__}'.format(f)", "not allowed"),
    ("format-map", "'{x.__class__}'.format_map({'x': 1})", "not allowed"),
    ("str-format-unbound", "str.format('{0.__class__}', 1)", "not allowed"),
    ("fstring-walk", "f'{().__class__}'", "invalid attribute name"),
    (
        "string-formatter",
        "import string\nstring.Formatter().get_field('0.__class__', [1], {})",
        "has no attribute 'Formatter'",
    ),
    (
        "userstring-format",
        "import collections\ncollections.UserString('{0.__class__}').format(1)",
        "not allowed",
    ),
    ("import-os", "import os\nos.system('true')", "import of 'os' is not allowed"),
    ("import-os-path", "import os.path", "import of 'os.path' is not allowed"),
    ("dunder-import", "__import__('os')", "invalid variable name"),
    ("importlib", "import importlib\nimportlib.import_module('os')", "not allowed"),
    ("sys", "import sys\nsys.modules['os']", "import of 'sys' is not allowed"),
    ("builtins-module", "from builtins import open", "import of 'builtins' is not allowed"),
    ("open", "open('/etc/passwd').read()", "NameError"),
    ("write-file", "open('owned.txt', 'w').write('x')", "NameError"),
    ("eval", "eval('1 + 1')", "Eval calls are not allowed"),
    ("exec", "exec('x = 1')", "Exec calls are not allowed"),
    ("eval-alias", "e = eval\ne('1')", "NameError"),
    ("compile", "compile('1', 'x', 'eval')", "NameError"),
    ("ctypes", "import ctypes\nctypes.CDLL(None)", "not allowed"),
    ("attrgetter", "import operator\noperator.attrgetter('__globals__')", "not allowed"),
    ("getattr-dict", "getattr(print, '__dict__')", "not allowed"),
    ("getattr-self", "getattr(len, '__self__').open", "not allowed"),
    ("vars", "vars()", "NameError"),
    ("globals", "globals()['__builtins__']", "NameError"),
    ("locals-dir", "dir()", "NameError"),
    ("type-3-arg", "type('X', (object,), {'__getattr__': lambda s, n: n})", "3 arguments"),
    ("type-of-class", "T = type(int)\nT('X', (), {})", "not available"),
    ("metaclass-kw", "class X(metaclass=type):\n    pass", "metaclass"),
    ("numbers-abcmeta", "import numbers\nnumbers.ABCMeta('X', (), {})", "has no attribute"),
    ("datetime-sys", "import datetime\ndatetime.sys.modules['os']", "has no attribute 'sys'"),
    ("statistics-sys", "import statistics\nstatistics.sys.modules", "has no attribute 'sys'"),
    ("fractions-sys", "import fractions\ngetattr(fractions, 'sys').modules", "no attribute"),
    ("random-os", "import random\nrandom._os.system('true')", "invalid attribute name"),
    ("random-os-getattr", "import random\ngetattr(random, '_os')", "not allowed"),
    ("json-codecs", "import json\njson.codecs.open('/etc/passwd')", "has no attribute"),
    ("json-decoder", "from json import decoder", "ImportError"),
    ("re-copyreg", "import re\nre.copyreg", "has no attribute"),
    ("builtins-subscript", "__builtins__['open']", "invalid variable name"),
    ("socket", "import socket\nsocket.socket()", "import of 'socket' is not allowed"),
    ("subprocess", "import subprocess\nsubprocess.run(['id'])", "not allowed"),
    ("signal", "import signal\nsignal.alarm(1)", "not allowed"),
    ("threading", "import threading\nthreading.Thread", "not allowed"),
    ("pickle", "import pickle\npickle.loads(b'')", "not allowed"),
    ("multiprocessing", "import multiprocessing", "not allowed"),
    (
        "decorator",
        "def steal(fn):\n    return getattr(fn, '__globals__')\n@steal\ndef g():\n    pass",
        "not allowed",
    ),
    (
        "singledispatch-annotation-eval",
        "import functools\n@functools.singledispatch\ndef f(x):\n    pass\n"
        "def g(x: '().__class__.__base__.__subclasses__()'):\n    pass\nf.register(g)",
        "has no attribute 'singledispatch'",
    ),
    (
        "update-wrapper-getattr",
        "import functools\nclass A:\n    pass\n"
        "functools.update_wrapper(A(), len, assigned=('__self__',), updated=())",
        "unexpected keyword argument 'assigned'",
    ),
    ("from-underscore-module", "from _strptime import time", "not allowed"),
    ("reduce-getattr", "import functools\nfunctools.reduce(getattr, ['__class__'], 1)", "not"),
    ("rebind-guard", "_getattr_ = lambda o, n: 1", "invalid variable name"),
    ("module-write", "import math\nmath.floor = print", "TypeError"),
    ("module-setattr", "import math\nsetattr(math, 'floor', print)", "TypeError"),
    ("setattr-dunder", "class A:\n    pass\nsetattr(A(), '__class__', int)", "not allowed"),
    ("breakpoint", "breakpoint()", "reserved name"),
    ("help", "help(len)", "NameError"),
    ("exit", "exit(0)", "NameError"),
    ("input", "input()", "NameError"),
    ("super", "super()", "NameError"),
]


@pytest.mark.parametrize(
    ("code", "expected"), [c[1:] for c in ESCAPES], ids=[c[0] for c in ESCAPES]
)
def test_escape_attempt_is_blocked(shared: Sandbox, code: str, expected: str) -> None:
    outcome = shared.run(f"{code}\nprint({SENTINEL!r})")
    assert not outcome.ok
    assert SENTINEL not in outcome.stdout
    assert outcome.error is not None and expected in outcome.error
    assert_alive(shared)


def test_escape_list_is_long_and_distinct() -> None:
    assert len({code for _, code, _ in ESCAPES}) == len(ESCAPES) >= 25


def test_the_sentinel_would_show_if_code_got_through(shared: Sandbox) -> None:
    # Guards the escape tests themselves: code that runs does print the sentinel.
    outcome = shared.run(f"x = (1).real\nprint({SENTINEL!r})")
    assert outcome.ok and SENTINEL in outcome.stdout


def test_allowed_modules_expose_no_module_objects() -> None:
    proxies = build_modules()
    assert proxies["textwrap"].re is proxies["re"]  # allowed modules stay reachable, as proxies
    for name, proxy in proxies.items():
        values = proxy._names  # test-only peek at the snapshot
        assert not any(isinstance(v, ModuleType) for v in values.values()), name
        assert not {"os", "sys", "_os", "codecs", "subprocess"} & set(values), name
        assert all(not n.startswith("_") for n in values), name
        assert not any(isinstance(v, type) and issubclass(v, type) for v in values.values())


def test_useful_python_still_works(shared: Sandbox) -> None:
    code = """
import collections, datetime, json, math, re, statistics
from collections.abc import Mapping

class Point:
    def __init__(self, x, y):
        self.x = x
        self.y = y

p = Point(3, 4)
total = 0
for a, b in [(1, 2), (3, 4)]:
    total += a * b
print(math.hypot(p.x, p.y), total, "{0.x}/{1:>3}".format(p, "ok"), f"{p.y!r}")
print(json.dumps(collections.Counter("abca").most_common(1)), statistics.mean([1, 2, 3]))
print(datetime.datetime.strptime("2024-05-06", "%Y-%m-%d").month)
isinstance({}, Mapping), re.findall(r"\\d+", "a1b22")
"""
    outcome = shared.run(code)
    assert outcome.ok, outcome.error
    assert outcome.stdout.splitlines() == [
        "5.0 14 3/ ok 4",
        '[["a", 2]] 2',
        "5",
        "(True, ['1', '22'])",
    ]


def test_errors_are_one_readable_line(shared: Sandbox) -> None:
    assert shared.run("undefined_name").error == "NameError: name 'undefined_name' is not defined"
    assert shared.run("import os").error == "ImportError: import of 'os' is not allowed"
    assert shared.run("x = (").error.startswith("SyntaxError: ")
    assert shared.run("raise ValueError('bad\\nvalue')").error == "ValueError: bad value"


def test_state_persists_across_runs() -> None:
    with Sandbox(FAST) as sandbox:
        assert sandbox.run("def sq(n):\n    return n * n\nseen = [sq(3)]").ok
        outcome = sandbox.run("seen.append(sq(4))\nseen")
        assert outcome.ok and outcome.stdout == "[9, 16]\n" and not outcome.state_lost


def test_expression_value_is_shown_and_capped() -> None:
    with Sandbox(SandboxSettings(output_chars=100)) as sandbox:
        assert sandbox.run("1 + 1").stdout == "2\n"
        assert sandbox.run("None").stdout == ""
        outcome = sandbox.run("list(range(1000))")
        assert outcome.ok and outcome.truncated and len(outcome.stdout) <= 100


def test_cpu_bound_loop_stops_and_keeps_state() -> None:
    with Sandbox(SandboxSettings(timeout_s=10, cpu_s=1)) as sandbox:
        sandbox.run("kept = 'yes'")
        start = time.monotonic()
        outcome = sandbox.run("while True:\n    pass")
        assert time.monotonic() - start < 5
        assert not outcome.ok and "CpuLimitExceeded" in (outcome.error or "")
        after = sandbox.run("kept")
        assert after.stdout == "'yes'\n" and not after.state_lost


def test_wall_clock_timeout_kills_and_next_run_reports_state_lost() -> None:
    with Sandbox(SandboxSettings(timeout_s=1, cpu_s=60)) as sandbox:
        sandbox.set_variable("context", "survives restarts")
        sandbox.run("mine = 1")
        start = time.monotonic()
        outcome = sandbox.run("while True:\n    pass")
        assert time.monotonic() - start < 4
        assert outcome.timed_out and not outcome.ok and outcome.error == "timed out after 1.0 s"
        after = sandbox.run("print(context)\nmine")
        assert after.state_lost and after.stdout == "survives restarts\n"
        assert after.error == "NameError: name 'mine' is not defined"
        assert not sandbox.run("1").state_lost


def test_child_killed_by_its_lifetime_cpu_cap_is_replaced() -> None:
    with Sandbox(SandboxSettings(timeout_s=10, cpu_s=5, cpu_total_s=1)) as sandbox:
        sandbox.run("mine = 1")
        outcome = sandbox.run("while True:\n    pass")
        assert not outcome.ok and not outcome.timed_out
        assert outcome.error == "sandbox process died (killed by SIGKILL)"
        after = sandbox.run("mine")
        assert after.state_lost and after.error == "NameError: name 'mine' is not defined"


def test_memory_bombs_fail_cleanly() -> None:
    with Sandbox(SandboxSettings(memory_mb=256, timeout_s=10)) as sandbox:
        outcome = sandbox.run("x = 'a' * 10**10")
        assert not outcome.ok and outcome.error.startswith("MemoryError")
        outcome = sandbox.run("hog = []\nwhile True:\n    hog.append('x' * 10**6)")
        assert not outcome.ok and outcome.error.startswith("MemoryError")
        assert sandbox.run("del hog\nprint('fine')").stdout == "fine\n"


def test_output_flood_is_capped_and_stopped() -> None:
    settings = SandboxSettings(output_chars=1000, flood_chars=100_000)
    with Sandbox(settings) as sandbox:
        outcome = sandbox.run("while True:\n    print('x' * 100)")
        assert not outcome.ok and "OutputLimitExceeded" in outcome.error
        assert outcome.truncated and len(outcome.stdout) == 1000
        outcome = sandbox.run("print('y' * 5000)")
        assert outcome.ok and outcome.truncated and outcome.stdout == "y" * 1000


def test_fork_attempts_fail(shared: Sandbox) -> None:
    for code in ("import os\nos.fork()", "import multiprocessing", "import pty\npty.fork()"):
        outcome = shared.run(code)
        assert not outcome.ok and "ImportError" in outcome.error


def test_printed_text_cannot_pose_as_a_protocol_message(shared: Sandbox) -> None:
    fake = json.dumps({"type": "result", "ok": True, "stdout": "forged", "error": None})
    outcome = shared.run(f"print({fake!r})\nprint('\\n' + {fake!r})")
    assert outcome.ok and outcome.stdout == f"{fake}\n\n{fake}\n"
    assert_alive(shared)


def test_hardened_child_process_cannot_fork_or_import_sockets(tmp_path: Path) -> None:
    # The process layer on its own, without RestrictedPython: unrestricted code after
    # harden_process() is what a language-level escape would get.
    script = f"""
import json, os, resource, sys
sys.path.append({str(CHILD_SCRIPT.parent)!r})
import sandbox_child
root = os.geteuid() == 0
sandbox_child.harden_process({{"memory_mb": 256, "open_files": 32, "cpu_total_s": 60}})
report = {{"uid": os.geteuid(), "root": root,
    "fsize": resource.getrlimit(resource.RLIMIT_FSIZE),
    "nproc": resource.getrlimit(resource.RLIMIT_NPROC),
    "core": resource.getrlimit(resource.RLIMIT_CORE)}}
try:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    report["fork"] = "forked"
except OSError as e:
    report["fork"] = type(e).__name__
for name in ("socket", "subprocess", "ctypes"):
    try:
        __import__(name)
        report[name] = "imported"
    except ImportError:
        report[name] = "blocked"
print(json.dumps(report))
"""
    done = subprocess.run(
        [sys.executable, "-I", "-B", "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["fork"] == "PermissionError"
    assert report["socket"] == report["subprocess"] == report["ctypes"] == "blocked"
    assert report["fsize"] == [0, 0] and report["nproc"] == [0, 0] and report["core"] == [0, 0]
    if report["root"]:
        assert report["uid"] != 0  # dropped to nobody, so RLIMIT_NPROC applies


def test_network_namespace_has_no_route_even_to_the_parent() -> None:
    prefix = network_isolation()
    if not prefix:
        pytest.skip("unshare -n is not permitted here; only the import layer blocks sockets")
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        probe = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2)"

        def connect(command: list[str]) -> int:
            env = {"PATH": os.environ.get("PATH", "")}
            return subprocess.run(command, env=env, capture_output=True, timeout=20).returncode

        assert connect([sys.executable, "-I", "-c", probe]) == 0  # the probe can succeed
        assert connect([*prefix, sys.executable, "-I", "-c", probe]) != 0


def test_network_isolation_is_reported() -> None:
    sandbox = Sandbox(FAST)
    assert sandbox.network_isolation in ("unshare -n", "unshare -r -n", "none")
    off = Sandbox(FAST.model_copy(update={"isolate_network": False}))
    assert off.network_isolation == "none"
    assert off.run("1").ok
    off.close()


def test_llm_query_round_trip_depth_and_final() -> None:
    calls: list[tuple[str, str | None, int]] = []

    def llm_query(prompt: str, text: str | None = None, *, depth: int) -> str:
        calls.append((prompt, text, depth))
        return f"summary of {len(text or '')} chars"

    with Sandbox(FAST, callbacks={"llm_query": llm_query}, depth=2) as sandbox:
        outcome = sandbox.run("r = llm_query('Summarise', text='abcdef')\nprint(r)\nFINAL(r)")
        assert outcome.ok, outcome.error
        assert outcome.stdout == "summary of 6 chars\n" and outcome.final == "summary of 6 chars"
        assert calls == [("Summarise", "abcdef", 2)]
        assert sandbox.run("1").final is None


def test_callback_budgets_are_enforced() -> None:
    settings = FAST.model_copy(update={"max_callbacks": 2, "max_callbacks_total": 3})
    with Sandbox(settings, callbacks={"llm_query": lambda p, depth: p.upper()}) as sandbox:
        outcome = sandbox.run("for w in ['a', 'b', 'c']:\n    print(llm_query(w))")
        assert outcome.stdout == "A\nB\n"
        assert outcome.error == (
            "CallbackBudgetExceeded: llm_query: budget of 2 calls per run is used up"
        )
        outcome = sandbox.run("print(llm_query('d'))\nllm_query('e')")
        assert outcome.stdout == "D\n" and "3 calls per sandbox" in outcome.error
        assert sandbox.callbacks_used == 3


def test_callback_failures_and_bad_arguments_reach_the_code_not_the_parent() -> None:
    def broken(prompt: str, *, depth: int) -> str:
        raise RuntimeError("model offline")

    with Sandbox(FAST, callbacks={"llm_query": broken}) as sandbox:
        outcome = sandbox.run("llm_query('x')")
        assert outcome.error == "CallbackError: llm_query failed: RuntimeError: model offline"
        outcome = sandbox.run("class A:\n    pass\nllm_query(A())")
        assert outcome.error.startswith("TypeError: callback arguments must be")
        assert sandbox.run("llm_query('x', depth=0)").error.startswith("TypeError")


def test_callback_time_does_not_count_against_the_timeout() -> None:
    def slow(prompt: str, *, depth: int) -> str:
        time.sleep(1.0)
        return "done"

    settings = FAST.model_copy(update={"timeout_s": 0.5})
    with Sandbox(settings, callbacks={"llm_query": slow}) as sandbox:
        outcome = sandbox.run("llm_query('a')")
        assert outcome.ok and outcome.stdout == "'done'\n", outcome


def test_a_long_context_variable_is_sent_once() -> None:
    with Sandbox(FAST) as sandbox:
        sandbox.set_variable("context", "x" * 1_000_000)
        sandbox.set_variable("meta", {"n": [1, 2.5, "z"]})
        outcome = sandbox.run("len(context), context[:3], meta['n']")
        assert outcome.stdout == "(1000000, 'xxx', [1, 2.5, 'z'])\n"
        for bad in ("_hidden", "print", "not an identifier", "class"):
            with pytest.raises(ValueError):
                sandbox.set_variable(bad, 1)
        with pytest.raises(TypeError):
            sandbox.set_variable("obj", object())


def test_python_tool_never_raises_on_bad_arguments(shared: Sandbox) -> None:
    tool = python_tool(shared)
    assert tool.name == "python" and "code" in tool.schema()["function"]["parameters"]["required"]
    assert tool.run({}).error == "bad arguments for python: 'code' is required"
    assert "code" in tool.run({"code": 5}).error
    assert tool.run({"code": "1", "other": 2}).error is not None
    assert tool.run("not json").error is not None
    assert tool.run(["code"]).error is not None
    good = tool.run({"code": "print('hi')\n21 * 2"})
    assert good.ok and good.text == "hi\n42"
    bad = tool.run('{"code": "print(1)\\nboom"}')
    assert bad.error == "NameError: name 'boom' is not defined"
    assert bad.text == "1\nNameError: name 'boom' is not defined"
    assert bad.metadata["network"] == shared.network_isolation


def test_run_file(tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text("print(sum(range(10)))\n", encoding="utf-8")
    outcome = run_file(str(script), FAST)
    assert isinstance(outcome, SandboxOutcome) and outcome.ok and outcome.stdout == "45\n"
    missing = run_file(str(tmp_path / "nope.py"))
    assert not missing.ok and missing.error.startswith("cannot read")


def test_working_directory_is_removed() -> None:
    sandbox = Sandbox(FAST)
    assert sandbox.run("1").ok
    workdir = Path(sandbox._child.workdir)  # test-only peek
    assert workdir.is_dir()
    sandbox.close()
    assert not workdir.exists()


@pytest.mark.parametrize(
    "line",
    [
        b"not json",
        b"[1, 2]",
        b'{"type": "result"}',
        b'{"type": "result", "ok": "yes", "stdout": "", "error": null, "final": null, '
        b'"truncated": false}',
        b'{"type": "shell", "command": "rm -rf /"}',
        b'{"type": "callback", "name": "x", "args": [], "kwargs": {}, "extra": 1}',
        b"[" * 10_000 + b"]" * 10_000,
    ],
)
def test_invalid_messages_are_protocol_errors(line: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_message(line)


def test_line_reader_caps_lines_and_reports_exit() -> None:
    read_fd, write_fd = os.pipe()
    try:
        reader = LineReader(read_fd, max_bytes=100)
        os.write(write_fd, b"short\n" + b"x" * 500)
        assert reader.read_line(time.monotonic() + 1) == b"short"
        with pytest.raises(ProtocolError):
            reader.read_line(time.monotonic() + 1)
        fresh = LineReader(read_fd, max_bytes=100)
        assert fresh.read_line(time.monotonic() + 0.05) is None  # nothing more: a timeout
        os.close(write_fd)
        write_fd = -1
        with pytest.raises(ChildExited):
            fresh.read_line(time.monotonic() + 1)
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
