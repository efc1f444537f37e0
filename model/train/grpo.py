"""GRPO-style policy-gradient steps for a LoRA adapter, on rollouts the agent loop collected.

A group is K rollouts of one prompt with scalar rewards. Each rollout's advantage is its reward
against the group's: (r - mean) / (std + eps) (or just r - mean, `scale_rewards=False`, which does
not inflate tiny differences in a nearly uniform group). Every sampled token of the rollout gets
that advantage; prompt, tool output and prefill tokens get none. The loss is the mean over all
sampled tokens of the step of

    -A · log π(token) + β · KL_k3(π, π_ref),   KL_k3 = exp(ref - logp) - (ref - logp) - 1,

with the reference the same model with the adapter disabled. A group whose rewards are all equal
has no advantage and is skipped. Each batch of rollouts gets one optimizer step, on-policy: the
rollouts were sampled by the policy being updated, so the importance ratio is 1 and PPO clipping
has nothing to clip. Reusing rollouts for several steps would need their old log-probs and the
clipped ratio, which this does not do.

Written by hand rather than with TRL's `GRPOTrainer` because that trainer generates the
completions itself from a text prompt and scores them with reward functions over text; our
rollouts are multi-turn agent episodes with tool calls run in between, sampled by the agent loop,
whose tool-output tokens must be masked.

Online training (`train_grpo`) runs on the shared loop (`model.train.loop.fit`): each batch is
a step's prompts, and the step first asks the `collect` callable it was given for one group of
rollouts per prompt, sampled by the current adapter, then steps on them. Under several
processes each collects the groups of its share of the prompts and all train on every group.

Not here: collecting rollouts and computing rewards (the agent loop and `evals.rewards`, behind
the callable `evals.train` passes in), building examples (`model.train.data`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean, pstdev
from typing import Any, TypeVar

import torch
from pydantic import BaseModel, Field

from model.train import distributed
from model.train.data import TrainExample, batches, collate
from model.train.logprobs import reference_logps, sampled_logps
from model.train.loop import checkpoint_if_long, fit, optimizer_step, training
from model.train.lora import Progress

P = TypeVar("P")  # a prompt: whatever `collect` samples episodes of (an eval case, say)


class GrpoSettings(BaseModel):
    learning_rate: float = Field(default=2e-5, gt=0, description="for `optimizer_for`")
    kl_beta: float = Field(default=0.0, ge=0, description="0: no reference pass at all")
    scale_rewards: bool = Field(default=True, description="divide by the group's reward std")
    eps: float = Field(default=1e-4, gt=0)
    max_grad_norm: float = Field(default=1.0, gt=0)
    prompts_per_step: int = Field(default=4, ge=1, description="online: prompts per step")
    epochs: int = Field(default=1, ge=1, description="online: passes over the prompts")
    save_steps: int = Field(default=0, ge=0, description="checkpoint every N steps; 0: never")
    seed: int = 0


@dataclass
class Rollout:
    examples: list[TrainExample]  # the episode's sequences (one, unless a prompt re-tokenized)
    reward: float
    greedy: bool = False  # sampled at temperature 0: trained on alike, and reported apart


# (this process's share of a step's prompts, the step number) -> one group of rollouts per
# prompt, sampled with the adapter as it is now; the step number lets it seed the sampling.
Collect = Callable[[list[P], int], list[list[Rollout]]]


def advantages(rewards: Sequence[float], scale: bool = True, eps: float = 1e-4) -> list[float]:
    """Each reward against its group: (r - mean) / (std + eps), population std."""
    mean = fmean(rewards)
    spread = pstdev(rewards) + eps if scale else 1.0
    return [(r - mean) / spread for r in rewards]


def _has_signal(group: Sequence[Rollout]) -> bool:
    rewards = [r.reward for r in group]
    return len(group) >= 2 and max(rewards) != min(rewards)


def _weighted(
    groups: Sequence[Sequence[Rollout]], s: GrpoSettings
) -> list[tuple[TrainExample, float]]:
    """Every example of every rollout with its advantage; groups without signal left out."""
    out: list[tuple[TrainExample, float]] = []
    for group in filter(_has_signal, groups):
        rewards = [r.reward for r in group]
        for rollout, adv in zip(group, advantages(rewards, s.scale_rewards, s.eps), strict=True):
            out += [(e, adv) for e in rollout.examples if e.sampled]
    return out


def example_loss(
    model: Any, example: TrainExample, advantage: float, kl_beta: float
) -> tuple[torch.Tensor, float]:
    """(sum over the example's sampled tokens of the per-token loss, summed KL)."""
    batch = collate([example])
    logps, mask = sampled_logps(model, batch)
    loss = -advantage * logps
    kl = torch.zeros_like(logps)
    if kl_beta:
        ref, _ = reference_logps(model, batch)
        delta = ref - logps
        kl = torch.exp(delta) - delta - 1
        loss = loss + kl_beta * kl
    return (loss * mask).sum(), float((kl.detach() * mask).sum())


def grpo_step(
    model: Any,
    optimizer: torch.optim.Optimizer,
    groups: Sequence[Sequence[Rollout]],
    settings: GrpoSettings | None = None,
) -> dict[str, float]:
    """One optimizer step over groups of rollouts (each group: K rollouts of one prompt). Under
    several processes each gets all groups and trains on a share. Returns the loss, mean KL per
    token, reward mean, tokens trained and groups skipped (and the greedy rollouts' mean
    reward, when there are greedy rollouts)."""
    s = settings or GrpoSettings()
    weighted = _weighted(groups, s)
    tokens = sum(e.sampled for e, _ in weighted)
    rewards = [r.reward for g in groups for r in g]
    stats = {
        "reward": fmean(rewards) if rewards else 0.0,
        "tokens": float(tokens),
        "skipped_groups": float(sum(not _has_signal(g) for g in groups)),
        "loss": 0.0,
        "kl": 0.0,
        "grad_norm": 0.0,
    }
    if greedy := [r.reward for g in groups for r in g if r.greedy]:
        stats["greedy_reward"] = fmean(greedy)  # the policy's own best guess, without sampling
    if not tokens:
        return stats
    with training(model):
        for example, adv in distributed.shard(weighted):  # the other processes take the rest
            loss, kl = example_loss(model, example, adv, s.kl_beta)
            (loss / tokens).backward()
            stats["loss"] += float(loss.detach()) / tokens
            stats["kl"] += kl / tokens
        stats["grad_norm"] = optimizer_step(model, optimizer, s.max_grad_norm)
    stats["loss"], stats["kl"] = distributed.total(stats["loss"]), distributed.total(stats["kl"])
    return stats


def train_grpo(
    model: Any,
    prompts: Sequence[P],
    collect: Collect[P],
    output_dir: str | Path,
    settings: GrpoSettings | None = None,
    resume: bool | str | Path = False,
    progress: Progress | None = None,
) -> dict[str, float]:
    """Online GRPO on `model` (a PeftModel), in place: each step takes `prompts_per_step`
    prompts, has `collect` sample their groups with the current adapter and steps on them; the
    final adapter is OUT/adapter. `resume` as in `fit`: steps already done collect nothing."""
    s = settings or GrpoSettings()
    numbered = list(enumerate(batches(prompts, s.prompts_per_step, s.epochs, s.seed), start=1))

    def step(
        m: Any, optimizer: torch.optim.Optimizer, batch: tuple[int, list[P]]
    ) -> dict[str, float]:
        number, share = batch
        # Each process samples the groups of its share of the prompts; all train on every group.
        groups = distributed.gather(collect(distributed.shard(share), number))
        examples = [e for group in groups for rollout in group for e in rollout.examples]
        checkpoint_if_long(m, max((len(e.input_ids) for e in examples), default=0))
        return grpo_step(m, optimizer, groups, s)

    return fit(
        model, numbered, step, output_dir, s.learning_rate, s.save_steps, resume, progress, s.seed
    )
