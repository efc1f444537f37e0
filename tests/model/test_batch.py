"""Batched completions: the same tokens and ends as one-at-a-time decoding, slots refilled."""

from __future__ import annotations

import pytest

from model.batch import Slots, complete_many
from model.generate import Generator, SamplingSettings
from model.guard import GuardSettings
from model.scripted import ScriptedGenerator

TEXTS = ["hello there", "a", "The quick brown fox jumps over", "xyz " * 30, "12345", "ok", "zz"]


def serial_and_batched(gen: Generator, sampling: SamplingSettings, slots: int, **kw) -> tuple:
    prompts = [gen.encode(t) for t in TEXTS]
    serial = [gen.complete(p, sampling, kw.get("guard")) for p in prompts]
    batched = dict(complete_many(gen, prompts, sampling, kw.get("guard"), slots=slots))
    return serial, [batched[i] for i in range(len(prompts))]


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_batched_greedy_matches_one_at_a_time(tiny, arch: str) -> None:
    gen = Generator(tiny(arch))
    assert gen.batchable
    # 3 slots for 7 prompts: every slot is refilled at least once, mid-run.
    serial, batched = serial_and_batched(gen, SamplingSettings(max_new_tokens=40), slots=3)
    for one, many in zip(serial, batched, strict=True):
        assert many.token_ids == one.token_ids and many.text == one.text
        assert many.finish_reason == one.finish_reason
        assert many.prompt_tokens == one.prompt_tokens and many.ttft_s > 0
    assert {c.finish_reason for c in serial} == {"eos", "length"}  # both ends are exercised


def test_stop_strings_the_guard_and_the_limit_end_rows_as_in_the_stream(tiny) -> None:
    gen = Generator(tiny("qwen2"))
    first = gen.complete(gen.encode(TEXTS[0]), SamplingSettings(max_new_tokens=30)).text
    stop = SamplingSettings(max_new_tokens=30, stop=[first[3:5]])  # a string it will write
    serial, batched = serial_and_batched(gen, stop, slots=4)
    assert serial[0].finish_reason == "stop" and first[3:5] not in serial[0].text
    assert [c.text for c in batched] == [c.text for c in serial]
    assert [c.finish_reason for c in batched] == [c.finish_reason for c in serial]
    tight = GuardSettings(ngram=2, max_repeats=2, varied_repeats=2)  # any repeated pair: a loop
    serial, batched = serial_and_batched(gen, SamplingSettings(max_new_tokens=60), 4, guard=tight)
    assert "doom_loop" in {c.finish_reason for c in serial}
    assert [c.token_ids for c in batched] == [c.token_ids for c in serial]
    assert [c.finish_reason for c in batched] == [c.finish_reason for c in serial]


def test_models_without_the_lean_forward_and_scripts_go_one_by_one(tiny) -> None:
    lfm2 = Generator(tiny("lfm2"))
    assert not lfm2.batchable
    serial, batched = serial_and_batched(lfm2, SamplingSettings(max_new_tokens=8), slots=4)
    assert [c.token_ids for c in batched] == [c.token_ids for c in serial]
    script = ScriptedGenerator(tiny("qwen2"), ["first", "second"])
    done = dict(complete_many(script, [[1, 2], [3]], SamplingSettings(), slots=4))
    assert (done[0].text, done[1].text) == ("first", "second")


def test_a_slot_keeps_only_its_own_positions(tiny) -> None:
    """A short prompt beside a long one: the long one's keys are masked out of its row."""
    lm = tiny("qwen2")
    gen = Generator(lm)
    short, long = gen.encode("hi"), gen.encode("a much longer prompt than the other " * 4)
    alone = Slots(lm.model, 1)
    together = Slots(lm.model, 2)
    expected = alone.prefill(0, short)
    together.prefill(1, long)
    assert (together.prefill(0, short) - expected).abs().max() < 1e-5
    row = together.step([7, 7], [True, True])[0]
    assert (row - alone.step([7], [True])[0]).abs().max() < 1e-4
    assert together.lengths.tolist() == [len(short) + 1, len(long) + 1]


def test_an_empty_prompt_is_our_bug(tiny) -> None:
    gen = Generator(tiny("qwen2"))
    with pytest.raises(ValueError, match="prompt 1 is empty"):
        list(complete_many(gen, [[1, 2], []], SamplingSettings(max_new_tokens=2), slots=2))


def test_sampled_batches_repeat_with_a_seed_and_top_k_1_is_greedy(tiny) -> None:
    gen = Generator(tiny("qwen2"))
    prompts = [gen.encode(t) for t in TEXTS]
    hot = SamplingSettings(max_new_tokens=20, temperature=1.0, seed=3)
    runs = [dict(complete_many(gen, prompts, hot, slots=3)) for _ in range(2)]
    assert all(runs[0][i].token_ids == runs[1][i].token_ids for i in range(len(prompts)))
    greedy = dict(complete_many(gen, prompts, SamplingSettings(max_new_tokens=20), slots=3))
    assert any(runs[0][i].token_ids != greedy[i].token_ids for i in range(len(prompts)))
    top1 = hot.model_copy(update={"top_k": 1})
    picked = dict(complete_many(gen, prompts, top1, slots=3))
    assert all(picked[i].token_ids == greedy[i].token_ids for i in range(len(prompts)))


def test_rows_that_end_on_their_first_token_take_no_more(tiny) -> None:
    gen = Generator(tiny("qwen2"))
    serial, batched = serial_and_batched(gen, SamplingSettings(max_new_tokens=1), slots=3)
    assert all(len(c.token_ids) == 1 for c in batched)
    assert [c.token_ids for c in batched] == [c.token_ids for c in serial]
