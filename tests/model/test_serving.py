"""The server's scheduler: batched requests stream what one-at-a-time decoding would, slots are
freed on end and on cancel, the queue is bounded."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator

import pytest

from model.generate import Completion, Delta, Generator
from model.guard import GuardSettings
from model.loader import LoadedModel
from model.sampling import SamplingSettings
from model.scripted import ScriptedGenerator
from model.serving import Event, QueueFull, Scheduler, Ticket

TEXTS = ["hello there", "a", "The quick brown fox jumps over", "xyz " * 20, "12345", "ok", "zz"]


class Collector:
    """A sink that keeps the events and says when the Completion came."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.done = threading.Event()

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        if not isinstance(event, Delta):
            self.done.set()

    def completion(self, timeout: float = 30.0) -> Completion:
        assert self.done.wait(timeout), "no completion"
        last = self.events[-1]
        assert isinstance(last, Completion), last
        return last


@pytest.fixture
def scheduler(tiny) -> Iterator[Scheduler]:
    s = Scheduler(Generator(tiny("qwen2")), slots=3, max_queue=8)
    yield s
    s.close()


def test_batched_requests_stream_the_one_at_a_time_tokens(tiny, scheduler: Scheduler) -> None:
    gen = Generator(tiny("qwen2"))
    sampling = SamplingSettings(max_new_tokens=30)
    prompts = [gen.encode(t) for t in TEXTS]
    alone = [gen.complete(p, sampling) for p in prompts]
    sinks = [Collector() for _ in prompts]
    for ids, sink in zip(prompts, sinks, strict=True):  # 7 requests, 3 slots: the queue refills
        scheduler.submit(ids, sampling, None, sink)
    for one, sink in zip(alone, sinks, strict=True):
        done = sink.completion()
        assert done.token_ids == one.token_ids and done.finish_reason == one.finish_reason
        streamed = "".join(e.text for e in sink.events if isinstance(e, Delta))
        assert streamed == done.text == one.text
    assert scheduler.busy == 0 and scheduler.queued == 0


def test_seeded_sampling_repeats_whatever_decodes_beside_it(tiny, scheduler: Scheduler) -> None:
    gen = Generator(tiny("qwen2"))
    hot = SamplingSettings(max_new_tokens=20, temperature=1.0, seed=11)
    ids = gen.encode("seeded")
    first, second, noise = Collector(), Collector(), Collector()
    scheduler.submit(ids, hot, None, first)
    first.completion()
    scheduler.submit(gen.encode("something else entirely"), hot, None, noise)
    scheduler.submit(ids, hot, None, second)
    assert second.completion().token_ids == first.completion().token_ids
    assert gen.complete(ids, hot).token_ids == first.completion().token_ids


def endless(lm: LoadedModel) -> Generator:
    """A generator whose sequences end only at their token limit: no end token, no guard."""
    return Generator(dataclasses.replace(lm, stop_token_ids=set()))


NO_GUARD = GuardSettings(enabled=False)


def test_cancel_frees_the_slot_and_the_queue_is_bounded(tiny) -> None:
    gen = endless(tiny("qwen2"))
    s = Scheduler(gen, slots=2, max_queue=1)
    try:
        forever = SamplingSettings(max_new_tokens=1_000_000)
        ids = gen.encode("go on")
        running = [Collector(), Collector()]
        tickets: list[Ticket] = []
        for c in running:  # one at a time: the queue holds one; each is admitted and streams
            tickets.append(s.submit(ids, forever, NO_GUARD, c))
            _wait(lambda c=c: c.events)
        queued = s.submit(ids, forever, NO_GUARD, Collector())
        with pytest.raises(QueueFull):
            s.submit(ids, forever, NO_GUARD, Collector())
        s.cancel(queued)  # leaves the queue at once
        assert s.queued == 0
        s.cancel(tickets[0])
        _wait(lambda: s.busy == 1)
        short = Collector()
        s.submit(ids, SamplingSettings(max_new_tokens=3), None, short)
        assert len(short.completion().token_ids) <= 3  # served in the freed slot
        assert not running[0].done.is_set()  # a cancelled request gets nothing more
        s.cancel(tickets[1])
        _wait(lambda: s.busy == 0)
    finally:
        s.close()


def test_a_failing_sink_cancels_only_its_own_request(tiny) -> None:
    gen = endless(tiny("qwen2"))
    s = Scheduler(gen, slots=2)

    def gone(event: Event) -> None:
        raise RuntimeError("event loop closed")

    try:
        s.submit(gen.encode("a"), SamplingSettings(max_new_tokens=1_000_000), NO_GUARD, gone)
        ok = Collector()
        s.submit(gen.encode("b"), SamplingSettings(max_new_tokens=5), None, ok)
        assert ok.completion().prompt_tokens == 1
        _wait(lambda: s.busy == 0)
    finally:
        s.close()


def test_scripted_and_unbatchable_models_are_served_one_at_a_time(tiny) -> None:
    script = ScriptedGenerator(tiny("qwen2"), ["first answer", "second"])
    s = Scheduler(script, slots=4)
    try:
        assert s.slots == 1
        a, b = Collector(), Collector()
        s.submit([1, 2], SamplingSettings(), None, a)
        s.submit([3], SamplingSettings(), None, b)
        assert (a.completion().text, b.completion().text) == ("first answer", "second")
    finally:
        s.close()


def _wait(condition, timeout: float = 20.0) -> None:
    done = threading.Event()
    deadline = 0.0
    while not condition():
        assert deadline < timeout, "condition never held"
        done.wait(0.01)
        deadline += 0.01


def test_choices_hold_the_start_of_a_batched_reply_as_in_the_stream(tiny, scheduler) -> None:
    gen = Generator(tiny("qwen2"))
    ids = gen.encode("Pick one:")
    choices = ["https://a.example/x", "https://b.example/y", "zzz"]
    sampling = SamplingSettings(max_new_tokens=30)
    want = next(
        e for e in gen.stream(ids, sampling, None, None, choices) if isinstance(e, Completion)
    )
    assert any(want.text.startswith(c) for c in choices)
    beside, held = Collector(), Collector()
    scheduler.submit(gen.encode("something else"), sampling, None, beside)
    scheduler.submit(ids, sampling, None, held, choices=choices)
    assert held.completion().token_ids == want.token_ids
    assert (
        beside.completion().token_ids
        == gen.complete(gen.encode("something else"), sampling).token_ids
    )
