"""The agent as a user runs it: `edgeagent ask` on the embedded model, a local corpus, the log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.log import read_log

DOCS = {
    "cheese.txt": "Brindlecombe cheese is a soft washed-rind cheese made in the village of Upper "
    "Sallow since 1852. It is aged for exactly 47 days in limestone caves.",
    "bridge.md": "# The Zorvath Bridge\n\nThe Zorvath Bridge crosses the Quillon River in "
    "Marrowdale. It was designed by Elspeth Varnock and its main span is 612 metres long.",
    "dam.html": "<html><head><title>Kellworth Dam</title></head><body><p>The Kellworth Dam "
    "holds back Lake Ombrin and is 143 metres high.</p></body></html>",
}


def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text)
    return folder


def ask(tmp_path: Path, question: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "EDGEAGENT_LOG": str(tmp_path / "log.jsonl"),
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tui.cli",
            "ask",
            "--search-backend",
            "local",
            "--corpus",
            str(corpus(tmp_path)),
            question,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.mark.slow
def test_ask_searches_the_local_corpus_and_logs_the_episode(tmp_path: Path) -> None:
    proc = ask(tmp_path, "How many days is Brindlecombe cheese aged?")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "47" in out
    assert "→ web_search" in err and "Traceback" not in err
    (traj,) = read_log(tmp_path / "log.jsonl").trajectories
    assert traj.outcome == "answer" and "47" in (traj.final_answer or "")
    assert traj.steps[0].tool_runs[0].call.name == "web_search"
    assert "Brindlecombe" in traj.steps[0].tool_runs[0].text
    read = traj.steps[1].tool_runs[0]  # the model picked the page to read among the hits
    assert read.call.name == "fetch_page" and read.call.arguments["url"].endswith("cheese.txt")


@pytest.mark.slow
def test_kill_9_mid_episode_leaves_the_log_readable(tmp_path: Path) -> None:
    proc = ask(tmp_path, "How long is the main span of the Zorvath Bridge?")
    assert proc.stderr is not None
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # wait for the first tool result to be shown
        line = proc.stderr.readline()
        if line.startswith("←") or not line:
            break
    time.sleep(1.0)  # the step is logged right after its tools ran; the model is now decoding
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    contents = read_log(tmp_path / "log.jsonl")
    (traj,) = contents.trajectories
    assert traj.outcome == "interrupted"
    assert traj.steps and traj.steps[0].tool_runs[0].call.name == "web_search"
    assert contents.skipped_lines == 0
