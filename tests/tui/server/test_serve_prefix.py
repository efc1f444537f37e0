"""The server's prefix cache seen from outside: a second chat with the same system prompt says
in OpenAI's `usage.prompt_tokens_details.cached_tokens` how much of its prompt was reused, the
health endpoint counts it, and the answer is what a fresh in-process prefill gives."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import openai
import pytest
from serve_harness import Running, servers, wait_until

from agent.events import Done
from agent.loop import run_episode
from agent.settings import Settings
from model.chat import render
from model.generate import Completion, Generator
from model.messages import Message
from model.remote import connect
from tui.server.app import prepare
from tui.server.schema import ChatRequest

SYSTEM = {"role": "system", "content": "You are an in-car voice assistant. Answer briefly."}


@pytest.fixture
def serve() -> Iterator[Callable[..., Running]]:
    yield from servers()


def expected(running: Running, body: dict) -> tuple[list[int], Completion]:
    ready = prepare(running.generator.lm, ChatRequest.model_validate(body), running.options)
    return ready.ids, Generator(running.generator.lm).complete(ready.ids, ready.sampling, None)


def test_a_second_chat_reuses_the_system_prompt_and_says_so(tiny, serve) -> None:
    running = serve(Generator(tiny("qwen2")))
    client = openai.OpenAI(base_url=running.url, api_key="none", max_retries=0, timeout=30)
    asks = [[SYSTEM, {"role": "user", "content": q}] for q in ("Hello there", "How far is Oslo?")]
    got = [client.chat.completions.create(model="m", messages=a, max_tokens=16) for a in asks]
    (first_ids, _), (second_ids, want) = (
        expected(running, {"messages": a, "max_tokens": 16}) for a in asks
    )
    shared = next(i for i, (a, b) in enumerate(zip(first_ids, second_ids, strict=False)) if a != b)
    assert got[0].usage.prompt_tokens_details.cached_tokens == 0
    assert got[1].usage.prompt_tokens_details.cached_tokens == shared > len(SYSTEM["content"])
    assert got[1].choices[0].message.content == want.text  # as a fresh prefill decodes it
    health = httpx.get(f"{running.root}/health").json()["prefix_cache"]
    assert (health["lookups"], health["hits"], health["reused_tokens"]) == (2, 1, shared)
    assert 0 < health["kept_tokens"] <= health["budget_tokens"]


def test_an_agent_on_the_server_logs_the_reuse_in_its_trajectory(tiny, serve) -> None:
    running = serve(Generator(tiny("qwen2")))
    remote = connect(running.url)
    settings = Settings(offline=True)
    settings.sampling.max_new_tokens = 8
    steps = []
    for task in ("What is the capital of France?", "Is the engine light on?"):
        done = list(run_episode(remote, task, {}, settings))[-1]
        assert isinstance(done, Done) and done.trajectory is not None
        steps.append(done.trajectory.steps[0])
    system = len(remote.encode(settings.offline_system_prompt))
    assert steps[0].reused_tokens == 0 and steps[1].reused_tokens > system


def test_a_server_without_a_budget_reuses_nothing(tiny, serve) -> None:
    running = serve(Generator(tiny("qwen2")), prefix_tokens=0)
    client = openai.OpenAI(base_url=running.url, api_key="none", max_retries=0, timeout=30)
    ask = [SYSTEM, {"role": "user", "content": "Hello"}]
    for _ in range(2):
        got = client.chat.completions.create(model="m", messages=ask, max_tokens=4)
        assert got.usage.prompt_tokens_details.cached_tokens == 0
    assert httpx.get(f"{running.root}/health").json()["prefix_cache"] is None


def test_the_serve_flag_is_checked_and_its_help_names_the_schedulers_default(capsys) -> None:
    from model.serving import PREFIX_TOKENS
    from tui.cli import build_parser, main

    assert main(["serve", "--prefix-cache", "-1"]) == 2
    assert "--prefix-cache must be >= 0" in capsys.readouterr().err
    serve = build_parser()._subparsers._group_actions[0].choices["serve"]  # type: ignore[union-attr]
    flag = next(a for a in serve._actions if "--prefix-cache" in a.option_strings)
    assert flag.default is None and f"default: {PREFIX_TOKENS}," in (flag.help or "")


def test_a_warmed_server_reuses_the_system_prompt_on_its_first_ask(tiny) -> None:
    from model.sampling import SamplingSettings
    from model.serving import Scheduler
    from tui.serve import warm

    lm = tiny("qwen2")
    gen = Generator(lm)
    settings = Settings()
    scheduler = Scheduler(gen, slots=2)
    try:
        assert warm(scheduler, lm, settings, gen.encode) == 2
        wait_until(lambda: scheduler.busy == 0 and scheduler.queued == 0)
        for system in (settings.offline_system_prompt, settings.system_prompt):
            chat = [Message(role="system", content=system), Message(role="user", content="Hi")]
            ids = gen.encode(render(lm.tokenizer, chat, None, lm.tool_format))
            done: list = []
            scheduler.submit(ids, SamplingSettings(max_new_tokens=2), None, done.append)
            wait_until(lambda done=done: done and isinstance(done[-1], Completion))
            assert done[-1].reused_tokens > len(gen.encode(system))
    finally:
        scheduler.close()
    off = Scheduler(gen, slots=2, prefix_tokens=0)
    try:
        assert warm(off, lm, settings, gen.encode) == 0
    finally:
        off.close()
