"""The prefix cache: kept heads are found, deduplicated and evicted; a slot prefilled from a
restored head gives a fresh prefill's logits; the scheduler reuses the system prompt and the
conversation so far, and decodes what a fresh one-at-a-time generator decodes."""

from __future__ import annotations

import threading

import pytest
import torch

from model.batch import Slots
from model.chat import render
from model.generate import Completion, Delta, Generator
from model.messages import Message
from model.prefix import PrefixCache
from model.sampling import SamplingSettings
from model.serving import Event, Scheduler

LAYERS = 2


def kv(ids: list[int]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Keys and values that name their own token: [1 head, n, 1] holding the ids."""
    col = torch.tensor(ids, dtype=torch.float32).view(1, -1, 1)
    return [col + layer for layer in range(LAYERS)], [-col - layer for layer in range(LAYERS)]


def test_the_longest_head_is_found_and_the_last_prompt_token_always_runs() -> None:
    cache = PrefixCache(budget=100)
    cache.keep([1, 2, 3, 4], *kv([1, 2, 3, 4]))
    cache.keep([1, 2, 9, 9, 9], *kv([1, 2, 9, 9, 9]))
    kept, n = cache.match([1, 2, 3, 7])
    assert n == 3 and kept is not None and kept.ids.tolist() == [1, 2, 3, 4]
    assert kept.keys[1][:, :n].flatten().tolist() == [2.0, 3.0, 4.0]  # layer 1 is ids + 1
    assert cache.match([1, 2, 3, 4])[1] == 3  # all of it kept, but the last token must run
    assert cache.match([1, 2, 9, 9, 9, 9])[1] == 5
    assert cache.match([5, 1, 2]) == (None, 0)
    assert cache.match([1]) == (None, 0)  # a one-token prompt has nothing to reuse
    stats = cache.stats()
    assert (stats.lookups, stats.hits, stats.reused_tokens) == (5, 3, 11)


def test_an_extension_replaces_its_head_and_a_covered_head_is_not_kept_twice() -> None:
    cache = PrefixCache(budget=100)
    cache.keep([1, 2, 3], *kv([1, 2, 3]))
    cache.keep([1, 2, 3, 4, 5], *kv([1, 2, 3, 4, 5]))  # the turn after: prompt plus reply
    assert (cache.stats().kept, cache.tokens) == (1, 5)
    cache.keep([1, 2], *kv([1, 2]))  # covered by what is kept
    cache.keep([1, 2, 3, 4, 5], *kv([1, 2, 3, 4, 5]))
    assert (cache.stats().kept, cache.tokens) == (1, 5)
    cache.keep([1, 2, 7], *kv([1, 2, 7]))  # shares a head only: both are kept
    assert (cache.stats().kept, cache.tokens) == (2, 8)


def test_what_is_kept_is_a_copy_not_a_view_of_the_slot() -> None:
    cache = PrefixCache(budget=100)
    keys, values = kv([1, 2, 3])
    cache.keep([1, 2, 3], keys, values)
    keys[0].fill_(0.0)  # the slot is overwritten by its next request
    kept, n = cache.match([1, 2, 3, 4])
    assert kept is not None and kept.keys[0][:, :n].flatten().tolist() == [1.0, 2.0, 3.0]


def test_the_least_recently_used_go_first_and_a_long_sequence_is_cut_to_the_budget() -> None:
    cache = PrefixCache(budget=10)
    for head in (1, 2, 3):
        cache.keep([head] * 4, *kv([head] * 4))
    assert [k.ids[0].item() for k in cache._kept] == [2, 3]  # 12 tokens > 10: the oldest went
    cache.match([2, 2, 2, 2])  # used: now the newest
    cache.keep([4] * 4, *kv([4] * 4))
    assert [k.ids[0].item() for k in cache._kept] == [2, 4]
    cache.keep(list(range(20, 35)), *kv(list(range(20, 35))))
    assert cache.tokens == 10 and cache.match(list(range(20, 40)))[1] == 10


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_a_restored_head_gives_a_fresh_prefills_logits(tiny, arch: str) -> None:
    lm = tiny(arch)
    gen = Generator(lm)
    head = gen.encode("You are a terse assistant. Answer in one word.\n")
    ids = head + gen.encode("What is the capital of France?")
    slots = Slots(lm.model, 3)
    fresh = slots.prefill(0, ids)
    slots.prefill(1, head + gen.encode("Something else"))
    keys, values = slots.held(1)
    slots.restore(2, [k[:, : len(head)].clone() for k in keys],
                  [v[:, : len(head)].clone() for v in values])  # fmt: skip
    reused = slots.prefill(2, ids, start=len(head))
    assert int(slots.lengths[2]) == len(ids)
    assert torch.allclose(reused, fresh, atol=1e-4, rtol=1e-4)
    assert int(reused.argmax()) == int(fresh.argmax())
    one_new = slots.prefill(2, ids, start=len(ids) - 1)  # only the last token runs
    assert torch.allclose(one_new, fresh, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError):
        slots.prefill(2, ids, start=len(ids))


class Sink:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.last: Event | None = None

    def __call__(self, event: Event) -> None:
        if not isinstance(event, Delta):
            self.last = event
            self.done.set()

    def completion(self) -> Completion:
        assert self.done.wait(30), "no completion"
        assert isinstance(self.last, Completion), self.last
        return self.last


def ask(s: Scheduler, ids: list[int], sampling: SamplingSettings) -> Completion:
    sink = Sink()
    s.submit(ids, sampling, None, sink)
    return sink.completion()


@pytest.fixture
def lm(tiny):
    return tiny("qwen2")


SYSTEM = "You are an in-car voice assistant. Be brief."


def chat(lm, *turns: str) -> list[int]:
    """A rendered conversation with a fixed system prompt, ready for the assistant's turn."""
    roles = ["user", "assistant"]
    messages = [Message(role="system", content=SYSTEM)]
    messages += [Message(role=roles[i % 2], content=t) for i, t in enumerate(turns)]
    return Generator(lm).encode(render(lm.tokenizer, messages, None, lm.tool_format))


def test_the_system_prompt_and_the_conversation_so_far_are_not_prefilled_again(lm) -> None:
    sampling = SamplingSettings(max_new_tokens=12)
    s = Scheduler(Generator(lm), slots=2)
    try:
        first_ids = chat(lm, "What is the capital of France?")
        first = ask(s, first_ids, sampling)
        assert first.reused_tokens == 0
        other_ids = chat(lm, "How far is Oslo?")
        other = ask(s, other_ids, sampling)
        shared = next(
            i for i, (a, b) in enumerate(zip(first_ids, other_ids, strict=False)) if a != b
        )
        assert other.reused_tokens == shared > len(Generator(lm).encode(SYSTEM))
        # The next turn repeats the first question and its answer: reused past the prompt.
        turn2 = chat(lm, "What is the capital of France?", first.text, "And of Spain?")
        second = ask(s, turn2, sampling)
        assert second.reused_tokens > len(first_ids)
        # What a fresh generator, prefilling everything, decodes.
        for ids, got in ((other_ids, other), (turn2, second)):
            want = Generator(lm).complete(ids, sampling)
            assert got.token_ids == want.token_ids and got.text == want.text
            assert got.prompt_tokens == len(ids)
        stats = s.prefixes.stats() if s.prefixes else None
        assert stats is not None and stats.hits == 2
        assert stats.reused_tokens == other.reused_tokens + second.reused_tokens
    finally:
        s.close()


def test_requests_admitted_together_share_the_first_ones_prefill(lm) -> None:
    sampling = SamplingSettings(max_new_tokens=6)
    s = Scheduler(Generator(lm), slots=4)
    try:
        prompts = [chat(lm, q) for q in ("Hello", "Hi there", "Good morning", "Hey")]
        sinks = [Sink() for _ in prompts]
        for ids, sink in zip(prompts, sinks, strict=True):
            s.submit(ids, sampling, None, sink)
        reused = sorted(sink.completion().reused_tokens for sink in sinks)
        system = len(Generator(lm).encode(SYSTEM))
        assert reused[0] == 0 and all(n > system for n in reused[1:])
    finally:
        s.close()


def test_without_a_budget_nothing_is_kept(lm) -> None:
    s = Scheduler(Generator(lm), slots=2, prefix_tokens=0)
    try:
        ids = chat(lm, "Hello")
        assert s.prefixes is None
        assert ask(s, ids, SamplingSettings(max_new_tokens=4)).reused_tokens == 0
        assert ask(s, ids, SamplingSettings(max_new_tokens=4)).reused_tokens == 0
    finally:
        s.close()
