"""Llama and Qwen2 models built without transformers' model classes, for inference.

Importing transformers and its model classes took 3.3 s of a 6.8 s start on 2 AVX2 cores
(torch itself 1.8 s), before a weight was read. For the two architectures the lean forward
(`model.fast`) runs anyway, this module builds the same module tree itself: the same names
(`model.layers.0.self_attn.q_proj`, ...), so a checkpoint's state dict, a LoRA adapter's keys,
`model.quant` and `model.layout` all apply unchanged, and the weights are assigned straight
from the memory-mapped safetensors file (no copy where the dtype matches). The tokenizer
comes from `model.tokenizer` (the `tokenizers` library, no transformers either).

`build(folder, dtype)` returns None for anything it does not cover, and the caller loads with
transformers: other architectures, RoPE scaling other than the plain one, sliding windows,
biases in unusual places. `forward` gives full-sequence logits (tests, scoring) with
`logits` as transformers does; decoding goes through `model.fast`. Not here: training (peft
and TRL want transformers' classes: the trainer loads with `lean=False`), GPU specifics.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from model import fast

ARCHS = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM"}


def read_config(folder: Path) -> SimpleNamespace | None:
    """The folder's config.json as attributes, or None when this module cannot build it."""
    path = folder / "config.json"
    if not path.is_file():
        return None
    raw = json.loads(path.read_text())
    if raw.get("model_type") not in ARCHS or raw.get("hidden_act", "silu") != "silu":
        return None
    if raw.get("use_sliding_window") or raw.get("pretraining_tp", 1) != 1:
        return None
    if any(t != "full_attention" for t in raw.get("layer_types") or []):
        return None
    rope = raw.get("rope_parameters") or raw.get("rope_scaling") or {}
    if rope.get("rope_type", rope.get("type", "default")) != "default":
        return None
    raw.setdefault("head_dim", raw["hidden_size"] // raw["num_attention_heads"])
    raw["rope_theta"] = rope.get("rope_theta", raw.get("rope_theta", 10000.0))
    raw.setdefault("architectures", [ARCHS[raw["model_type"]]])
    raw.setdefault("tie_word_embeddings", False)
    return SimpleNamespace(**raw)


class RMSNorm(nn.Module):
    def __init__(self, size: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.variance_epsilon = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # As transformers: normalised in float32, the weight applied in the input's dtype.
        return self.weight * F.rms_norm(x.float(), (x.shape[-1],), eps=self.variance_epsilon).to(
            x.dtype
        )


class Rotary(nn.Module):
    """Plain RoPE; `forward(h, positions)` gives (cos, sin) as transformers' rotary module."""

    def __init__(self, config: SimpleNamespace) -> None:
        super().__init__()
        # On the CPU even under a meta-device context: meta arithmetic imports torch._dynamo.
        d = config.head_dim
        steps = torch.arange(0, d, 2, dtype=torch.int64, device="cpu").float() / d
        self.register_buffer("inv_freq", 1.0 / (config.rope_theta**steps), persistent=False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        freqs = (self.inv_freq[None, :, None].float() @ positions[:, None, :].float()).transpose(
            1, 2
        )
        angles = torch.cat((freqs, freqs), dim=-1)
        return angles.cos().to(x.dtype), angles.sin().to(x.dtype)


class Attention(nn.Module):
    def __init__(self, c: SimpleNamespace) -> None:
        super().__init__()
        d, qkv_bias = c.head_dim, c.model_type == "qwen2" or getattr(c, "attention_bias", False)
        self.q_proj = nn.Linear(c.hidden_size, c.num_attention_heads * d, bias=qkv_bias)
        self.k_proj = nn.Linear(c.hidden_size, c.num_key_value_heads * d, bias=qkv_bias)
        self.v_proj = nn.Linear(c.hidden_size, c.num_key_value_heads * d, bias=qkv_bias)
        out_bias = c.model_type == "llama" and getattr(c, "attention_bias", False)
        self.o_proj = nn.Linear(c.num_attention_heads * d, c.hidden_size, bias=out_bias)
        self.scaling = d**-0.5


class MLP(nn.Module):
    def __init__(self, c: SimpleNamespace) -> None:
        super().__init__()
        bias = getattr(c, "mlp_bias", False)
        self.gate_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=bias)
        self.up_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=bias)
        self.down_proj = nn.Linear(c.intermediate_size, c.hidden_size, bias=bias)
        self.act_fn = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, c: SimpleNamespace) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.self_attn = Attention(c)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.mlp = MLP(c)


class Body(nn.Module):
    def __init__(self, c: SimpleNamespace) -> None:
        super().__init__()
        # Given a weight, the table skips its random init, whose meta-device version imports
        # torch._dynamo (2 s of a start).
        table = torch.empty(c.vocab_size, c.hidden_size)
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size, _weight=table)
        self.layers = nn.ModuleList(Layer(c) for _ in range(c.num_hidden_layers))
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.rotary_emb = Rotary(c)


@dataclass
class Output:
    logits: torch.Tensor


class CausalLM(nn.Module):
    """What callers use of transformers' CausalLM: `config`, `generation_config`, `dtype`,
    the embedding accessors, and `forward(input_ids)` with `.logits`."""

    def __init__(self, config: SimpleNamespace) -> None:
        super().__init__()
        self.config = config
        self.generation_config = SimpleNamespace()
        self.model = Body(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)

    @property
    def dtype(self) -> torch.dtype:
        return self.model.norm.weight.dtype

    def get_input_embeddings(self) -> nn.Module:
        return self.model.embed_tokens

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.model.embed_tokens = value

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def forward(self, input_ids: torch.Tensor, **_: Any) -> Output:
        """Logits at every position of each row (no cache, no padding)."""
        body, n = self.model, input_ids.shape[1]
        h = body.embed_tokens(input_ids)
        positions = torch.arange(n, device=h.device).expand(input_ids.shape[0], n)
        cos, sin = body.rotary_emb(h, positions)
        for layer in body.layers:
            x = fast._norm(layer.input_layernorm, h)
            h = h + _attend(layer.self_attn, x, cos, sin, self.config)
            h = h + fast._mlp(layer.mlp, fast._norm(layer.post_attention_layernorm, h))
        return Output(self.lm_head(fast._norm(body.norm, h)))


def _attend(attn: Any, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, c: Any) -> Any:
    b, n, d = x.shape[0], x.shape[1], c.head_dim
    # Fused projections answer to their old names too (`fast.Part`).
    q, k, v = (
        p(x).view(b, n, -1, d).transpose(1, 2) for p in (attn.q_proj, attn.k_proj, attn.v_proj)
    )
    q, k = fast._rotate(q, cos, sin), fast._rotate(k, cos, sin)
    out = F.scaled_dot_product_attention(
        q, k, v, is_causal=n > 1, scale=attn.scaling, enable_gqa=True
    )
    return attn.o_proj(out.transpose(1, 2).reshape(b, n, -1))


def build(folder: Path, dtype: torch.dtype, empty: bool = False) -> CausalLM | None:
    """The model in `folder` with its weights (memory-mapped where `dtype` is the file's), or
    None when `read_config` cannot take it. `empty`: on the meta device, for a caller that
    assigns a state dict of its own (`model.quant_saved.load_saved`)."""
    config = read_config(folder)
    if config is None:
        return None
    with torch.device("meta"):
        model = CausalLM(config).to(dtype)
    model.model.rotary_emb = Rotary(config)  # float32 whatever the weights, as transformers
    generation = folder / "generation_config.json"
    if generation.is_file():
        model.generation_config = SimpleNamespace(**json.loads(generation.read_text()))
    if empty:
        return model
    from safetensors.torch import load_file

    state: dict[str, torch.Tensor] = {}
    for file in sorted(folder.glob("*.safetensors")):
        state.update(load_file(str(file)))
    state = {k: v if v.dtype == dtype else v.to(dtype) for k, v in state.items()}
    if config.tie_word_embeddings:  # files of tied models often lack the head
        state["lm_head.weight"] = state["model.embed_tokens.weight"]
    model.load_state_dict(state, assign=True, strict=True)
    if config.tie_word_embeddings:  # one tensor, as transformers ties them
        model.lm_head.weight = model.model.embed_tokens.weight
    return model.eval().requires_grad_(False)
