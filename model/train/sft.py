"""Supervised fine-tuning of a LoRA adapter: the loss on the trained tokens only, on the same
loop as DPO (`model.train.loop.fit`: seeded batches, checkpoints, resume, several processes).

An example is a token sequence and a mask (`model.train.data`); nothing is re-tokenized. The
loss of a batch is the mean negative log-likelihood over all its masked tokens, examples fed
one at a time (no padding: lengths vary tenfold) and their gradients accumulated.

`context_grad=N` is the CPU setting: the prompt is read under `no_grad` (with the adapter on,
as at inference) up to its last N tokens, and only the rest runs with a gradient, attending to
that prefix through the key/value cache. The gradient through the prefix's own keys and values
is dropped. N=0 keeps only the position that predicts the first trained token, which is
cheapest (half a step's time on a 600-token prompt with a 50-token reply, two cores) but too
weak for a decision that depends on the prompt: an adapter trained so on BFCL learnt to decline
every call rather than to tell when no function fits (evals/TRAINING.md). A few hundred
tokens cover the user's question, where that is decided, while the long tool schemas before
it stay without a gradient. None (the default) is exact.

Not here: choosing examples (the caller), building them (`model.train.data`,
`evals.references`), attaching the adapter (`model.train.lora.attach`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, Field

from model.train import distributed
from model.train.data import TrainExample, batches
from model.train.logprobs import device_of
from model.train.loop import fit, optimizer_step, training
from model.train.lora import Progress


class SftSettings(BaseModel):
    learning_rate: float = Field(default=2e-4, gt=0)
    epochs: int = Field(default=1, ge=1)
    batch_size: int = Field(default=8, ge=1, description="examples per optimizer step")
    max_grad_norm: float = Field(default=1.0, gt=0)
    context_grad: int | None = Field(
        default=None, ge=0, description="prompt tokens with a gradient; None: all (exact)"
    )
    max_steps: int | None = Field(default=None, ge=1, description="stop after N steps")
    save_steps: int = Field(default=0, ge=0, description="checkpoint every N steps; 0: never")
    seed: int = 0


def example_loss(
    model: Any, example: TrainExample, context_grad: int | None = None
) -> torch.Tensor:
    """The summed negative log-likelihood of the example's masked tokens; the gradient flows
    through the last `context_grad` prompt tokens only (None: all)."""
    device = device_of(model)
    ids = torch.tensor([example.input_ids], device=device)
    mask = torch.tensor(example.mask[1:], device=device, dtype=torch.bool)
    first = example.mask.index(1)  # position `first - 1` predicts the first trained token
    cut = 0 if context_grad is None else max(0, first - 1 - context_grad)
    past = None
    if cut:
        with torch.no_grad():
            past = model(input_ids=ids[:, :cut], use_cache=True).past_key_values
    out = model(input_ids=ids[:, cut:], past_key_values=past, use_cache=past is not None)
    logits = out.logits[0, :-1].float()  # position i predicts token i + 1
    targets = ids[0, cut + 1 :]
    picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - logits.logsumexp(-1)
    return -(picked * mask[cut:]).sum()


def sft_step(
    model: Any,
    optimizer: torch.optim.Optimizer,
    examples: Sequence[TrainExample],
    settings: SftSettings,
) -> dict[str, float]:
    """One optimizer step: the mean loss per trained token over the batch (under several
    processes each takes a share of the examples)."""
    tokens = sum(e.sampled for e in examples)
    total = 0.0
    with training(model):
        for example in distributed.shard(list(examples)):
            loss = example_loss(model, example, settings.context_grad)
            (loss / tokens).backward()
            total += float(loss.detach())
        grad_norm = optimizer_step(model, optimizer, settings.max_grad_norm)
    return {"loss": distributed.total(total) / tokens, "tokens": float(tokens),
            "grad_norm": grad_norm}  # fmt: skip


def train_sft(
    model: Any,
    examples: Sequence[TrainExample],
    output_dir: str | Path,
    settings: SftSettings | None = None,
    resume: bool | str | Path = False,
    progress: Progress | None = None,
) -> dict[str, float]:
    """Train `model` (a PeftModel) in place; the final adapter is OUT/adapter. `resume`: True
    goes on from the latest checkpoint under `output_dir`, a path from that checkpoint."""
    s = settings or SftSettings()
    usable = [e for e in examples if e.sampled]
    if not usable:
        raise ValueError("no example has a token to train on")
    return fit(
        model,
        batches(usable, s.batch_size, s.epochs, s.seed)[: s.max_steps],
        lambda m, opt, batch: sft_step(m, opt, batch, s),
        output_dir,
        s.learning_rate,
        s.save_steps,
        resume,
        progress,
        s.seed,
    )
