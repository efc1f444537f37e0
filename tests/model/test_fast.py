"""The lean forward (`model.fast`) against transformers' own, on tiny random models."""

from __future__ import annotations

import pytest
import torch

from model import fast
from model.generate import Generator, SamplingSettings
from model.quant import quantize
from model.tiny import tiny_model


def logits_both_ways(lm, chunks: list[list[int]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    lean, plain = Generator(lm), Generator(lm, lean=False)
    assert lean._fast is not None and plain._fast is None
    return [(lean._forward(ids), plain._forward(ids)) for ids in chunks]


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_lean_forward_matches_transformers(tiny, arch: str) -> None:
    lm = tiny(arch)
    # A prompt, single decode steps, then a chunk that pushes the buffer past its first size.
    chunks = [list(range(3, 40)), [5], [9], [11], list(range(20, 250)), [7, 8]]
    for lean, plain in logits_both_ways(lm, chunks):
        torch.testing.assert_close(lean, plain, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_lean_generation_rolls_back_like_transformers(tiny, arch: str) -> None:
    lm = tiny(arch)
    lean, plain = Generator(lm), Generator(lm, lean=False)
    s = SamplingSettings(max_new_tokens=30)
    prompts = [list(range(3, 40)), list(range(3, 30)), list(range(3, 30)) + [60, 61, 62]]
    for ids in prompts:  # a shorter prompt cuts the cache back; a longer one extends it
        a, b = lean.complete(ids, s), plain.complete(ids, s)
        assert a.token_ids == b.token_ids
        assert a.reused_tokens == b.reused_tokens
        assert a.forward_s > 0


def test_other_architectures_keep_the_transformers_forward(tiny) -> None:
    for arch in ("lfm2", "gemma3"):
        lm = tiny(arch)
        assert not fast.supports(lm.model)
        assert Generator(lm)._fast is None


def test_lean_forward_runs_quantized_layers() -> None:
    lm = tiny_model("qwen2")  # its own copy: quantizing swaps layers in place
    quantize(lm.model, "int8")
    for lean, plain in logits_both_ways(lm, [list(range(3, 30)), [4], [5]]):
        torch.testing.assert_close(lean, plain, rtol=1e-3, atol=1e-3)


def test_lean_forward_runs_lora_wrapped_layers() -> None:
    from model.train.lora import attach

    lm = tiny_model("llama")
    lm.model = attach(lm.model).eval()  # eval: LoRA dropout off, as when generating
    with torch.no_grad():  # a fresh adapter adds zero; make it add something
        for name, p in lm.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    for lean, plain in logits_both_ways(lm, [list(range(3, 30)), [4]]):
        torch.testing.assert_close(lean, plain, rtol=1e-4, atol=1e-4)
    with lm.model.disable_adapter():  # DPO's reference model: the adapter switched off
        for lean, plain in logits_both_ways(lm, [list(range(3, 30))]):
            torch.testing.assert_close(lean, plain, rtol=1e-4, atol=1e-4)


def test_a_long_prompt_after_a_short_shared_prefix_starts_afresh(tiny) -> None:
    """After kept positions the kernel scores every new x (kept + new) pair; from scratch it
    takes its causal path, half of them: a long text after a short shared prefix runs afresh,
    and a chat's next turn keeps its cache."""
    lm = tiny("qwen2")
    gen = Generator(lm)
    decoder = gen._fast
    assert decoder is not None
    assert decoder.fresh_pays(4, 400) and not decoder.fresh_pays(400, 4)
    assert not decoder.fresh_pays(0, 400)
    head, body = [10, 11, 12, 13], [20 + i % 200 for i in range(400)]
    gen.complete(head + [5], SamplingSettings(max_new_tokens=1))
    assert gen._reuse(head + body) == 0  # 4 kept, 400 new: from scratch
    gen.complete(head + body, SamplingSettings(max_new_tokens=1))
    assert gen._reuse(head + body + [7, 8]) > 0  # a short turn after a long text: kept
