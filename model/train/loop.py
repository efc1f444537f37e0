"""The one loop of every trainer (SFT, DPO, GRPO offline and online): batches, steps,
checkpoints, resume.

One optimizer step per batch. The batches are a fixed seeded list (`model.train.data.batches`),
so a resumed run restores the adapter and optimizer from `OUT/checkpoint-N/` and goes on with
batch N + 1. The final adapter goes to `OUT/adapter/`. A batch is whatever the method's step
function takes: examples (SFT), pairs (DPO), or the prompts of one online RL step, whose
rollouts the step function samples with the current adapter before it steps (`train_grpo`).

Under several processes (`model.train.distributed`) each process computes its share of a batch
and the gradients are summed before the step, so every process steps alike; only the first
writes checkpoints and the adapter.

Not here: the losses and step functions (`model.train.sft`, `model.train.dpo`,
`model.train.grpo`); collecting rollouts (the agent loop, passed in by `evals.train`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import torch

from model.train import distributed
from model.train.lora import (
    Progress,
    latest_checkpoint,
    optimizer_for,
    restore_checkpoint,
    save_adapter,
    save_checkpoint,
)

B = TypeVar("B")
# Tokens in a sequence past which a run checkpoints its layers (`checkpoint_if_long`).
LONG = 1024
# (model, optimizer, batch) -> the step's figures; it takes the optimizer step itself.
StepFn = Callable[[Any, torch.optim.Optimizer, B], dict[str, float]]


def fit(
    model: Any,
    batches: Sequence[B],
    step_fn: StepFn[B],
    output_dir: str | Path,
    learning_rate: float,
    save_steps: int = 0,
    resume: bool | str | Path = False,
    progress: Progress | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Run `step_fn(model, optimizer, batch)` on each batch; returns the last step's stats.
    `resume`: True continues from the latest checkpoint under `output_dir` if there is one, a
    path from that checkpoint. Torch's generator is seeded from `seed` and the step number
    before each step, so dropout draws the same masks in a resumed run as in one never
    stopped."""
    output_dir = Path(output_dir)
    optimizer = optimizer_for(model, learning_rate)
    start = latest_checkpoint(output_dir) if resume is True else (resume or None)
    done = int(restore_checkpoint(model, optimizer, start)["global_step"]) if start else 0
    stats: dict[str, float] = {"step": float(done)}
    for step, batch in enumerate(batches[done:], start=done + 1):
        torch.manual_seed(seed * 1_000_003 + step)
        stats = {"step": float(step), **step_fn(model, optimizer, batch)}
        if progress:
            progress(stats)
        if save_steps and step % save_steps == 0 and distributed.is_main():
            save_checkpoint(model, optimizer, step, output_dir)
    if distributed.is_main():
        save_adapter(model, output_dir / "adapter")
    distributed.barrier()  # nobody reads the adapter before it is whole
    return stats


def optimizer_step(model: Any, optimizer: torch.optim.Optimizer, max_grad_norm: float) -> float:
    """Sum the accumulated gradients over processes, clip, step, clear them; returns the norm
    before clipping."""
    distributed.sum_gradients([p for p in model.parameters() if p.requires_grad])
    params = [p for p in model.parameters() if p.requires_grad and p.grad is not None]
    norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm) if params else torch.tensor(0.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(norm)


def checkpoint_if_long(model: Any, longest: int) -> bool:
    """Activation checkpointing from now on when `longest` (a run's longest sequence, or an
    online step's) passes `LONG`: each
    layer keeps only its input and runs again in the backward (dropout replays its masks, so
    the gradients are the same), about a third more compute. Without it a layer keeps some 60
    KB a token for the backward: a DPO pair padded to 4,960 tokens passed 24 GB on the CPU and
    was killed mid-run. Returns whether it is on."""
    if longest <= LONG:
        return False
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if not base.is_activation_checkpointing:  # once: each call would add an input hook
        kwargs = {"use_reentrant": False}
        base.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    return True


@contextmanager
def training(model: Any) -> Iterator[None]:
    """The model in train mode (LoRA dropout on) for the block, then back to its old mode."""
    was = model.training
    model.train()
    try:
        yield
    finally:
        model.train(was)
