"""The reliability probes of issue 22, kept as tests so each gap stays closed.

A probe of fetch, the log and the command line, as a new user and as an attacker would try them.
Everything runs against servers on 127.0.0.1 and files under tmp_path, bounded in count (about
25 cases) and time (a few seconds each; the 1 GB bomb is 1.8 KB on the wire). Commands run
in-process through `tui.cli.main`, where an uncaught exception fails the test as a traceback
would fail the user, except the log readers, which run as real processes. Models: a tiny
random-weight folder (its answers are noise; what matters is that one comes back), or a model
spec that cannot load, to prove a check ran before the model did.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from agent.log import TrajectoryLog
from agent.trajectory import Trajectory
from tools.base import ToolError
from tools.fetch import FetchSettings, fetch_text
from tui import store
from tui.cli import main

UNLOADABLE = ["--model", "nobody/nothing"]  # any check that runs after loading meets this first


# --- fetch ----------------------------------------------------------------------------------


def trickle_forever(listener: socket.socket, stop: threading.Event) -> None:
    """One connection: the status line and an endless header, one byte a second."""
    conn, _ = listener.accept()
    with conn:
        conn.recv(65536)
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Slow: "
        sent = 0
        while not stop.wait(1.0 if sent else 0.0):
            try:
                conn.sendall(head[sent : sent + 1] if sent < len(head) else b"a")
            except OSError:
                return
            sent += 1


def test_a_status_line_at_one_byte_a_second_is_cut_off_at_the_deadline() -> None:
    stop = threading.Event()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        server = threading.Thread(target=trickle_forever, args=(listener, stop), daemon=True)
        server.start()
        settings = FetchSettings(allow_hosts=["127.0.0.1"], deadline=3)
        start = time.monotonic()
        try:
            with pytest.raises(ToolError, match="timed out|took too long"):
                fetch_text(url, settings)
        finally:
            stop.set()
            server.join(5)
    assert time.monotonic() - start < 4.5


def gzipped(chunks: Iterator[bytes]) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    return b"".join([*(packer.compress(c) for c in chunks), packer.flush()])


@pytest.fixture(scope="module")
def bomb_server() -> Iterator[str]:
    """Serves 1 GiB of zeros gzipped twice (1,827 bytes) as `Content-Encoding: gzip, gzip`."""
    inner = gzipped(bytes(1 << 20) for _ in range(1024))
    body = gzipped(iter([inner]))

    class Bomb(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Encoding", "gzip, gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Bomb)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/bomb"
    server.shutdown()
    server.server_close()


def test_a_one_gigabyte_gzip_gzip_bomb_stops_at_the_cap_while_decoding(bomb_server: str) -> None:
    settings = FetchSettings(allow_hosts=["127.0.0.1"])  # the default 3 MB cap
    tracemalloc.start()
    try:
        page = fetch_text(bomb_server, settings)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert page.byte_capped
    # The capped page itself is held a few times over (bytes, str, text); 2.1 GB before the fix.
    assert peak < 40 * 2**20, f"{peak / 2**20:.0f} MB held"


# --- the log --------------------------------------------------------------------------------


def a_log_with_bad_lines(path: Path) -> Trajectory:
    traj = Trajectory(task="Who keeps the lighthouse?", mode="offline", outcome="answer")
    TrajectoryLog(path).write(traj)
    with path.open("ab") as f:
        f.write(b"[" * 100_000 + b"]" * 100_000 + b"\n")
        f.write(b'{"v": 1, "kind": "step", "epis\n')  # torn
        f.write(b'{"v": 1, "kind": "start", "episode": "\xff", "trajectory": {}}\n')
        f.write(json.dumps({"v": 1, "kind": "start", "episode": ["x"]}).encode() + b"\n")
        f.write(json.dumps({"v": 9, "kind": "start", "episode": "x"}).encode() + b"\n")
    return traj


@pytest.mark.parametrize("command", [["log", "show"], ["log", "stats"]])
def test_log_commands_read_past_bad_lines_and_say_so(tmp_path: Path, command: list[str]) -> None:
    path = tmp_path / "log.jsonl"
    traj = a_log_with_bad_lines(path)
    out = subprocess.run(
        [sys.executable, "-m", "tui.cli", *command, "--path", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.strip().splitlines() == [
        f"edgeagent: skipped 5 of 7 lines of {path}: 1 nested deeper than 200, 1 not UTF-8, "
        "1 not a log event, 1 torn or not JSON, 1 unknown log version"
    ]
    shown = traj.id if command[1] == "show" else "episodes        1"
    assert shown in out.stdout


# --- bad paths and unusable files, before the model loads -------------------------------------


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "empty-folder").mkdir()
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "blank.txt").write_text("  \n\n")
    return {
        "missing": tmp_path / "nope",
        "empty-folder": tmp_path / "empty-folder",
        "empty": tmp_path / "empty.txt",
        "blank": tmp_path / "blank.txt",
        "binary": Path(sys.executable).resolve(),
        "folder": tmp_path,
    }


CASES = [
    (["ask", "--search-backend", "local", "--corpus", "{missing}", "q"], "is not a folder"),
    (["ask", "--corpus", "{empty-folder}", "q"], "holds no documents to search"),
    (["chat", "--corpus", "{empty-folder}"], "holds no documents to search"),
    (["ask", "--attach", "{binary}", "q"], "it is a binary file, not text"),
    (["ask", "--attach", "{empty}", "q"], "the file is empty"),
    (["ask", "--attach", "{blank}", "q"], "the file is empty"),
    (["ask", "--attach", "{folder}", "q"], "it is a folder"),
    (["ask", "--attach", "{missing}", "q"], "no such file"),
    (["chat", "--resume", "nosuchchat"], "no saved conversation 'nosuchchat'"),
    (["chat", "--plain", "--resume", "nosuchchat"], "no saved conversation 'nosuchchat'"),
]


@pytest.mark.parametrize(("argv", "message"), CASES)
def test_bad_paths_are_one_line_errors_before_the_model_loads(
    argv: list[str],
    message: str,
    files: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("EDGEAGENT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    args = [a.format(**{k: str(v) for k, v in files.items()}) for a in argv]
    assert main([*args, *UNLOADABLE]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edgeagent: error: ") and "\n" not in err, err
    assert message in err and "cannot load" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["index", "{empty-folder}"], "holds no documents to search"),
        (["index", "{missing}"], "is not a folder"),
        (["log", "show", "--path", "{folder}"], "cannot read the log"),
        (["log", "stats", "--path", "{folder}"], "cannot read the log"),
        (["sandbox", "{missing}"], "is not a file"),
        (["sandbox", "{folder}"], "is not a file"),
    ],
)
def test_other_commands_word_bad_paths_in_one_line(
    argv: list[str], message: str, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    args = [a.format(**{k: str(v) for k, v in files.items()}) for a in argv]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edgeagent: error: ") and "\n" not in err and message in err, err


# --- chat --resume without a terminal ---------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from model.tiny import tiny_model

    folder = tmp_path_factory.mktemp("tiny-qwen2")
    lm = tiny_model("qwen2")
    lm.model.save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)
    return folder


def test_resume_without_a_terminal_goes_on_in_the_plain_chat(
    tiny_folder: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("EDGEAGENT_CACHE", str(tmp_path))
    saved = store.Chat(turns=[store.Turn(question="Which river?", answer="The Quillon.")])
    store.save(saved)
    monkeypatch.setattr(sys, "stdin", io.StringIO("How long is it?\n"))
    argv = ["chat", "--resume", saved.id[:6], "--model", str(tiny_folder), "--max-tokens", "3"]
    assert main(argv) == 0
    assert f"resuming conversation {saved.id} (1 turns)" in capsys.readouterr().err
    again = store.load(saved.id)
    assert [t.question for t in again.turns] == ["Which river?", "How long is it?"]


# --- a read-only or full cache ------------------------------------------------------------------


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    """A folder nobody may write to, root included (chattr +i), else skip."""
    folder = tmp_path / "ro-cache"
    folder.mkdir()
    if os.geteuid() == 0:
        if shutil.which("chattr") is None:
            pytest.skip("root without chattr: no read-only folder to test with")
        subprocess.run(["chattr", "+i", str(folder)], capture_output=True)
    else:
        folder.chmod(0o555)
    try:
        (folder / "probe").touch()
    except OSError:
        yield folder
    else:
        pytest.skip("this filesystem lets us write to the folder anyway")
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(folder)], capture_output=True)
        folder.chmod(0o755)


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text("# Quillon\nThe Quillon river is 212 km long.\n")
    return folder


def test_a_read_only_cache_is_one_line_where_it_must_be_written(
    read_only: Path,
    docs: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("EDGEAGENT_CACHE", str(read_only))
    for argv in (
        ["index", str(docs)],
        ["ask", "--corpus", str(docs), "q", *UNLOADABLE],  # before the model loads
        ["ask", "--offline", "--model", "smollm2", "q"],  # its conversion has nowhere to go
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("edgeagent: error: cannot write the ") and "\n" not in err, err


def test_the_answer_is_still_given_when_only_the_log_cannot_be_written(
    read_only: Path,
    tiny_folder: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("EDGEAGENT_CACHE", str(read_only))
    monkeypatch.delenv("EDGEAGENT_LOG")  # so the log goes in the read-only cache
    argv = ["ask", "--offline", "--json", "--model", str(tiny_folder), "--max-tokens", "3", "q"]
    assert main(argv) in (0, 1)
    out = capsys.readouterr()
    assert json.loads(out.out)["final_answer"] is not None
    assert "cannot write the trajectory log" in out.err and "answering without logging" in out.err


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full to fill the disk")
def test_the_answer_is_still_given_when_the_log_disk_is_full(
    tiny_folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EDGEAGENT_LOG", "/dev/full")  # opens fine; every write is ENOSPC
    argv = ["ask", "--offline", "--json", "--model", str(tiny_folder), "--max-tokens", "3", "q"]
    assert main(argv) in (0, 1)
    out = capsys.readouterr()
    assert json.loads(out.out)["final_answer"] is not None
    assert "cannot write the trajectory log /dev/full: No space left on device" in out.err
