"""A real `edgeagent ask --server URL` process against a real server on a tiny model: it imports
neither torch nor transformers (nor the tools' HTML extraction, nor what this start does not use:
the tokenizer, which only a client that decodes on its side loads, or a TOML parser without a
config file), and its answer and logged
trajectory are those of the same episode run in-process. Plus the client's tokenizer cache."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from serve_harness import Running, servers

from agent.log import read_log
from agent.loop import run
from model import remote as remote_module
from model.generate import Generator
from model.remote import connect
from tui.cli import build_parser
from tui.flags import settings_from

ROOT = Path(__file__).resolve().parents[3]
HEAVY = ("torch", "transformers", "trafilatura")
UNUSED = ("tokenizers", "tomllib")  # each costs ~15 ms of a start that needs it not
QUESTION = "What is the capital of France?"
VOLATILE = {"id", "created", "total_s"}
STEP_TIMES = {"ttft_s", "decode_s", "forward_s", "step_s", "reused_tokens"}


@pytest.fixture
def serve() -> Iterator[Callable[..., Running]]:
    yield from servers()


def ask(argv: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    """`edgeagent ask ARGV` in a fresh interpreter, with its imports listed on stderr."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
        "EDGEAGENT_CACHE": str(tmp / "cache"),
        "EDGEAGENT_LOG": str(tmp / "log.jsonl"),
        "XDG_CONFIG_HOME": str(tmp / "config"),  # no developer's config file
    }
    env.pop("EDGEAGENT_CONFIG", None)
    cmd = [sys.executable, "-X", "importtime", "-m", "tui.cli", "ask", *argv]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, cwd=tmp)


def imported(stderr: str) -> set[str]:
    """Top-level package names from `-X importtime`'s lines ("import time: a | b | name")."""
    names = (ln.rsplit("|", 1)[-1].strip() for ln in stderr.splitlines() if "import time:" in ln)
    return {n.split(".")[0] for n in names}


def comparable(traj: dict) -> dict:
    out = {k: v for k, v in traj.items() if k not in VOLATILE}
    out["steps"] = [{k: v for k, v in s.items() if k not in STEP_TIMES} for s in traj["steps"]]
    return out


def test_ask_through_a_server_is_light_and_answers_as_in_process(tiny, serve, tmp_path) -> None:
    lm = tiny("qwen2")
    running = serve(Generator(lm))
    argv = ["--offline", QUESTION, "--server", running.root, "--set", "sampling.max_new_tokens=24"]
    done = ask(argv, tmp_path)
    assert done.returncode in (0, 1), done.stderr[-2000:]  # 1: no answer (a noise model)
    names = imported(done.stderr)
    assert "model" in names and "agent" in names  # the listing is real
    assert not names & set(HEAVY), names & set(HEAVY)
    assert not names & set(UNUSED), names & set(UNUSED)
    logged = read_log(tmp_path / "log.jsonl").trajectories
    assert len(logged) == 1
    # The same episode in this process: the CLI's own settings, the model in-process.
    settings = settings_from(build_parser().parse_args(["ask", *argv]))
    here = run(Generator(lm), QUESTION, {}, settings, mode="offline")
    there = logged[0]
    assert there.steps and there.steps[0].completion_ids  # the server sampled something
    assert comparable(there.model_dump(mode="json")) == comparable(here.model_dump(mode="json"))
    assert (here.final_answer or "").strip() in done.stdout


def test_the_tokenizer_is_fetched_once_per_server(tiny, serve, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("EDGEAGENT_CACHE", str(tmp_path))
    lm = tiny("qwen2")
    first = serve(Generator(lm))
    remote = connect(first.url)
    assert not (tmp_path / "servers").exists()  # connecting fetched no tokenizer
    text = "Hello <tool_call> ünïcødé"
    want = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert remote.encode(text) == want  # the server's encoding
    assert remote.lm.tokenizer(text)["input_ids"] == want  # fetched now, and kept
    assert len(list((tmp_path / "servers").glob("*/tokenizer.json"))) == 1
    fetch = remote_module._tokenizer_json

    def refetch(*args: object) -> str:
        raise AssertionError("a second client of the same server fetched the tokenizer again")

    monkeypatch.setattr(remote_module, "_tokenizer_json", refetch)
    assert connect(first.url).lm.tokenizer.decode(want) == text  # from the cache
    # A restarted server is another id: its clients never read the old file.
    second = serve(Generator(lm))
    with pytest.raises(AssertionError, match="fetched the tokenizer again"):
        connect(second.url).lm.tokenizer.decode(want)
    monkeypatch.setattr(remote_module, "_tokenizer_json", fetch)
    assert connect(second.url).lm.tokenizer.decode(want) == text
    assert len(list((tmp_path / "servers").glob("*/tokenizer.json"))) == 2
