"""Weight-only int8 and int4 quantization of a model's linear layers, for decode speed on CPU.

Decoding one token reads every weight once and does little arithmetic with it, so on a CPU it
is bound by memory bandwidth: fewer bytes per weight is more tokens per second. `quantize`
swaps each `nn.Linear` (the vocabulary projection included) for a module holding
- int8: one signed byte per weight and one scale per output row, multiplied by our kernel
  (`model.native`: blocks of 16 x 16 that each thread reads as one stream, float32 in and
  out; 2x torch's on the default model's decode step) where it could be built, else by
  torch's `_weight_int8pack_mm` (rows as they are, bfloat16 in and out);
- int4: four bits per weight, asymmetric, one scale and minimum per group of 32 inputs,
  multiplied by our kernel in blocks of 16 outputs with float16 scales and minimums: GGUF's
  Q4_1, so a 4-bit GGUF's layers (SmolLM2's) come back exactly, and int4 is its CPU default
  (`model.embedded`); without our kernel, torch's `_weight_int4pack_mm_for_cpu` and its
  layout (bfloat16 scales and offsets). The vocabulary projection stays int8. On Qwen's
  mostly 5-bit GGUF (Q5_0) int4 rounds off one bit.
The token table becomes int8 rows either way (`Int8Embedding`: a quarter of the memory; for
Qwen2.5-0.5B 545 MB less), or, tied to the head, the head's own rows (`HeadRows`). Activations
stay float: these are not int8 matmuls, only smaller weight reads. A long prompt (many rows at
once) is compute-bound instead: both kinds then turn the weight back into floats for one matmul
(bfloat16 where the CPU has it natively, float32 elsewhere), written into one reused buffer per
thread, since fresh gigabytes each forward cost more in page faults than the matmul itself (on
2 AVX2 cores a 241-token prompt took 3.8 s as int8 against 1.3 s in float32 before the buffer,
TTFT below).

`model.quant_saved` keeps a quantized model in one safetensors file, so that later starts read
a quarter of the bytes and round nothing. Not here: GPU kernels (on a GPU use bfloat16),
activation or KV-cache quantization, and training: LoRA needs float base weights, so
`model.loader` merges an adapter before quantizing and the trainer never quantizes.
"""

from __future__ import annotations

import functools
import os
import threading
from typing import Any

import torch
from torch import nn

from model import fast, native
from model.loaded import Quant

GROUP = 32
# Rows at or above these go through a float matmul: the packed kernels are matrix-vector
# products at heart, linear in the rows, while turning a weight back into floats costs a fixed
# pass over it. On 2 AVX2 cores (fused gate/up, 896 x 9728) the kernel took 0.22 ms a row, the
# float copy and matmul 9.5 ms (int8) or 15 ms (int4) plus the matmul: even at about 80 and 120
# rows. Batched decoding (a row per sequence) stays in the kernels.
GEMM_ROWS = {"int8": 64, "int4": 128}
BLOCK = 16  # outputs and inputs per block of our int8 kernel (model/native.cpp)
_scratch = threading.local()


class Int8Linear(nn.Module):
    # torch's packed kernel returns bfloat16: logits of 25 come out in steps of 0.125, which ties
    # near-equal candidates and flipped SmolLM2's first word. As the vocabulary projection,
    # the layer recomputes its `refine` best outputs in float32 (a few rows of the weight).
    refine = 0
    head = False  # the vocabulary projection

    def __init__(self, in_features: int, out_features: int, bias: bool, dtype: torch.dtype) -> None:
        """Empty buffers, in the current default device (meta, when loading a saved model)."""
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        # Our kernel where it is loaded and the inputs are whole blocks: its layout, outputs
        # padded with zero rows to whole blocks, float32 scales; else torch's, [out, in] and
        # bfloat16 scales. Decided here, so a model built empty for a saved file expects what
        # `of` saved (the file's name keys the kernel).
        self.blocked = native.ready() and in_features % BLOCK == 0
        self.padded = -(-out_features // BLOCK) * BLOCK if self.blocked else out_features
        shape = (out_features, in_features)
        if self.blocked:
            shape = (self.padded // BLOCK, in_features // BLOCK, BLOCK, BLOCK)
        self.register_buffer("qweight", torch.empty(shape, dtype=torch.int8))
        scale_dtype = torch.float32 if self.blocked else torch.bfloat16
        self.register_buffer("scales", torch.empty(self.padded, dtype=scale_dtype))
        self.bias = nn.Parameter(torch.empty(out_features, dtype=dtype), False) if bias else None

    @classmethod
    def of(cls, linear: nn.Linear) -> Int8Linear:
        w = linear.weight.detach().float()
        layer = cls(w.shape[1], w.shape[0], linear.bias is not None, linear.weight.dtype)
        # torch's kernel takes bfloat16 scales: round with the scale it will really use. Ours
        # takes the same values in float32, so both kernels hold the same weights.
        scales = (w.abs().amax(dim=1) / 127).clamp(min=1e-10).to(torch.bfloat16)
        q = torch.round(w / scales.float()[:, None]).clamp(-127, 127).to(torch.int8)
        if layer.blocked:
            pad = layer.padded - layer.out_features
            layer.qweight = to_blocks(nn.functional.pad(q, (0, 0, 0, pad)))
            layer.scales = nn.functional.pad(scales.float(), (0, pad))
        else:
            layer.qweight, layer.scales = q, scales
        if linear.bias is not None:
            layer.bias = nn.Parameter(linear.bias.detach(), requires_grad=False)
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)
        # The vocabulary head keeps the kernel: its float copy would be half a gigabyte.
        if rows.shape[0] >= GEMM_ROWS["int8"] and not self.head:
            dtype = gemm_dtype(rows.dtype)
            weight = scratch((self.padded, self.in_features), dtype)
            if self.blocked:  # the blocks back into rows, in the same pass
                blocks = self.qweight.permute(0, 2, 1, 3)  # [out/16, 16, in/16, 16]
                weight.view(blocks.shape).copy_(blocks)
            else:
                weight.copy_(self.qweight)
            weight.mul_(self.scales.to(dtype)[:, None])
            y = nn.functional.linear(rows.to(dtype), weight[: self.out_features]).to(rows.dtype)
        elif self.blocked:  # float32 in and out: no bfloat16 logits, nothing to refine
            floats = rows.float().contiguous()
            y = torch.ops.edgeagent.int8_linear(floats, self.qweight, self.scales)
            y = y[:, : self.out_features].to(rows.dtype)
        else:
            y = _int8_mm(rows, self.qweight, self.scales)
            if self.refine:
                y = self._refined(rows, y)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], self.out_features)

    def _refined(self, rows: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # Only for torch's kernel: ours returns float32.
        top = y.topk(min(self.refine, self.out_features), dim=-1).indices  # (rows, refine)
        weight = self.qweight[top].float() * self.scales[top].float()[..., None]
        exact = torch.einsum("rk,rnk->rn", rows.float(), weight)
        return y.scatter(-1, top, exact.to(y.dtype))


class Int4Linear(nn.Module):
    """Four bits a weight in groups of 32 inputs. With our kernel (`blocked`): `qweight` [out/16,
    in/32, 16, 16] bytes, output i's 32 values of a group in 16 bytes (input j low, 16 + j
    high), and `scales` [out/16, in/32, 2, 16] float16, each group's d then m: w = q * d + m
    (GGUF's Q4_1, so a 4-bit GGUF's own blocks come back exactly). Else torch's packed kernel
    and its layout (`scales_zeros`, bfloat16)."""

    blocked = False
    padded = 0

    def __init__(self, in_features: int, out_features: int, bias: bool, dtype: torch.dtype) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        if native.ready() and out_features % BLOCK == 0:  # `quantizable` saw whole groups
            self.blocked, self.padded = True, out_features
            shape = (out_features // BLOCK, in_features // GROUP, BLOCK, GROUP // 2)
            self.register_buffer("qweight", torch.empty(shape, dtype=torch.uint8))
            shape = (out_features // BLOCK, in_features // GROUP, 2, BLOCK)
            self.register_buffer("scales", torch.empty(shape, dtype=torch.float16))
        else:
            packed = torch.empty(out_features, in_features // 2, dtype=torch.uint8)
            self.register_buffer("qweight", packed)
            shape = (in_features // GROUP, out_features, 2)
            self.register_buffer("scales_zeros", torch.empty(shape, dtype=torch.bfloat16))
        self.bias = nn.Parameter(torch.empty(out_features, dtype=dtype), False) if bias else None

    @classmethod
    def of(cls, linear: nn.Linear) -> Int4Linear:
        w = linear.weight.detach().float()
        n, k = w.shape
        layer = cls(k, n, linear.bias is not None, linear.weight.dtype)
        if layer.blocked:
            layer.qweight, layer.scales = to_blocks4(w)
            if linear.bias is not None:
                layer.bias = nn.Parameter(linear.bias.detach(), requires_grad=False)
            return layer
        groups = w.reshape(n, k // GROUP, GROUP)
        low, high = groups.amin(-1), groups.amax(-1)
        # The kernel computes (q - 8) * scale + zero with both in bfloat16, whose 8-bit mantissa
        # moves a zero by up to a scale step: round with the scale and zero it will really use.
        scale = ((high - low) / 15).clamp(min=1e-10).to(torch.bfloat16)
        zero = (low + 8 * scale.float()).to(torch.bfloat16)
        steps = (groups - zero.float()[..., None]) / scale.float()[..., None]
        q = torch.round(steps + 8).clamp(0, 15).to(torch.int32).reshape(n, k)
        layer.qweight = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 1)
        layer.scales_zeros = torch.stack([scale, zero], -1).transpose(0, 1).contiguous()
        if linear.bias is not None:
            layer.bias = nn.Parameter(linear.bias.detach(), requires_grad=False)
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)
        if self.blocked:
            if rows.shape[0] >= GEMM_ROWS["int4"]:
                dtype = gemm_dtype(rows.dtype)
                y = nn.functional.linear(rows.to(dtype), self.unblocked(dtype)).to(x.dtype)
            else:
                floats = rows.float().contiguous()
                y = torch.ops.edgeagent.int4_linear(floats, self.qweight, self.scales).to(x.dtype)
        elif rows.shape[0] >= GEMM_ROWS["int4"] and int4_layout() is not None:
            dtype = gemm_dtype(rows.dtype)
            y = torch.mm(rows.to(dtype), self.transposed(dtype)).to(x.dtype)
        else:
            y = torch.ops.aten._weight_int4pack_mm_for_cpu(
                rows.to(torch.bfloat16), self.qweight, GROUP, self.scales_zeros
            ).to(x.dtype)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], self.out_features)

    def unblocked(self, dtype: torch.dtype) -> torch.Tensor:
        """Our blocks as floats, [out, in], in the thread's scratch buffer."""
        n, k = self.out_features, self.in_features
        weight = scratch((n, k), dtype)
        grouped = weight.view(n // BLOCK, BLOCK, k // GROUP, GROUP).permute(0, 2, 1, 3)
        nibbles = scratch(self.qweight.shape, torch.uint8, slot=1)
        half = GROUP // 2
        torch.bitwise_and(self.qweight, 15, out=nibbles)
        grouped[..., :half].copy_(nibbles)
        torch.bitwise_right_shift(self.qweight, 4, out=nibbles)
        grouped[..., half:].copy_(nibbles)
        d, m = self.scales.to(dtype).unbind(2)  # each [out/16, in/32, 16]
        grouped.mul_(d[..., None]).add_(m[..., None])
        return weight

    def transposed(self, dtype: torch.dtype) -> torch.Tensor:
        """The weight as floats, [in, out], in the thread's scratch buffer, unpacked from
        torch's CPU pack as `int4_layout` found it on this CPU."""
        layout = int4_layout()
        assert layout is not None, "no known int4 layout on this CPU: the kernel path only"
        block, split = layout
        k, n = self.in_features, self.out_features
        weight = scratch((k, n), dtype)
        full = n // block * block
        packed = self.qweight.view(-1)
        if full:
            nibbles = scratch((full // block, k, block), torch.uint8, slot=1)
            rows = packed[: full * k // 2].view(full // block, k, block // 2)
            _split_nibbles(rows, nibbles, split)
            weight[:, :full].unflatten(1, (full // block, block)).copy_(nibbles.permute(1, 0, 2))
        if full < n:  # a last, partial block: always pairs of neighbours
            tail = scratch((k, n - full), torch.uint8, slot=2)
            _split_nibbles(packed[full * k // 2 :].view(k, (n - full) // 2), tail, split=False)
            weight[:, full:].copy_(tail)
        # q * scale + (zero - 8 * scale), per group of 32 inputs and per output
        scale, zero = self.scales_zeros.to(dtype).unbind(-1)  # each [in / 32, out]
        grouped = weight.view(k // GROUP, GROUP, n)
        grouped.mul_(scale[:, None]).add_((zero - 8 * scale)[:, None])
        return weight


def _split_nibbles(packed: torch.Tensor, out: torch.Tensor, split: bool) -> None:
    """Each byte's two values into `out` (last dimension twice the bytes): low nibbles first
    and high ones after them (`split`), or each byte's two side by side."""
    half = packed.shape[-1]
    low, high = (out[..., :half], out[..., half:]) if split else (out[..., 0::2], out[..., 1::2])
    torch.bitwise_and(packed, 15, out=low)
    torch.bitwise_right_shift(packed, 4, out=high)


@functools.cache
def int4_layout() -> tuple[int, bool] | None:
    """How torch's CPU packer lays out int4 weights here, which depends on the kernel it
    dispatches to: blocks of 64 outputs on AVX-512, 32 on AVX2 and without vectors; each block
    is [in, block / 2] bytes, a full block's low nibbles holding its first half of outputs and
    the high ones the second (`split`), a partial block's and the plain kernel's each byte two
    neighbours. Found by packing a probe and comparing with each candidate, so an unknown
    layout (another torch, another CPU) is None and prompts stay in the kernel, not wrong."""
    probe = torch.randint(0, 16, (80, GROUP), generator=torch.Generator().manual_seed(0))
    probe = probe.to(torch.int32)
    packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(probe, 1).view(-1)
    for block, split in ((64, True), (32, True), (32, False)):
        if torch.equal(_pack_like(probe, block, split), packed):
            return block, split
    return None


def _pack_like(q: torch.Tensor, block: int, split: bool) -> torch.Tensor:
    """`q` [out, in] of 4-bit values packed as the candidate layout would, bytes in order."""
    parts = []
    for start in range(0, q.shape[0], block):
        part = q[start : start + block].t().to(torch.uint8)  # [in, size]
        whole = split and part.shape[1] == block
        half = part.shape[1] // 2
        low, high = (part[:, :half], part[:, half:]) if whole else (part[:, 0::2], part[:, 1::2])
        parts.append((low | (high << 4)).reshape(-1))
    return torch.cat(parts)


class Int8Embedding(nn.Module):
    """The token table as int8 rows with a float32 scale each: a quarter of the memory. Only
    the looked-up rows are turned back into floats (the table is read one row per token)."""

    def __init__(self, num: int, dim: int, dtype: torch.dtype) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim, self.dtype = num, dim, dtype
        self.register_buffer("qweight", torch.empty(num, dim, dtype=torch.int8))
        self.register_buffer("scales", torch.empty(num, dtype=torch.float32))

    @classmethod
    def of(cls, embedding: nn.Embedding) -> Int8Embedding:
        w = embedding.weight.detach().float()
        layer = cls(w.shape[0], w.shape[1], embedding.weight.dtype)
        layer.scales = (w.abs().amax(dim=1) / 127).clamp(min=1e-10)
        layer.qweight = torch.round(w / layer.scales[:, None]).clamp(-127, 127).to(torch.int8)
        return layer

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return (self.qweight[ids].float() * self.scales[ids][..., None]).to(self.dtype)


class HeadRows(nn.Module):
    """A tied token table as the int8 head's own rows: one copy, which the head reads whole at
    every token anyway. A table of its own was a second copy in the saved file (SmolLM2: 28
    MB) and, mapped, cost resident memory out of proportion to its use: each row looked up
    faults in the 64 KB around it (about 20 MB over a 300-token exchange)."""

    def __init__(self, head: Int8Linear, dtype: torch.dtype) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim, self.dtype = (
            head.out_features,
            head.in_features,
            dtype,
        )
        self._head = (head,)  # not a submodule: its tensors are saved once, under the head's name

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        head = self._head[0]
        if head.blocked:  # [out/16, in/16, 16, 16]: a row is a slice of every block column
            rows = head.qweight[ids // BLOCK, :, ids % BLOCK].flatten(-2)
        else:
            rows = head.qweight[ids]
        return (rows.float() * head.scales[ids].float()[..., None]).to(self.dtype)


# oneDNN's own cap on the instructions it uses (ONEDNN_MAX_CPU_ISA): at these it emulates
# bfloat16 products whatever the CPU has.
NO_BF16_ISAS = frozenset(
    {"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI"}
)


@functools.cache
def native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX). There a prompt's
    matmul in bfloat16 was 4.6x faster than in float32 (TTFT 0.48 s vs 2.24 s, Qwen 0.5B);
    without it bfloat16 matmuls are emulated and 3-5x slower, so float32 stays. oneDNN capped
    below bfloat16 (ONEDNN_MAX_CPU_ISA=AVX2, say) emulates them too (6.2 s against 0.43 s for
    Qwen's prompt on the Xeon), so it counts as not having them."""
    if os.environ.get("ONEDNN_MAX_CPU_ISA", "ALL").upper() in NO_BF16_ISAS:
        return False
    cpu = torch.cpu
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(cpu, name, lambda: False)() for name in checks)


def gemm_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.bfloat16 if native_bf16() else dtype


def scratch(shape: tuple[int, ...] | torch.Size, dtype: torch.dtype, slot: int = 0) -> torch.Tensor:
    """A buffer of `shape` reused by every layer on this thread (the largest asked so far):
    layers run one after another, and threads (the app's worker, the server's) get their own."""
    need = 1
    for size in shape:
        need *= size
    key = (slot, dtype)
    buffers: dict[tuple[int, torch.dtype], torch.Tensor] = _scratch.__dict__.setdefault("b", {})
    buffer = buffers.get(key)
    if buffer is None or buffer.numel() < need:
        # Made outside inference mode: a buffer made in it (a decode step's) could not be
        # written outside it later (a forward with gradients off but not in inference mode).
        with torch.inference_mode(False):
            buffer = buffers[key] = torch.empty(need, dtype=dtype)
    return buffer[:need].view(shape)


def to_blocks(q: torch.Tensor) -> torch.Tensor:
    """[out, in] int8 rows into our kernel's [out/16, in/16, 16, 16] blocks."""
    out, inputs = q.shape
    return q.view(out // BLOCK, BLOCK, inputs // BLOCK, BLOCK).transpose(1, 2).contiguous()


def to_blocks4(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """float [out, in] into our int4 kernel's blocks and float16 d and m (`Int4Linear`): per
    group of 32 inputs m is the least value and d a fifteenth of the span, both rounded to
    float16 before the values are, so the values round with what the kernel will use."""
    n, k = w.shape
    groups = w.reshape(n, k // GROUP, GROUP)
    m = groups.amin(-1).to(torch.float16)
    d = ((groups.amax(-1) - m.float()) / 15).to(torch.float16)
    step = torch.where(d > 0, d.float(), torch.ones_like(d, dtype=torch.float32))
    q = torch.round((groups - m.float()[..., None]) / step[..., None]).clamp(0, 15)
    q = q.to(torch.uint8)
    packed = q[..., : GROUP // 2] | (q[..., GROUP // 2 :] << 4)  # [out, in/32, 16]
    blocks = packed.view(n // BLOCK, BLOCK, k // GROUP, GROUP // 2).transpose(1, 2)
    dm = torch.stack([d, m], -1).view(n // BLOCK, BLOCK, k // GROUP, 2)  # [.., out, group, 2]
    return blocks.contiguous(), dm.permute(0, 2, 3, 1).contiguous()


def _int8_mm(rows: torch.Tensor, q: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    # The kernel is vectorized for bfloat16 inputs; with float32 ones it is 10x slower.
    y = torch.ops.aten._weight_int8pack_mm(rows.to(torch.bfloat16).contiguous(), q, scales)
    return y.to(rows.dtype)


KINDS: dict[str, type[Int8Linear] | type[Int4Linear]] = {"int8": Int8Linear, "int4": Int4Linear}


def quantizable(linear: nn.Linear, quant: Quant) -> bool:
    # The int4 kernel wants whole groups of inputs and outputs in multiples of 16.
    return quant == "int8" or (linear.in_features % GROUP == 0 and linear.out_features % 16 == 0)


def quantize(model: Any, quant: Quant, empty: bool = False, tied: bool | None = None) -> Any:
    """Swaps the model's linear layers in place (those int4 cannot group stay float). `empty`
    builds the layers without rounding anything, for a saved state dict to fill (`load_saved`).
    `tied`: whether the token table is the head's weight (None: whether it is the same tensor);
    a tied table becomes the int8 head's rows (`HeadRows`)."""
    if quant == "none":
        return model
    if not empty and next(model.parameters()).device.type != "cpu":
        raise ValueError(f"{quant} weights are for the CPU; on a GPU use --dtype bfloat16")
    fast.fuse(model)  # fused projections are quantized once, read once per token
    table, head = model.get_input_embeddings(), model.get_output_embeddings()
    if tied is None:
        weight = getattr(head, "weight", None)
        tied = weight is not None and weight is getattr(table, "weight", None)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            # The vocabulary projection's error lands on every logit, and GGUFs keep it at 6-8
            # bits: int4 there cost SmolLM2 15% of its next-token choices, int8 none of them.
            kind = "int8" if child is head else quant
            if isinstance(child, nn.Linear) and quantizable(child, kind):
                cls = KINDS[kind]
                layer = (
                    cls(
                        child.in_features,
                        child.out_features,
                        child.bias is not None,
                        child.weight.dtype,
                    )  # fmt: skip
                    if empty
                    else cls.of(child)
                )
                if child is head:
                    layer.head = True
                    layer.refine = 0 if getattr(layer, "blocked", False) else 64
                setattr(parent, name, layer)
    if type(table) is nn.Embedding:  # not Gemma's scaled table, whose forward does more
        dtype, quantized_head = table.weight.dtype, model.get_output_embeddings()
        if tied and isinstance(quantized_head, Int8Linear):
            model.set_input_embeddings(HeadRows(quantized_head, dtype))
        else:
            shape = (table.num_embeddings, table.embedding_dim, dtype)
            model.set_input_embeddings(Int8Embedding(*shape) if empty else Int8Embedding.of(table))
    return model
