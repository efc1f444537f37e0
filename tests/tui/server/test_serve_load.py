"""A bounded load test of `edgeagent serve` on loopback: 16 streaming clients at once on a tiny
model, each reply whole and well-formed and (greedy) the tokens it gets alone, batched decoding
several times one stream's throughput, one more client killed mid-stream disturbing nobody."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from serve_harness import Spawned, endless, wait_until

from model.generate import Generator
from model.guard import GuardSettings
from tui.server.app import ServeOptions, prepare
from tui.server.schema import ChatRequest

CLIENTS, TOKENS = 16, 48
QUESTIONS = [f"Question {i}: what is {i} times {i + 3}?" for i in range(CLIENTS)]


def body(question: str) -> dict:
    return {
        "messages": [{"role": "user", "content": question}],
        "max_tokens": TOKENS,
        "stream": True,
        "edgeagent": {"token_ids": True},
    }


@pytest.fixture
def spawned() -> Iterator[Spawned]:
    server = Spawned(slots=CLIENTS + 1, queue=8)
    yield server
    server.close()


class Client(threading.Thread):
    """Streams one request; keeps every event; `kill_after` chunks, then drops the connection."""

    def __init__(self, url: str, question: str, kill_after: int | None = None) -> None:
        super().__init__(daemon=True)
        self.url, self.question, self.kill_after = url, question, kill_after
        self.events: list[dict | str] = []
        self.error: BaseException | None = None
        self.started_at = self.done_at = 0.0
        self.http = httpx.Client(timeout=60)  # made here: its set-up is not the server's time

    def run(self) -> None:
        self.started_at = time.perf_counter()
        try:
            with self.http.stream("POST", f"{self.url}/chat/completions",
                                  json=body(self.question)) as response:  # fmt: skip
                assert response.status_code == 200, response.read()
                for line in response.iter_lines():
                    if not line:
                        continue
                    assert line.startswith("data: "), line
                    data = line[len("data: ") :]
                    self.events.append(data if data == "[DONE]" else json.loads(data))
                    if self.kill_after is not None and len(self.events) >= self.kill_after:
                        return  # leaving the block closes the connection mid-stream
        except BaseException as e:  # reported by the test, not lost in the thread
            self.error = e
        finally:
            self.done_at = time.perf_counter()
            self.http.close()

    def reply(self) -> tuple[str, list[int]]:
        """(the streamed text, the token ids), checking the stream's shape on the way."""
        assert self.error is None, self.error
        *chunks, done = self.events
        assert done == "[DONE]" and all(isinstance(c, dict) for c in chunks)
        assert len({c["id"] for c in chunks}) == 1  # type: ignore[index]
        assert all(c["object"] == "chat.completion.chunk" for c in chunks)  # type: ignore[index]
        reasons = [c["choices"][0]["finish_reason"] for c in chunks]  # type: ignore[index]
        assert reasons[-1] == "length" and set(reasons[:-1]) == {None}
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)  # type: ignore[index]
        return text, chunks[-1]["edgeagent"]["token_ids"]  # type: ignore[index]


def test_sixteen_streaming_clients_at_once(tiny, spawned: Spawned) -> None:
    alone = Client(spawned.url, QUESTIONS[0])
    alone.run()  # on this thread: one stream, nothing beside it
    single = TOKENS / (alone.done_at - alone.started_at)
    assert len(alone.reply()[1]) == TOKENS

    killed = Client(spawned.url, "This one is dropped mid-stream. " * 3, kill_after=4)
    clients = [Client(spawned.url, q) for q in QUESTIONS]
    for c in [killed, *clients]:
        c.start()
    for c in [killed, *clients]:
        c.join(60)
    wall = max(c.done_at for c in clients) - min(c.started_at for c in clients)
    assert killed.error is None and len(killed.events) == 4

    gen = endless(tiny("qwen2"))  # the server's weights: tiny models are seeded
    same = 0
    for c in clients:
        text, ids = c.reply()
        assert len(ids) == TOKENS
        # Every token's text, in order (but a last half character, which is never sent).
        full = gen.lm.tokenizer.decode(ids)
        assert text.rstrip("\ufffd") == full.rstrip("\ufffd")
        same += ids[:16] == _alone(gen, c.question)[:16]
    assert same >= CLIENTS - 1
    throughput = CLIENTS * TOKENS / wall
    print(f"serve load: {CLIENTS} streams {throughput:.0f} tok/s, one stream {single:.0f} tok/s")
    assert throughput >= 3 * single
    health = lambda: httpx.get(f"{spawned.root}/health").json()  # noqa: E731
    wait_until(lambda: health()["busy"] == 0 and health()["queued"] == 0)


def _alone(gen: Generator, question: str) -> list[int]:
    """The request's tokens decoded in-process, alone (greedy, float32)."""
    req = ChatRequest.model_validate({**body(question), "stream": False})
    ready = prepare(gen.lm, req, ServeOptions())
    return gen.complete(ready.ids, ready.sampling, GuardSettings(enabled=False)).token_ids
