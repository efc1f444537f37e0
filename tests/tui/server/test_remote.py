"""`model.remote`: the agent loop on a served model, only generation crossing the wire. The
tokens, texts, ends, choices and cancels are those of the in-process generator."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator

import httpx
import pytest
from pydantic import BaseModel
from serve_harness import Running, endless, servers, wait_until

from agent.events import Done
from agent.loop import run_episode
from agent.settings import Settings
from model.generate import Completion, Delta, Generator
from model.guard import GuardSettings
from model.remote import ServerError, connect
from model.sampling import SamplingSettings
from model.scripted import ScriptedGenerator
from tools.base import Tool, ToolResult


@pytest.fixture
def serve() -> Iterator[Callable[..., Running]]:
    yield from servers()


def test_remote_generation_is_the_in_process_generation(tiny, serve) -> None:
    lm = tiny("qwen2")
    running = serve(Generator(lm))
    remote = connect(running.url)
    assert remote.lm.tool_format == lm.tool_format and remote.lm.stop_token_ids == lm.stop_token_ids
    text = "Hello <tool_call> ünïcødé \u00e9 {json}"
    assert remote.encode(text) == Generator(lm).encode(text)
    local = Generator(lm)
    for prompt, sampling in [
        ("hello there", SamplingSettings(max_new_tokens=40)),
        ("seeded", SamplingSettings(max_new_tokens=30, temperature=1.0, seed=5)),
        ("stop me", SamplingSettings(max_new_tokens=40, stop=["e"])),
    ]:
        want = local.complete(prompt, sampling)
        events = list(remote.stream(prompt, sampling))
        done = events[-1]
        assert isinstance(done, Completion)
        assert done.token_ids == want.token_ids and done.text == want.text
        assert done.finish_reason == want.finish_reason
        assert "".join(e.text for e in events if isinstance(e, Delta)) == want.text
    choices = ["https://a.example/x", "https://b.example/y"]
    want = list(local.stream("pick", SamplingSettings(max_new_tokens=25), None, None, choices))
    got = list(remote.stream("pick", SamplingSettings(max_new_tokens=25), None, None, choices))
    assert got[-1].token_ids == want[-1].token_ids  # type: ignore[union-attr]


def test_cancelling_a_remote_stream_frees_the_servers_slot(tiny, serve) -> None:
    running = serve(endless(tiny("qwen2")), slots=2)
    remote = connect(running.url)
    cancel = threading.Event()
    forever = SamplingSettings(max_new_tokens=2000)
    got = []
    for event in remote.stream("go", forever, GuardSettings(enabled=False), cancel):
        got.append(event)
        if len(got) == 3:
            cancel.set()
    assert isinstance(got[-1], Completion) and got[-1].finish_reason == "cancelled"
    wait_until(lambda: httpx.get(f"{running.root}/health").json()["busy"] == 0)


class AddArgs(BaseModel):
    a: int
    b: int


ADD = Tool("add", "Add two integers.", AddArgs, lambda x: ToolResult(text=str(x.a + x.b)))


def test_an_agent_episode_runs_against_the_server(tiny, serve) -> None:
    lm = tiny("qwen2")
    call = json.dumps({"name": "add", "arguments": {"a": 2, "b": 3}})
    script = ScriptedGenerator(lm, [f"<tool_call>{call}</tool_call>", "2 + 3 = 5."])
    running = serve(script)
    remote = connect(running.url)
    events = list(run_episode(remote, "What is 2 + 3?", {"add": ADD}, Settings()))
    done = events[-1]
    assert isinstance(done, Done) and done.trajectory is not None
    traj = done.trajectory
    assert traj.outcome == "answer" and traj.final_answer == "2 + 3 = 5."
    assert traj.steps[0].tool_runs[0].text == "5"  # the tool ran here, in the client
    # The server got the client's own rendering, tool result included; the ids it sampled
    # came back for the trajectory.
    assert traj.steps[1].prompt_ids == script.prompts[1]
    assert "<tool_response>" in lm.tokenizer.decode(script.prompts[1])
    assert lm.tokenizer.decode(traj.steps[1].completion_ids).startswith("2 + 3 = 5.")


def test_an_unreachable_or_refusing_server_is_one_clear_error(tiny, serve) -> None:
    with pytest.raises(ServerError, match="cannot reach"):
        connect("http://127.0.0.1:9/v1")
    running = serve(Generator(tiny("qwen2")), api_key="k", context=64)
    with pytest.raises(ServerError, match="API key"):
        connect(running.url)
    remote = connect(running.url, api_key="k")
    with pytest.raises(ServerError, match="context"):
        list(remote.stream("x" * 200, SamplingSettings(max_new_tokens=8)))


def test_ask_generates_on_a_server_given_or_found(tiny, serve, capsys, monkeypatch, tmp_path):
    from model.discovery import announce
    from tui.backend import generator_for
    from tui.cli import main

    answer = "Paris is the capital of France."
    running = serve(ScriptedGenerator(tiny("qwen2"), [answer] * 4))
    question = ["ask", "--offline", "What is the capital of France?"]
    assert main([*question, "--server", running.root]) == 0
    out = capsys.readouterr()
    assert answer in out.out and f"generating on {running.url}" in out.err
    monkeypatch.setenv("EDGEAGENT_CACHE", str(tmp_path))
    with announce(running.url, "embedded", needs_key=False):  # the default settings' model
        assert main([*question, "--server", "auto"]) == 0
        out = capsys.readouterr()
        assert answer in out.out and "generating on the local server" in out.err
    said: list[str] = []
    here = object()  # stands for the model loaded in-process
    assert generator_for(Settings(), "auto", None, said.append, lambda s: here) is here
    assert "no local server" in said[-1] and "loading the model in this process" in said[-1]
    with announce(running.url, "smollm2", needs_key=False):
        assert generator_for(Settings(), "auto", None, said.append, lambda s: here) is here
        assert "runs smollm2, not embedded" in said[-1]
    assert main([*question, "--server", "http://127.0.0.1:9"]) == 2
    assert "cannot reach the server" in capsys.readouterr().err
