"""A lean forward pass for the Llama family (Llama, SmolLM2, Qwen2) with a preallocated KV cache.

Decoding a small model on a CPU costs more in framework overhead than in arithmetic: measured
on SmolLM2-135M, transformers' forward took 44 ms a token where its matrix products took 20;
a sixth of the time went to `torch.cat` growing the KV cache by one token per layer, the rest
to masks, cache bookkeeping and dispatch. This forward keeps transformers' own modules for
the norms, the MLP, the projections (so quantized or LoRA-wrapped layers just work) and the
rotary embedding (so every RoPE scaling just works), and replaces only the attention glue:
keys and values go into a buffer that grows by doubling, and rolling back is moving a length.

For quantized models `fuse` goes further: q, k and v become one projection, gate and up another
(one weight read and one kernel call instead of three and two); the old names stay as `Part`s
that slice the fused output, so transformers' forward still runs, only slower. Where our C++
kernels are loaded (`model.native`, with quantized weights), a one-token step runs each layer
as one `decode_layer` call when all its projections are in our int8 or int4 blocks, and otherwise
takes our norm, activation and attention for the step's small ops; prompts keep torch's.

`supports(model)` says when all this applies: Llama and Qwen2 layouts with full attention
everywhere. Everything else (LFM2's convolutions, Gemma 3's sliding windows and extra norms)
keeps the transformers forward in `model.generate`. Batches of sequences: `model.batch`, on
these same modules. Not here: sampling, training
(gradients flow through transformers' forward, never this one).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from model import native

ARCHS = ("llama", "qwen2")


def _decoder_of(model: Any) -> Any:
    """The transformers CausalLM under a peft wrapper, if any."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base


def supports(model: Any) -> bool:
    config = _decoder_of(model).config
    if getattr(config, "model_type", None) not in ARCHS:
        return False
    if getattr(config, "use_sliding_window", False):
        return False
    types = getattr(config, "layer_types", None) or []
    return all(t == "full_attention" for t in types)


class Part(nn.Module):
    """One projection of a fused one (q of qkv, gate of gate+up), for callers that ask for it
    by its old name: transformers' forward. The lean forward calls the fused layer once."""

    def __init__(self, owner: nn.Module, fused: str, start: int, end: int) -> None:
        super().__init__()
        object.__setattr__(self, "_owner", owner)  # not a submodule: the weight lives once
        self.fused, self.start, self.end = fused, start, end

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self._owner, self.fused)(x)[..., self.start : self.end]


def fuse(model: Any) -> None:
    """q/k/v into `qkv_proj`, gate/up into `gate_up_proj`, in place (before quantizing: the
    fused weight is then quantized once). Only for inference: LoRA cannot target a Part."""
    if not supports(model):
        return
    for layer in _decoder_of(model).model.layers:
        _fuse(layer.self_attn, "qkv_proj", ["q_proj", "k_proj", "v_proj"])
        _fuse(layer.mlp, "gate_up_proj", ["gate_proj", "up_proj"])


def _fuse(owner: nn.Module, name: str, parts: list[str]) -> None:
    linears = [getattr(owner, p) for p in parts]
    if not all(type(x) is nn.Linear for x in linears):
        return
    has_bias = [x.bias is not None for x in linears]
    if any(has_bias) and not all(has_bias):
        return
    fused = nn.Linear(linears[0].in_features, sum(x.out_features for x in linears), all(has_bias))
    with torch.no_grad():
        fused.weight = nn.Parameter(_cat([x.weight for x in linears]), requires_grad=False)
        if all(has_bias):
            fused.bias = nn.Parameter(_cat([x.bias for x in linears]), requires_grad=False)
    setattr(owner, name, fused)
    start = 0
    for part, x in zip(parts, linears, strict=True):
        setattr(owner, part, Part(owner, name, start, start + x.out_features))
        start += x.out_features


def _cat(tensors: list[torch.Tensor]) -> torch.Tensor:
    # On the meta device (a saved quantized model being built) only the shape matters, and
    # meta arithmetic imports torch._dynamo: 2-4 s of a start.
    if tensors[0].is_meta:
        rows = sum(t.shape[0] for t in tensors)
        return torch.empty(rows, *tensors[0].shape[1:], dtype=tensors[0].dtype, device="meta")
    return torch.cat(tensors)


class Decoder:
    """Runs new tokens through the model, keeping their keys and values; one sequence."""

    def __init__(self, model: Any) -> None:
        lm = _decoder_of(model)
        self.body, self.head = lm.model, lm.lm_head
        self.device = self.body.norm.weight.device  # a float weight even when layers are int8
        config = lm.config
        self.q_heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or (
            config.hidden_size // config.num_attention_heads
        )
        q, kv, h = self.q_heads * self.head_dim, self.kv_heads * self.head_dim, config.hidden_size
        per_layer = h * (2 * q + 2 * kv) + 3 * h * config.intermediate_size  # q, k, v, o, MLP
        self.weights = per_layer * len(self.body.layers)
        self.fused: list[tuple] | None = None
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self.length = 0

    def _fused(self) -> bool:
        """Whether a decode step runs each layer as one call of ours (`decode_layer`): every
        projection in our int8 blocks, float32 norms, SiLU, no bias but q/k/v's. Decided once."""
        if self.fused is None:
            layers = [fused_weights(layer) for layer in self.body.layers]
            self.fused = [w for w in layers if w is not None]
            if len(self.fused) < len(layers):  # one layer it cannot run: none of them
                self.fused = []
        return bool(self.fused) and native.ready()

    def fresh_pays(self, kept: int, new: int) -> bool:
        """Whether running all `kept + new` positions from scratch costs fewer FLOPs than the
        `new` ones after the `kept`: a first prefill takes the kernel's causal path, which skips
        the masked half of the scores, while one after kept positions computes every one of its
        new x (kept + new) scores. It pays for a long text after a short shared prefix (a
        document after the system prompt: about half the time at 30k tokens), never for a
        chat's next turn."""
        if kept == 0 or new <= kept:
            return False
        pair = 4 * len(self.body.layers) * self.q_heads * self.head_dim  # q.k and p.v per pair
        masked = new * (kept + new) * pair
        fresh = (kept + new) ** 2 / 2 * pair + kept * 2 * self.weights  # + kept's products
        return fresh < masked

    def crop(self, length: int) -> None:
        """Forget every position from `length` on (their slots are overwritten later)."""
        self.length = min(self.length, length)

    @torch.inference_mode()
    def forward(self, ids: list[int]) -> torch.Tensor:
        """The logits after the last of `ids`, which follow the `length` positions kept."""
        past, n = self.length, len(ids)
        h = self.body.embed_tokens(torch.tensor([ids], device=self.device))
        self._reserve(past + n, h.dtype)
        positions = torch.arange(past, past + n, device=self.device).unsqueeze(0)
        cos, sin = self.body.rotary_emb(h, positions)
        # A first prefill (nothing kept) takes the kernel's own causal path, which skips the
        # masked half of the scores: half the attention time of a long prompt. A prompt that
        # follows kept positions needs the offset mask.
        mask = None if n == 1 or past == 0 else _causal_mask(past, n).to(self.device)
        causal = past == 0 and n > 1
        if n == 1 and self._fused():
            h = h.contiguous()
            c, s = cos.reshape(-1).contiguous(), sin.reshape(-1).contiguous()
            for i, (layer, weights) in enumerate(zip(self.body.layers, self.fused, strict=True)):
                attn = layer.self_attn
                torch.ops.edgeagent.decode_layer(
                    h, *weights, c, s, self.keys[i], self.values[i], past, self.q_heads,
                    attn.scaling, layer.input_layernorm.variance_epsilon,
                )  # fmt: skip
            self.length = past + n
            return self.head(_norm(self.body.norm, h))[0, -1].float().cpu()
        for i, layer in enumerate(self.body.layers):
            x = _norm(layer.input_layernorm, h)
            h = h + self._attention(i, layer.self_attn, x, cos, sin, mask, causal)
            h = h + _mlp(layer.mlp, _norm(layer.post_attention_layernorm, h))
        self.length = past + n
        return self.head(_norm(self.body.norm, h[:, -1:]))[0, -1].float().cpu()

    def _qkv(self, attn: Any, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> tuple:
        b, n, d = x.shape[0], x.shape[1], self.head_dim
        if hasattr(attn, "qkv_proj"):  # one product, one rotation for q and k together
            heads = attn.qkv_proj(x).view(b, n, -1, d).transpose(1, 2)
            qk = _rotate(heads[:, : self.q_heads + self.kv_heads], cos, sin)
            return qk[:, : self.q_heads], qk[:, self.q_heads :], heads[:, -self.kv_heads :]
        q = attn.q_proj(x).view(b, n, -1, d).transpose(1, 2)
        k = attn.k_proj(x).view(b, n, -1, d).transpose(1, 2)
        v = attn.v_proj(x).view(b, n, -1, d).transpose(1, 2)
        return _rotate(q, cos, sin), _rotate(k, cos, sin), v

    def _attention(
        self,
        i: int,
        attn: Any,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        mask: Any,
        causal: bool = False,
    ) -> torch.Tensor:
        n = x.shape[1]
        q, k, v = self._qkv(attn, x, cos, sin)
        end = self.length + n
        self.keys[i][:, :, self.length : end] = k
        self.values[i][:, :, self.length : end] = v
        if n == 1 and native.ready() and q.dtype == torch.float32:
            out = torch.ops.edgeagent.decode_attention(
                q, self.keys[i], self.values[i], end, attn.scaling
            )
            return attn.o_proj(out.view(1, 1, -1))
        out = F.scaled_dot_product_attention(
            q,
            self.keys[i][:, :, :end],
            self.values[i][:, :, :end],
            attn_mask=mask,
            is_causal=causal,
            scale=attn.scaling,
            enable_gqa=True,
        )
        return attn.o_proj(out.transpose(1, 2).reshape(1, n, -1))

    def _reserve(self, needed: int, dtype: torch.dtype) -> None:
        # Every reader here stops at the length kept, so the buffer's tail need not be zeroed:
        # pages never written are never made resident (up to half the buffer after a doubling).
        reserve(self, 1, needed, dtype, zeroed=False)


def reserve(owner: Any, rows: int, needed: int, dtype: torch.dtype, zeroed: bool = True) -> None:
    """Room for `needed` positions in `owner.keys` and `owner.values` (a buffer per layer, `rows`
    sequences each); grows by doubling, so a token costs no copy. The owner is a `Decoder`, or
    anything with its `body`, `kv_heads`, `head_dim` and `device` (`model.batch.Slots`).
    `zeroed`: the unused tail holds zeros, for readers that mask it rather than stop before it
    (a masked score times a garbage NaN value is still NaN)."""
    have = owner.keys[0].shape[2] if owner.keys else 0
    if needed <= have:
        return
    shape = (rows, owner.kv_heads, max(needed, 2 * have, 256), owner.head_dim)
    for store in (owner.keys, owner.values):
        for i in range(len(owner.body.layers)):
            grown = (torch.zeros if zeroed else torch.empty)(
                shape, dtype=dtype, device=owner.device
            )
            if store[i:]:
                grown[:, :, :have] = store[i]
                store[i] = grown
            else:
                store.append(grown)


def fused_weights(layer: Any) -> tuple | None:
    """A layer's weights in the order `decode_layer` takes them, or None where it cannot run
    the layer (float or torch-kernel projections, another activation, biases it lacks)."""
    attn, mlp = layer.self_attn, layer.mlp
    projections = [getattr(attn, "qkv_proj", None), getattr(attn, "o_proj", None),
                   getattr(mlp, "gate_up_proj", None), getattr(mlp, "down_proj", None)]  # fmt: skip
    norms = (layer.input_layernorm.weight, layer.post_attention_layernorm.weight)
    if not all(getattr(p, "blocked", False) and p.padded == p.out_features for p in projections):
        return None
    if any(p.bias is not None for p in projections[1:]) or not _is_silu(mlp.act_fn):
        return None
    if any(w.dtype != torch.float32 for w in norms):
        return None
    qkv, o, gate_up, down = projections
    bias = qkv.bias.float().contiguous() if qkv.bias is not None else None
    return (norms[0], qkv.qweight, qkv.scales, bias, o.qweight, o.scales, norms[1],
            gate_up.qweight, gate_up.scales, down.qweight, down.scales)  # fmt: skip


def _norm(norm: Any, x: torch.Tensor) -> torch.Tensor:
    """Llama/Qwen2 RMSNorm as one fused op in float32 (transformers spells it as eight)."""
    if x.dtype != torch.float32:
        return norm(x)
    if _one_position(x) and norm.weight.dtype == torch.float32:
        return torch.ops.edgeagent.rms_norm(x.contiguous(), norm.weight, norm.variance_epsilon)
    return F.rms_norm(x, (x.shape[-1],), norm.weight, norm.variance_epsilon)


def _mlp(mlp: Any, x: torch.Tensor) -> torch.Tensor:
    if not hasattr(mlp, "gate_up_proj"):
        return mlp(x)
    gate_up = mlp.gate_up_proj(x)
    if _one_position(gate_up) and _is_silu(mlp.act_fn):
        return mlp.down_proj(torch.ops.edgeagent.silu_mul(gate_up.contiguous()))
    gate, up = gate_up.chunk(2, dim=-1)
    return mlp.down_proj(mlp.act_fn(gate) * up)


def _is_silu(act: Any) -> bool:
    # transformers' own class where it built the model, torch's in `model.lean`
    return type(act).__name__ in ("SiLU", "SiLUActivation")


def _one_position(x: torch.Tensor) -> bool:
    """Whether our small ops take `x` ([sequences, positions, d]): a decode step's float32
    rows, where torch's several calls per op cost more than the op (a prompt's many rows
    amortize them, and keep transformers' numbers exactly)."""
    return native.ready() and x.dim() == 3 and x.shape[1] == 1 and x.dtype == torch.float32


def _causal_mask(past: int, n: int) -> torch.Tensor:
    """True where query row r (position past + r) may look: every key up to its own."""
    keys = torch.arange(past + n)
    return keys[None, :] <= (past + torch.arange(n))[:, None]


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos.unsqueeze(1) + rotated * sin.unsqueeze(1)
