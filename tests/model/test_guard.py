"""The doom-loop guard: fires on repetition, quiet on prose; and its effect on a real stream."""

from __future__ import annotations

import pytest

from model.generate import Generator, SamplingSettings
from model.guard import GuardSettings, RepetitionGuard, is_doom_loop, repetition_ratio

PROSE = """The recursive language model pattern keeps a long text out of the prompt. The text
lives in a sandbox as a variable, and the model writes short programs that slice it, search it
and ask itself questions about the pieces. Small models forget what they read, but a program
can look again. When a question needs the whole text, the model maps a question over chunks and
combines the partial answers, which costs more calls but never overflows the context window.
Latency matters in a car, where the network comes and goes and a driver cannot wait for a
server on the other side of the country to answer a question about the fuel gauge."""


def word_ids(text: str) -> list[int]:
    vocab: dict[str, int] = {}
    return [vocab.setdefault(w, len(vocab)) for w in text.split()]


def test_fires_on_a_repeating_span() -> None:
    loop = word_ids("I will check the weather again now. " * 10)
    guard = RepetitionGuard(GuardSettings(ngram=6, max_repeats=3))
    fired_at = next(i for i, t in enumerate(loop) if guard.push(t))
    assert fired_at < 3 * 7 + 6  # within the third repetition of a 7-word period


def test_fires_on_a_single_stuttered_token() -> None:
    assert is_doom_loop([5] * 40, GuardSettings(ngram=12, max_repeats=4))


def test_quiet_on_prose_and_when_disabled() -> None:
    tokens = word_ids(PROSE)
    assert not is_doom_loop(tokens, GuardSettings(ngram=6, max_repeats=3))
    assert not is_doom_loop([5] * 100, GuardSettings(enabled=False))


def test_window_forgets_old_repeats() -> None:
    settings = GuardSettings(ngram=4, max_repeats=3, varied_repeats=3, window=40)  # counting
    spaced = []
    for i in range(3):
        spaced += [1, 2, 3, 4] + list(range(100 + 50 * i, 140 + 50 * i))  # repeats 44 apart
    assert not is_doom_loop(spaced, settings)
    assert is_doom_loop(spaced, settings.model_copy(update={"window": 200}))


def calls(values: list[int]) -> list[int]:
    """A list of tool calls to one function with other arguments, as characters."""
    text = "\n".join(
        f'{{"name": "geometry.circumference", "arguments": {{"radius": {v}, "units": "m"}}}}'
        for v in values
    )
    return [ord(c) for c in text]


def test_calls_with_other_arguments_are_no_loop_until_twice_the_repeats() -> None:
    # Their shared span recurs once per call: counting alone fired at the fourth call.
    assert not is_doom_loop(calls([5, 10, 15, 20, 25, 30, 35]))
    assert is_doom_loop(calls([5, 10, 15, 20, 25, 30, 35, 40]))  # varied_repeats: 2 x 4
    assert not is_doom_loop(calls([5, 10, 15, 20, 25]), GuardSettings(varied_repeats=6))
    assert is_doom_loop(calls([5, 10, 15, 20]), GuardSettings(varied_repeats=4))  # counting alone


def test_the_same_call_again_is_a_loop_at_max_repeats() -> None:
    same = calls([5] * 5)
    guard = RepetitionGuard()
    fired_at = next(i for i, t in enumerate(same) if guard.push(t))
    period = len(calls([5, 5])) - len(calls([5]))
    assert 3 * period < fired_at < 4 * period  # within the fourth call, as counting alone


def test_repetition_ratio() -> None:
    assert repetition_ratio(word_ids(PROSE)) < 0.05
    assert repetition_ratio([1, 2, 3] * 30) > 0.9


def looping_model(cycle: str):
    """A tiny Llama rigged to write `cycle` forever: its layers add nothing, so the last token's
    embedding alone picks the next, and the output matrix maps each byte to its successor."""
    import torch

    from model.tiny import tiny_model

    lm = tiny_model("llama")
    model = lm.model
    for layer in model.model.layers:
        layer.self_attn.o_proj.weight.data.zero_()
        layer.mlp.down_proj.weight.data.zero_()
    emb = model.get_input_embeddings().weight.data
    ids = [lm.tokenizer.convert_tokens_to_ids(lm.tokenizer.tokenize(ch))[0] for ch in cycle]
    head = emb.clone()
    for a, b in zip(ids, ids[1:] + ids[:1], strict=True):
        head[b] = emb[a]  # logit of b is highest when the last token was a
    model.lm_head.weight = torch.nn.Parameter(head)
    return lm


def test_guard_stops_a_looping_model() -> None:
    lm = looping_model("abcdefg")
    gen = Generator(lm)
    prompt = gen.encode("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\na")
    sampling = SamplingSettings(max_new_tokens=200)
    *_, free = gen.stream(prompt, sampling, GuardSettings(enabled=False))
    assert free.finish_reason == "length" and free.text.startswith("bcdefgabcdefg")
    *_, guarded = gen.stream(prompt, sampling, GuardSettings(ngram=12, max_repeats=4))
    assert guarded.finish_reason == "doom_loop" and guarded.doom_loop
    # 12 tokens to form the first 12-gram, then 3 more periods of 7 to see it 4 times
    assert len(guarded.token_ids) == 12 + 3 * 7
    assert guarded.token_ids == free.token_ids[: len(guarded.token_ids)]


@pytest.mark.slow
def test_guard_quiet_on_a_normal_answer(embedded_lm) -> None:
    gen = Generator(embedded_lm)
    prompt = embedded_lm.tokenizer.apply_chat_template(
        [{"role": "user", "content": "Explain in three sentences why the sky is blue."}],
        add_generation_prompt=True,
        tokenize=False,
    )
    *_, done = gen.stream(prompt, SamplingSettings(max_new_tokens=120), GuardSettings())
    assert done.finish_reason == "eos"
    assert len(done.text.split()) > 20
