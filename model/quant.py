"""Weight-only int8 and int4 quantization of a model's linear layers, for decode speed on CPU.

Decoding one token reads every weight once and does little arithmetic with it, so on a CPU it
is bound by memory bandwidth: fewer bytes per weight is more tokens per second. `quantize`
swaps each `nn.Linear` (the vocabulary projection included) for a module holding
- int8: one signed byte per weight and one scale per output row, multiplied by torch's
  `_weight_int8pack_mm` CPU kernel;
- int4: four bits per weight, asymmetric, one scale and offset per group of 32 inputs, in the
  layout of torch's `_weight_int4pack_mm_for_cpu` kernel; the vocabulary projection stays
  int8. GGUF blocks are also 32 inputs with a scale and a minimum, so on a 4-bit GGUF (SmolLM2's
  Q4_1) int4 loses next to nothing more, less than per-row int8 does; on Qwen's 5-bit one
  (Q5_0) it rounds off one bit.
Activations stay float: these are not int8 matmuls, only smaller weight reads. A long prompt
(many rows at once) is compute-bound instead; int8 then dequantizes its weight for one float
matmul, int4 stays in the kernel.

Not here: GPU kernels (on a GPU use bfloat16), activation or KV-cache
quantization, and training: LoRA needs float base weights, so `model.loader` merges an adapter
before quantizing and the trainer never quantizes.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from model import fast

Quant = Literal["none", "int8", "int4"]
GROUP = 32
# Rows at or above this go through a float matmul (int8) : the packed kernel is a matrix-vector
# product at heart, and a prompt's many rows are better served by a GEMM.
GEMM_ROWS = 16


class Int8Linear(nn.Module):
    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        w = weight.detach().float()
        # The kernel takes bfloat16 scales: round with the scale it will really use.
        scales = (w.abs().amax(dim=1) / 127).clamp(min=1e-10).to(torch.bfloat16)
        q = torch.round(w / scales.float()[:, None]).clamp(-127, 127).to(torch.int8)
        self.register_buffer("qweight", q)
        self.register_buffer("scales", scales)
        self.bias = None if bias is None else nn.Parameter(bias.detach(), requires_grad=False)
        self.in_features, self.out_features = w.shape[1], w.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)
        if rows.shape[0] >= GEMM_ROWS:
            weight = self.qweight.to(rows.dtype) * self.scales.to(rows.dtype)[:, None]
            y = nn.functional.linear(rows, weight)
        else:
            y = _int8_mm(rows, self.qweight, self.scales)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], self.out_features)


class Int4Linear(nn.Module):
    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        w = weight.detach().float()
        n, k = w.shape
        groups = w.reshape(n, k // GROUP, GROUP)
        low, high = groups.amin(-1), groups.amax(-1)
        # The kernel computes (q - 8) * scale + zero with both in bfloat16, whose 8-bit mantissa
        # moves a zero by up to a scale step: round with the scale and zero it will really use.
        scale = ((high - low) / 15).clamp(min=1e-10).to(torch.bfloat16)
        zero = (low + 8 * scale.float()).to(torch.bfloat16)
        steps = (groups - zero.float()[..., None]) / scale.float()[..., None]
        q = torch.round(steps + 8).clamp(0, 15).to(torch.int32).reshape(n, k)
        packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 1)
        self.register_buffer("qweight", packed)
        scales_zeros = torch.stack([scale, zero], -1).transpose(0, 1).contiguous()
        self.register_buffer("scales_zeros", scales_zeros)
        self.bias = None if bias is None else nn.Parameter(bias.detach(), requires_grad=False)
        self.in_features, self.out_features = k, n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)
        y = torch.ops.aten._weight_int4pack_mm_for_cpu(
            rows.to(torch.bfloat16), self.qweight, GROUP, self.scales_zeros
        ).to(x.dtype)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], self.out_features)


def _int8_mm(rows: torch.Tensor, q: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    # The kernel is vectorized for bfloat16 inputs; with float32 ones it is 10x slower.
    y = torch.ops.aten._weight_int8pack_mm(rows.to(torch.bfloat16).contiguous(), q, scales)
    return y.to(rows.dtype)


KINDS: dict[str, type[nn.Module]] = {"int8": Int8Linear, "int4": Int4Linear}


def quantizable(linear: nn.Linear, quant: Quant) -> bool:
    # The int4 kernel wants whole groups of inputs and outputs in multiples of 16.
    return quant == "int8" or (linear.in_features % GROUP == 0 and linear.out_features % 16 == 0)


def quantize(model: Any, quant: Quant) -> Any:
    """Swaps the model's linear layers in place (those int4 cannot group stay float)."""
    if quant == "none":
        return model
    if next(model.parameters()).device.type != "cpu":
        raise ValueError(f"{quant} weights are for the CPU; on a GPU use --dtype bfloat16")
    fast.fuse(model)  # fused projections are quantized once, read once per token
    head = model.get_output_embeddings()
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            # The vocabulary projection's error lands on every logit, and GGUFs keep it at 6-8
            # bits: int4 there cost SmolLM2 15% of its next-token choices, int8 none of them.
            kind = "int8" if child is head else quant
            if isinstance(child, nn.Linear) and quantizable(child, kind):
                setattr(parent, name, KINDS[kind](child.weight, child.bias))
    return model
