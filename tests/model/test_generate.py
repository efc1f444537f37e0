"""Streaming generation on tiny random models: stops, cancellation, sampling, KV-cache reuse."""

from __future__ import annotations

import threading

import pytest

from model.generate import Completion, Delta, Detokenizer, Generator, SamplingSettings
from model.guard import GuardSettings

NO_GUARD = GuardSettings(enabled=False)


def run(gen: Generator, prompt, **kw) -> tuple[list[Delta], Completion]:
    guard = kw.pop("guard", NO_GUARD)
    cancel = kw.pop("cancel", None)
    events = list(gen.stream(prompt, SamplingSettings(**kw), guard, cancel))
    assert isinstance(events[-1], Completion)
    assert all(isinstance(e, Delta) for e in events[:-1])
    return events[:-1], events[-1]  # type: ignore[return-value]


def chat_prompt(lm, text: str = "Hello there") -> str:
    return lm.tokenizer.apply_chat_template(
        [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False
    )


def test_stream_deltas_add_up_to_the_text(tiny) -> None:
    lm = tiny("qwen2")
    deltas, done = run(Generator(lm), chat_prompt(lm), max_new_tokens=40)
    assert done.finish_reason == "length" and len(done.token_ids) == 40
    assert "".join(d.text for d in deltas) == done.text
    assert done.text == lm.tokenizer.decode(done.token_ids)
    assert done.ttft_s > 0 and done.prompt_tokens > 5


def test_stop_string_ends_the_stream_and_never_leaks(tiny) -> None:
    lm = tiny("qwen2")
    gen = Generator(lm)
    _, free = run(gen, chat_prompt(lm), max_new_tokens=60)
    # Stop on a 3-character piece from the middle of what greedy decoding produces anyway.
    cut = len(free.text) // 2
    stop = free.text[cut : cut + 3]
    first = free.text.find(stop)
    deltas, done = run(gen, chat_prompt(lm), max_new_tokens=60, stop=[stop, "never-there"])
    assert done.finish_reason == "stop"
    assert done.text == free.text[:first]
    assert "".join(d.text for d in deltas) == done.text
    assert len(done.token_ids) < 60


def test_end_of_turn_token_stops(tiny) -> None:
    lm = tiny("llama")
    gen = Generator(lm)
    _, free = run(gen, chat_prompt(lm), max_new_tokens=30)
    # Declare the 5th sampled token an end-of-turn marker: greedy decoding must stop right there.
    lm_eos = type(lm)(**{**lm.__dict__, "stop_token_ids": {free.token_ids[4]}})
    _, done = run(Generator(lm_eos), chat_prompt(lm), max_new_tokens=30)
    first = free.token_ids.index(free.token_ids[4])
    assert done.finish_reason == "eos"
    assert done.token_ids == free.token_ids[: first + 1]


def test_cancel_from_another_thread(tiny) -> None:
    lm = tiny("qwen2")
    cancel = threading.Event()
    seen: list[str] = []
    stream = Generator(lm).stream(
        chat_prompt(lm), SamplingSettings(max_new_tokens=500), NO_GUARD, cancel
    )
    for event in stream:
        if isinstance(event, Completion):
            done = event
            break
        seen.append(event.text)
        if len(seen) == 3:
            t = threading.Thread(target=cancel.set)
            t.start()
            t.join()
    assert done.finish_reason == "cancelled"
    assert len(done.token_ids) < 10
    assert done.text.startswith("".join(seen))


def test_sampling_seeded_is_reproducible_and_top_k_1_is_greedy(tiny) -> None:
    lm = tiny("qwen2")
    gen = Generator(lm)
    prompt = chat_prompt(lm)
    _, a = run(gen, prompt, max_new_tokens=20, temperature=1.0, seed=7)
    _, b = run(gen, prompt, max_new_tokens=20, temperature=1.0, seed=7)
    _, c = run(gen, prompt, max_new_tokens=20, temperature=1.0, seed=8)
    _, greedy = run(gen, prompt, max_new_tokens=20)
    _, k1 = run(gen, prompt, max_new_tokens=20, temperature=1.0, top_k=1, seed=3)
    _, p_small = run(gen, prompt, max_new_tokens=20, temperature=1.0, top_p=1e-6, seed=3)
    assert a.token_ids == b.token_ids
    assert a.token_ids != c.token_ids
    assert k1.token_ids == greedy.token_ids == p_small.token_ids


@pytest.mark.parametrize("arch", ["qwen2", "llama", "lfm2", "gemma3"])
def test_kv_reuse_gives_the_same_greedy_tokens(tiny, arch: str) -> None:
    """A second prompt that extends the first (as the ReAct loop's do) reuses the cache and
    decodes exactly what a fresh encode of the whole prompt decodes."""
    lm = tiny(arch)
    gen = Generator(lm)
    first_ids = gen.encode(chat_prompt(lm, "What is two plus two?"))
    _, first = run(gen, first_ids, max_new_tokens=12)
    follow_up = gen.encode("<|im_end|>\n<|im_start|>user\nAnd three?<|im_end|>\n")
    second_ids = first_ids + first.token_ids + follow_up
    _, reused = run(gen, second_ids, max_new_tokens=12)
    assert reused.reused_tokens >= len(first_ids) + len(first.token_ids) - 1
    gen.reset()
    _, fresh = run(gen, second_ids, max_new_tokens=12)
    assert fresh.reused_tokens == 0
    assert reused.token_ids == fresh.token_ids


@pytest.mark.parametrize("arch", ["qwen2", "lfm2"])
def test_kv_reuse_after_an_edit_in_the_middle(tiny, arch: str) -> None:
    """A prompt that diverges from the cache still decodes right: cut back where the model
    allows it (attention), start over where it does not (LFM2's convolution state)."""
    lm = tiny(arch)
    gen = Generator(lm)
    a = gen.encode(chat_prompt(lm, "The first question is long enough to share a prefix."))
    b = gen.encode(chat_prompt(lm, "The first question is long enough to share a suffix."))
    run(gen, a, max_new_tokens=5)
    _, edited = run(gen, b, max_new_tokens=12)
    gen.reset()
    _, fresh = run(gen, b, max_new_tokens=12)
    assert edited.token_ids == fresh.token_ids
    assert (edited.reused_tokens > 0) == (arch == "qwen2")


def test_detokenizer_holds_back_a_possible_stop_string(tiny) -> None:
    tok = tiny("qwen2").tokenizer
    detok = Detokenizer(tok, stop=["STOP"])
    out = "".join(detok.push(t) for t in tok("abc ST", add_special_tokens=False)["input_ids"])
    assert out == "abc "  # "ST" may begin "STOP": held back
    out += "".join(detok.push(t) for t in tok("ar", add_special_tokens=False)["input_ids"])
    assert out == "abc STar"  # it did not: released
    out += "".join(detok.push(t) for t in tok(" STOP", add_special_tokens=False)["input_ids"])
    assert detok.stopped and out == "abc STar " and detok.text == "abc STar "


def test_detokenizer_waits_for_whole_utf8_characters(tiny) -> None:
    tok = tiny("qwen2").tokenizer
    detok = Detokenizer(tok, stop=[])
    pieces = [detok.push(t) for t in tok("é€", add_special_tokens=False)["input_ids"]]
    assert "".join(pieces) == "é€"
    assert all("\ufffd" not in p for p in pieces)


def test_empty_prompt_is_our_bug(tiny) -> None:
    with pytest.raises(ValueError):
        list(Generator(tiny("qwen2")).stream([]))


@pytest.mark.parametrize("arch", ["qwen2", "lfm2"])
def test_choices_hold_the_start_of_the_completion(tiny, arch: str) -> None:
    gen = Generator(tiny(arch))
    options = ["file:///a/b.md", "http://x.test/page"]
    for seed in range(3):
        sampling = SamplingSettings(temperature=1.5, seed=seed, max_new_tokens=24)
        done = list(gen.stream("pick one: ", sampling, choices=options))[-1]
        assert any(done.text.startswith(o) for o in options), done.text
