"""`edgeagent serve` end to end: the real app on uvicorn on a free loopback port, the official
`openai` client and raw HTTP against it; tiny random-weight models and scripted ones."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import httpx
import openai
import pytest
from serve_harness import Running, endless, servers, wait_until

from model.generate import Completion, Generator
from model.scripted import ScriptedGenerator
from tui.server.app import prepare
from tui.server.schema import ChatRequest


@pytest.fixture
def serve() -> Iterator[Callable[..., Running]]:
    yield from servers()


def client(running: Running, key: str = "none") -> openai.OpenAI:
    return openai.OpenAI(base_url=running.url, api_key=key, max_retries=0, timeout=30)


def expected(running: Running, body: dict) -> Completion:
    """What the model gives for this request decoded alone, in-process."""
    ready = prepare(running.generator.lm, ChatRequest.model_validate(body), running.options)
    return Generator(running.generator.lm).complete(ready.ids, ready.sampling, None)


ASK = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}]


def test_plain_and_streamed_chat_through_the_openai_client(tiny, serve) -> None:
    running = serve(Generator(tiny("qwen2")))
    want = expected(running, {"messages": ASK, "max_tokens": 24})
    got = client(running).chat.completions.create(model="any", messages=ASK, max_tokens=24)
    choice = got.choices[0]
    assert choice.message.content == want.text and choice.message.role == "assistant"
    assert choice.finish_reason == ("length" if want.finish_reason == "length" else "stop")
    assert got.usage.prompt_tokens == want.prompt_tokens
    assert got.usage.completion_tokens == len(want.token_ids)
    assert got.model == running.generator.lm.name and got.id.startswith("chatcmpl-")
    stream = client(running).chat.completions.create(
        model="any", messages=ASK, max_tokens=24, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == want.text
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1  # it streams
    reasons = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert reasons[-1] == choice.finish_reason and set(reasons[:-1]) == {None}
    assert chunks[-1].usage.completion_tokens == len(want.token_ids)


def test_sampling_fields_reach_the_model(tiny, serve) -> None:
    running = serve(Generator(tiny("qwen2")))
    c = client(running)
    body = {"messages": ASK, "max_tokens": 30, "temperature": 1.0, "top_p": 0.9, "seed": 7}
    want = expected(running, body)
    args = {k: v for k, v in body.items() if k != "messages"}
    got = [c.chat.completions.create(model="m", messages=ASK, **args) for _ in range(2)]
    assert [g.choices[0].message.content for g in got] == [want.text, want.text]
    greedy = expected(running, {"messages": ASK, "max_tokens": 30})
    stop = greedy.text[4:6]  # a string greedy decoding writes
    cut = c.chat.completions.create(model="m", messages=ASK, max_tokens=30, stop=[stop])
    assert cut.choices[0].message.content == greedy.text[: greedy.text.find(stop)]
    assert cut.choices[0].finish_reason == "stop"
    one = c.chat.completions.create(model="m", messages=ASK, max_tokens=1)
    assert one.usage.completion_tokens == 1


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather now in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'


def test_a_tool_call_round_trip(tiny, serve) -> None:
    """The scripted model writes a hermes call; the client gets it as tool_calls, sends the
    result back as a tool message, and the model sees it rendered in its next prompt."""
    lm = tiny("qwen2")
    script = ScriptedGenerator(lm, [CALL, "Sunny in Paris.", "Let me look. " + CALL, "Sunny."])
    running = serve(script)
    c = client(running)
    ask = [{"role": "user", "content": "Weather in Paris?"}]
    first = c.chat.completions.create(model="m", messages=ask, tools=[WEATHER])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and not choice.message.content
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"} and call.id
    assert "get_weather" in lm.tokenizer.decode(script.prompts[0])  # the tools were rendered
    reply = [
        *ask,
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"sky": "sunny"}'},
    ]
    second = c.chat.completions.create(model="m", messages=reply, tools=[WEATHER])
    assert second.choices[0].message.content == "Sunny in Paris."
    assert second.choices[0].finish_reason == "stop"
    prompt = lm.tokenizer.decode(script.prompts[1])
    assert '"city": "Paris"' in prompt and '{"sky": "sunny"}' in prompt
    assert "<tool_response>" in prompt  # the tool message went in as the template's tool turn
    streamed = list(c.chat.completions.create(model="m", messages=ask, tools=[WEATHER],
                                              stream=True))  # fmt: skip
    text = "".join(ch.choices[0].delta.content or "" for ch in streamed if ch.choices)
    calls = [tc for ch in streamed if ch.choices for tc in ch.choices[0].delta.tool_calls or []]
    assert text.strip() == "Let me look."  # content before the call streams; the call does not
    assert [(tc.index, tc.function.name) for tc in calls] == [(0, "get_weather")]
    assert json.loads(calls[0].function.arguments) == {"city": "Paris"}
    assert streamed[-1].choices[0].finish_reason == "tool_calls"
    plain = c.chat.completions.create(model="m", messages=ask, tools=[WEATHER], tool_choice="none")
    assert plain.choices[0].message.content == "Sunny." and not plain.choices[0].message.tool_calls
    assert "get_weather" not in lm.tokenizer.decode(script.prompts[-1])  # none: no tools shown


def test_a_required_call_is_forced_and_parsed(tiny, serve) -> None:
    script = ScriptedGenerator(tiny("qwen2"), ['{"city": "Rome"}}\n</tool_call>'])
    running = serve(script)
    choice = {"type": "function", "function": {"name": "get_weather"}}
    got = client(running).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "Rome?"}], tools=[WEATHER],
        tool_choice=choice,
    )  # fmt: skip
    (call,) = got.choices[0].message.tool_calls
    # The model was given the call's start, up to its arguments, and wrote only those.
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Rome"}
    prompt = script.lm.tokenizer.decode(script.prompts[0])
    assert prompt.endswith('<tool_call>\n{"name": "get_weather", "arguments": ')


def test_a_full_queue_answers_429_and_a_dropped_stream_frees_its_slot(tiny, serve) -> None:
    running = serve(endless(tiny("qwen2")), slots=1, queue=1, guard={"enabled": False})
    body = {"messages": ASK, "max_tokens": 2000, "stream": True}
    health = lambda: httpx.get(f"{running.root}/health").json()  # noqa: E731
    with httpx.Client(base_url=running.url, timeout=30) as http:
        with http.stream("POST", "/chat/completions", json=body) as decoding:
            lines = decoding.iter_lines()  # kept: a dropped iterator closes the connection
            next(lines)
            wait_until(lambda: health()["busy"] == 1)
            waiting = http.build_request("POST", "/chat/completions", json=body)
            queued = http.send(waiting, stream=True)  # takes the one place in the queue
            wait_until(lambda: health()["queued"] == 1)
            refused = http.post("/chat/completions", json=body)
            assert refused.status_code == 429
            error = refused.json()["error"]
            assert error["type"] == "rate_limit_error" and error["code"] == "rate_limit_exceeded"
            assert set(error) == {"message", "type", "param", "code"}
            queued.close()  # a client gone from the queue leaves it
            wait_until(lambda: health()["queued"] == 0)
        # The decoding client went away mid-stream: its slot is free, its decoding stops.
        wait_until(lambda: health()["busy"] == 0)
        decoded = health()["tokens_decoded"]
        time.sleep(0.2)
        assert health()["tokens_decoded"] == decoded
        after = http.post("/chat/completions", json={**body, "stream": False, "max_tokens": 3})
        assert after.status_code == 200 and after.json()["usage"]["completion_tokens"] == 3


def test_a_dropped_plain_request_frees_its_slot(tiny, serve) -> None:
    running = serve(endless(tiny("qwen2")), slots=2, disconnect_poll_s=0.05,
                    guard={"enabled": False})  # fmt: skip
    body = {"messages": ASK, "max_tokens": 2000}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{running.url}/chat/completions", json=body, timeout=0.3)
    health = lambda: httpx.get(f"{running.root}/health").json()  # noqa: E731
    wait_until(lambda: health()["busy"] == 0)
    assert health()["tokens_decoded"] < 2000  # stopped, not run to its end


def test_an_api_key_is_checked_on_every_request(tiny, serve) -> None:
    running = serve(Generator(tiny("qwen2")), api_key="sekrit")
    with pytest.raises(openai.AuthenticationError):
        client(running, key="wrong").chat.completions.create(model="m", messages=ASK)
    for path in ("/health", "/v1/models"):
        denied = httpx.get(running.root + path)
        assert denied.status_code == 401 and denied.json()["error"]["code"] == "invalid_api_key"
    good = client(running, key="sekrit")
    assert good.chat.completions.create(model="m", messages=ASK, max_tokens=2).choices
    assert [m.id for m in good.models.list()] == [running.generator.lm.name]


BIG = "word " * 400
BAD = [
    ("malformed JSON", b'{"messages": [', 400, "not valid JSON"),
    ("not an object", b"[1, 2]", 400, "JSON object"),
    ("unknown field", {"messages": ASK, "frobnicate": 1, "zz": 2}, 400, "frobnicate, zz"),
    ("unknown message field", {"messages": [{"role": "user", "content": "a", "x": 1}]}, 400,
     "messages[0].x"),
    ("bad role", {"messages": [{"role": "wizard", "content": "hi"}]}, 400, "messages[0].role"),
    ("no messages", {"messages": []}, 400, "messages"),
    ("missing content", {"messages": [{"role": "user"}]}, 400, "messages[0].content"),
    ("oversize prompt", {"messages": [{"role": "user", "content": BIG}]}, 400, "context"),
    ("max_tokens over the cap", {"messages": ASK, "max_tokens": 10_000}, 400, "max_tokens"),
    ("max_tokens past the context", {"messages": ASK, "max_tokens": 290}, 400, "pass"),
    ("n > 1", {"messages": ASK, "n": 2}, 400, "n"),
    ("bad temperature", {"messages": ASK, "temperature": "hot"}, 400, "temperature"),
    ("tool result without a call", {"messages": [{"role": "tool", "tool_call_id": "x",
                                                  "content": "1"}]}, 400, "tool_call_id"),
    ("call arguments not JSON", {"messages": [{"role": "assistant", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}]},
     400, "arguments"),
    ("tool_choice names no tool", {"messages": ASK, "tools": [WEATHER], "tool_choice": {
        "type": "function", "function": {"name": "nope"}}}, 400, "nope"),
    ("body too large", {"messages": [{"role": "user", "content": "x" * 300_000}]}, 413, "bytes"),
]  # fmt: skip


def test_every_malformed_request_gets_a_4xx_in_the_openai_shape(tiny, serve) -> None:
    running = serve(Generator(tiny("qwen2")), context=300, max_tokens=1000, max_body_bytes=200_000)
    with httpx.Client(base_url=running.url, timeout=30) as http:
        for name, body, status, says in BAD:
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            got = http.post("/chat/completions", content=raw,
                            headers={"content-type": "application/json"})  # fmt: skip
            assert got.status_code == status, (name, got.text)
            error = got.json()["error"]
            assert set(error) == {"message", "type", "param", "code"}, name
            assert says in error["message"], (name, error)
            ok = http.post("/chat/completions", json={"messages": ASK, "max_tokens": 2})
            assert ok.status_code == 200, (name, ok.text)  # and it keeps serving
        for method, path, status in [("GET", "/nowhere", 404), ("GET", "/chat/completions", 405)]:
            got = http.request(method, path)
            assert got.status_code == status and "message" in got.json()["error"]


def test_binding_beyond_loopback_needs_a_key(capsys) -> None:
    from tui.cli import main
    from tui.serve import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")
    assert main(["serve", "--host", "0.0.0.0", "--api-key", ""]) == 2
    assert "needs --api-key" in capsys.readouterr().err


def test_the_server_announces_itself_while_it_runs(tmp_path, monkeypatch) -> None:
    from model import discovery

    monkeypatch.setenv("EDGEAGENT_CACHE", str(tmp_path))
    found, why = discovery.find()
    assert found is None and "edgeagent serve" in why
    with discovery.announce("http://127.0.0.1:1/v1", "tiny", needs_key=False) as where:
        found, why = discovery.find()
        assert found is not None and found.url == "http://127.0.0.1:1/v1" and "key" not in why
        note = json.loads(where.read_text())
        where.write_text(json.dumps({**note, "pid": 2**22 + 7}))  # a server that died
        found, why = discovery.find()
        assert found is None and "gone" in why
    assert where.exists()  # not ours any more: left alone
