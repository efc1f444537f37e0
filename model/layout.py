"""The memory order of float32 projection weights, chosen by timing both orders on this CPU.

A decode step multiplies one row by every weight matrix, so it is bound by how fast the BLAS
library streams each matrix. torch keeps a Linear's weight as [out, in] and computes x @ W.T;
libraries do not stream both orders alike. On a 2-core AMD EPYC (AVX2, torch's MKL) the
151,936-row vocabulary head took 35 ms a token as [out, in] and 23 ms stored [in, out], and the
MLP's gate and up projections gained as much, so the default model decoded at 9.5 instead of
7.7 tokens/s with the same float32 weights. Another CPU or library may prefer the other order,
so nothing is assumed: `relayout(model)` times a sample of each projection kind (more bytes
than a cache holds) in both orders and moves the kind only where [in, out] is at least `GAIN`
faster.

A moved weight stays a [out, in] tensor to every reader (a transposed view of [in, out]
storage), so transformers' forward, the lean forward, merging and saving see the same values;
only the kernel's summation order changes, as any kernel change does (logits differ in the
last bits). Not here: quantized layers (their kernels fix their own layout), other dtypes,
GPUs, and small projections (attention's, under `MIN_BYTES`), which fit in cache and gain
nothing measurable.
"""

from __future__ import annotations

import ctypes
import mmap
import sys
import time
from typing import Any

import torch
from torch import nn

GAIN = 1.05  # a kind moves only when [in, out] streams at least this much faster
MIN_BYTES = 8 << 20  # a projection smaller than this (per layer) is left alone
SAMPLE_BYTES = 64 << 20  # what is timed per kind: more than a cache holds, a fraction of a load
ROUNDS = 3  # timed passes per order, interleaved, after a warm one; the best of each is kept


def relayout(model: Any) -> list[str]:
    """Move each float32 projection kind that streams faster as [in, out]; returns the kinds
    moved (e.g. ["lm_head", "mlp.up_proj"]). Each kind is decided on a sample of its weights,
    so a CPU where nothing pays costs ~0.1 s; moving the default model's head and two MLP
    projections copies 1.5 GB, ~1.5 s on 2 cores, paid back after ~60 decoded tokens there."""
    holders = _holders(model)
    moved = []
    for kind, linears in kinds(model).items():
        if _pays(_sample([linear.weight.detach() for linear in linears])):
            for linear in linears:
                _set(linear, linear.weight.detach().t().contiguous().t(), holders)
            moved.append(kind)
    return moved


def kinds(model: Any) -> dict[str, list[nn.Linear]]:
    """float32 CPU Linear layers by their name without the layer index ("mlp.up_proj"), the
    large ones only."""
    out: dict[str, list[nn.Linear]] = {}
    for name, module in model.named_modules():
        if type(module) is not nn.Linear or not _eligible(module.weight):
            continue
        kind = ".".join(p for p in name.split(".")[-2:] if not p.isdigit())
        out.setdefault(kind, []).append(module)
    return {k: v for k, v in out.items() if v[0].weight.nbytes >= MIN_BYTES}


def is_moved(linear: nn.Linear) -> bool:
    return linear.weight.stride() == (1, linear.weight.shape[0])


def _eligible(weight: torch.Tensor) -> bool:
    return weight.dtype == torch.float32 and weight.device.type == "cpu" and weight.dim() == 2


def _sample(weights: list[torch.Tensor]) -> list[torch.Tensor]:
    """About SAMPLE_BYTES of a kind: its first layers whole, or a big matrix's first rows."""
    out, size = [], 0
    for w in weights:
        if w.nbytes > SAMPLE_BYTES:
            w = w[: SAMPLE_BYTES // w[0].nbytes]
        out.append(w)
        size += w.nbytes
        if size >= SAMPLE_BYTES:
            break
    return out


def _pays(weights: list[torch.Tensor]) -> bool:
    moved = [w.t().contiguous().t() for w in weights]
    x = torch.randn(1, weights[0].shape[1])
    now, then = float("inf"), float("inf")
    for r in range(ROUNDS + 1):  # interleaved, so a busy neighbour slows both alike
        a, b = _time(x, weights), _time(x, moved)
        if r:  # the first pass only warms the kernels
            now, then = min(now, a), min(then, b)
    return then * GAIN <= now


@torch.inference_mode()
def _time(x: torch.Tensor, weights: list[torch.Tensor]) -> float:
    start = time.perf_counter()
    for w in weights:
        torch.nn.functional.linear(x, w)
    return time.perf_counter() - start


Holders = dict[int, list[nn.Module]]


def _holders(model: Any) -> Holders:
    """Every module holding each weight: a tied head shares its weight with the token table,
    and a moved head must stay tied (else the table keeps a second copy, 0.5 GB for Qwen)."""
    out: Holders = {}
    for module in model.modules():
        weight = module._parameters.get("weight")
        if weight is not None:
            out.setdefault(id(weight), []).append(module)
    return out


def _set(linear: nn.Linear, weight: torch.Tensor, holders: Holders) -> None:
    old = linear.weight
    new = nn.Parameter(weight, requires_grad=old.requires_grad)
    modules = holders.pop(id(old), [linear])
    for module in modules:
        module.weight = new
    holders[id(new)] = modules
    _drop_pages(old)


def _drop_pages(weight: torch.Tensor) -> None:
    """Give the old weight's pages back to the OS. Weights are memory-mapped from the model's
    file, and a mapping outlives its tensors: without this, the pages read (or, with a merged
    adapter, written) before the move stay counted, 1.2 GB for the default model. Only whole
    pages of a storage the weight alone uses; nothing reads them after (the caller held the
    last reference). Linux only; elsewhere they stay until the OS reclaims them."""
    storage = weight.untyped_storage()
    if _libc is None or storage.nbytes() != weight.nbytes or not weight.is_contiguous():
        return
    start, page = weight.data_ptr(), mmap.PAGESIZE
    lo, hi = -(-start // page) * page, (start + weight.nbytes) // page * page
    if hi > lo:
        _libc.madvise(ctypes.c_void_p(lo), ctypes.c_size_t(hi - lo), MADV_DONTNEED)


def _load_libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


MADV_DONTNEED = 4
_libc = _load_libc()
