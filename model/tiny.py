"""Tiny random-weight models, built in-process from a config, for tests that must run in seconds.

Each comes with a byte-level tokenizer made on the spot (256 byte tokens plus the special
tokens of every chat format we speak), so nothing is downloaded and any text round-trips.
The chat templates are the shipped ones in `model/templates`, chosen per architecture the same
way a real checkpoint would carry them. These models produce noise, not answers: they test the
plumbing (shapes, caches, masks, gradients), never quality.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch

from model.loader import LoadedModel, wrap

Arch = Literal["qwen2", "llama", "lfm2", "gemma3"]
TEMPLATES = Path(__file__).parent / "templates"
SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|startoftext|>",
    "<tool_call>",
    "</tool_call>",
    "<tool_response>",
    "</tool_response>",
    "<|tool_list_start|>",
    "<|tool_list_end|>",
    "<|tool_call_start|>",
    "<|tool_call_end|>",
    "<|tool_response_start|>",
    "<|tool_response_end|>",
]
# A wide init makes greedy output vary from token to token instead of repeating one token, so
# stop strings and detokenization meet real variety. But it saturates attention (query-key
# logits of about 16 standard deviations), so a LoRA adapter barely moves where it attends.
# The usual 0.02 fails the other way: the output head (tied to the frozen embedding) then has
# rows of norm 0.16, too small for any confident prediction. 0.1 trains
# (tests/model/train/test_sft_learns.py).
WIDE_INIT = 0.5
LEARNABLE_INIT = 0.1
TEMPLATE_OF: dict[str, str] = {
    "qwen2": "hermes.jinja",
    "lfm2": "lfm2.jinja",
    "llama": "chatml.jinja",
    "gemma3": "chatml.jinja",
}


def byte_tokenizer(arch: Arch = "qwen2") -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab = {ch: i for i, ch in enumerate(bytes_to_unicode().values())}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=SPECIAL_TOKENS,
    )
    tokenizer.chat_template = (TEMPLATES / TEMPLATE_OF[arch]).read_text()
    return tokenizer


def tiny_config(arch: Arch, vocab_size: int, init_range: float = WIDE_INIT) -> Any:
    common: dict[str, Any] = dict(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        initializer_range=init_range,
    )
    if arch == "qwen2":
        from transformers import Qwen2Config

        return Qwen2Config(**common, tie_word_embeddings=True)
    if arch == "llama":
        from transformers import LlamaConfig

        return LlamaConfig(**common, tie_word_embeddings=True)
    if arch == "lfm2":
        from transformers import Lfm2Config

        # The hybrid LFM2 layout in miniature: short convolutions and GQA attention interleaved.
        common.update(num_hidden_layers=3, layer_types=["conv", "full_attention", "conv"])
        return Lfm2Config(**common)
    if arch == "gemma3":
        from transformers import Gemma3TextConfig

        return Gemma3TextConfig(**common, head_dim=16, sliding_window=64)
    raise ValueError(f"unknown tiny architecture {arch}")


def tiny_model(arch: Arch = "qwen2", seed: int = 0, init_range: float = WIDE_INIT) -> LoadedModel:
    """`init_range`: the weights' standard deviation. The wide default gives varied output; a
    learning test passes a narrow one (`LEARNABLE_INIT`)."""
    from transformers import AutoModelForCausalLM

    tokenizer = byte_tokenizer(arch)
    torch.manual_seed(seed)
    config = tiny_config(arch, vocab_size=len(tokenizer), init_range=init_range)
    config.eos_token_id = tokenizer.eos_token_id
    config.pad_token_id = tokenizer.pad_token_id
    model = AutoModelForCausalLM.from_config(config).eval()
    return wrap(model, tokenizer, spec=f"tiny-{arch}")
