"""Data-parallel training over several processes: which process this is, its share of a batch,
and the gradients summed over all of them.

`torchrun --nproc_per_node N` and `accelerate launch --num_processes N` both start N copies of
the same command with RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT set. `init()`
joins them into one process group: NCCL when there are GPUs (process r on GPU LOCAL_RANK), gloo
on CPU. In a single process every function here does nothing or the obvious thing, so the
trainers call them unconditionally and the same command runs on one process or many.

Each process holds the whole model: a LoRA adapter is small, and models up to 1.5B fit one GPU,
so there is no sharding of weights (that would be FSDP). The trainers hand every process the
same global batch; each computes the loss of its slice (`shard`), divided by the size of the
whole batch, and `sum_gradients` adds the slices up. The optimizer then steps on the same
gradient everywhere, which is the gradient one process would get from the whole batch, so N
processes take the same steps as one (up to the order of float additions).

Not here: the losses (`model.train.sft`, `model.train.dpo`, `model.train.grpo`) and the loop
(`model.train.loop`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")
# Rank 0 runs the evals before and after training while the others wait at the next
# collective; NCCL's default of 10 minutes would kill a long eval.
TIMEOUT = timedelta(hours=6)


def launched() -> bool:
    """Started by torchrun or accelerate with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init() -> None:
    """Join the process group the launcher set up; nothing in a single process."""
    if not launched() or dist.is_initialized():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank())
        dist.init_process_group("nccl", timeout=TIMEOUT)
    else:
        dist.init_process_group("gloo", timeout=TIMEOUT)


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world() -> int:
    return dist.get_world_size() if active() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    """The one process that writes files (adapters, checkpoints, reports) and runs evals."""
    return rank() == 0


def default_device() -> torch.device:
    """This process's GPU when there is one, else the CPU."""
    return torch.device("cuda", local_rank()) if torch.cuda.is_available() else torch.device("cpu")


def shard(items: Sequence[T]) -> list[T]:
    """This process's slice of `items`: every world()-th one, from its rank on."""
    return list(items[rank() :: world()])


def gather(items: Sequence[T]) -> list[T]:
    """Every process's `items`, in rank order, on every process (items must pickle)."""
    if not active():
        return list(items)
    parts: list[Any] = [None] * world()
    dist.all_gather_object(parts, list(items))
    return [item for part in parts for item in part]


def sum_gradients(params: Sequence[torch.nn.Parameter]) -> None:
    """Replace each gradient by its sum over processes. A process whose slice was empty (or did
    not touch a parameter) adds zeros: every process must join every collective."""
    if not active() or not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    offset = 0
    for p, g in zip(params, grads, strict=True):
        p.grad = flat[offset : offset + g.numel()].view_as(g).clone()
        offset += g.numel()


def total(value: float) -> float:
    """`value` summed over processes (for figures such as a loss summed over a batch)."""
    if not active():
        return value
    t = torch.tensor([value], dtype=torch.float64, device=default_device())  # NCCL: on the GPU
    dist.all_reduce(t)
    return float(t[0])


def barrier() -> None:
    if active():
        dist.barrier()
