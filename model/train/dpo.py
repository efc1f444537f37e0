"""Direct preference optimization of a LoRA adapter on pairs of episodes from the same prompt.

loss = -log σ(β [(log π(chosen) - log π_ref(chosen)) - (log π(rejected) - log π_ref(rejected))])

where log π sums (or, length-normalized, averages) the log-probs of the sampled tokens only: the
prompt, tool output and any loop prefill in between are context, not choices. The reference is
the policy as training starts: the base model under a fresh adapter (which changes nothing
until trained), or the adapter a run goes on from, so the ratio measures what this run
changed rather than what earlier stages did. `train_dpo` computes every pair's reference
before its first step (a resumed run too: the checkpoint is restored after), once.

With `sft_weight` w > 0 the loss adds w times the chosen side's mean negative log-likelihood
(RPO, Pang et al. 2024). Plain DPO can lower both sides as long as the rejected one falls
faster, and on our doom-loop pairs it did (one run, 2026-12-05: loops gone, but counts cut
short and sums miscomputed, the answered share down from a third to a twelfth); the
likelihood term keeps the chosen answers likely while the loops are pushed down.

Written by hand rather than with TRL's `DPOTrainer` because that trainer (TRL 1.16) takes a
prompt and two completions and trains on every completion token: it has no way to mask the tool
output inside a multi-turn completion, and it re-tokenizes text we already hold as exact ids.

Not here: choosing pairs (the caller: same prompt, higher reward chosen), building examples
(`model.train.data`), the outer loop and checkpoints (`model.train.loop`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field

from model.train import distributed
from model.train.data import TrainExample, batches, collate
from model.train.logprobs import sampled_logps, sequence_logps
from model.train.loop import checkpoint_if_long, fit, optimizer_step, training
from model.train.lora import Progress


class DpoSettings(BaseModel):
    beta: float = Field(default=0.1, gt=0)
    length_normalized: bool = Field(default=False, description="mean token log-prob, not sum")
    learning_rate: float = Field(default=5e-5, gt=0)
    batch_size: int = Field(default=4, ge=1, description="pairs per optimizer step")
    epochs: int = Field(default=1, ge=1)
    max_grad_norm: float = Field(default=1.0, gt=0)
    save_steps: int = Field(default=0, ge=0, description="checkpoint every N steps; 0: never")
    sft_weight: float = Field(default=0.0, ge=0, description="chosen side's mean NLL weight")
    seed: int = 0


@dataclass
class PreferencePair:
    chosen: TrainExample
    rejected: TrainExample
    reference: tuple[float, float] | None = None  # base model's summed log-probs, once known

    def __post_init__(self) -> None:
        if not (self.chosen.sampled and self.rejected.sampled):
            raise ValueError("both sides of a preference pair need sampled tokens")


def pair_loss(
    model: Any, pair: PreferencePair, settings: DpoSettings
) -> tuple[torch.Tensor, float]:
    """(loss, implicit reward margin) of one pair; the loss carries the gradient. A pair with
    no reference yet takes the policy as it is now."""
    batch = collate([pair.chosen, pair.rejected])
    if pair.reference is None:
        set_reference(model, pair)
    policy = sequence_logps(*sampled_logps(model, batch))
    chosen = policy[0] - pair.reference[0]
    rejected = policy[1] - pair.reference[1]
    if settings.length_normalized:
        chosen, rejected = chosen / pair.chosen.sampled, rejected / pair.rejected.sampled
    margin = settings.beta * (chosen - rejected)
    loss = -F.logsigmoid(margin)
    if settings.sft_weight:
        loss = loss - settings.sft_weight * policy[0] / max(pair.chosen.sampled, 1)
    return loss, float(margin.detach())


def set_reference(model: Any, pair: PreferencePair) -> None:
    """`pair.reference`: the summed log-probs of both sides under the model as it is, no
    dropout, no gradient."""
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            ref = sequence_logps(*sampled_logps(model, collate([pair.chosen, pair.rejected])))
    finally:
        model.train(was)
    pair.reference = (float(ref[0]), float(ref[1]))


def dpo_step(
    model: Any,
    optimizer: torch.optim.Optimizer,
    pairs: Sequence[PreferencePair],
    settings: DpoSettings | None = None,
) -> dict[str, float]:
    """One optimizer step over `pairs` (gradients accumulated pair by pair; under several
    processes each takes a share); returns the mean loss, the mean implicit reward margin and
    the share of pairs already ranked right."""
    s = settings or DpoSettings()
    loss_sum, margins = 0.0, []
    with training(model):
        for pair in distributed.shard(pairs):  # the other processes take the other pairs
            loss, margin = pair_loss(model, pair, s)
            (loss / len(pairs)).backward()
            loss_sum += float(loss.detach())
            margins.append(margin)
        grad_norm = optimizer_step(model, optimizer, s.max_grad_norm)
    margins = distributed.gather(margins)
    return {
        "loss": distributed.total(loss_sum) / len(pairs),
        "margin": sum(margins) / len(margins),
        "accuracy": sum(m > 0 for m in margins) / len(margins),
        "grad_norm": grad_norm,
    }


def train_dpo(
    model: Any,
    pairs: Sequence[PreferencePair],
    output_dir: str | Path,
    settings: DpoSettings | None = None,
    resume: bool | str | Path = False,
    progress: Progress | None = None,
) -> dict[str, float]:
    """Train `model` (a PeftModel) in place over `pairs`; the final adapter is OUT/adapter."""
    s = settings or DpoSettings()
    for pair in pairs:  # the start's log-probs, before a checkpoint is restored or a step taken
        if pair.reference is None:
            set_reference(model, pair)
    checkpoint_if_long(model, max(len(e.input_ids) for p in pairs for e in (p.chosen, p.rejected)))
    return fit(
        model,
        batches(pairs, s.batch_size, s.epochs, s.seed),
        lambda m, opt, batch: dpo_step(m, opt, batch, s),
        output_dir,
        s.learning_rate,
        s.save_steps,
        resume,
        progress,
        s.seed,
    )
