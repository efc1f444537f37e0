"""GRPO steps on a tiny model: group advantages, LoRA-only updates in the advantage's direction."""

from __future__ import annotations

import pytest
import torch

from model.tiny import tiny_model
from model.train.data import TrainExample, collate
from model.train.grpo import GrpoSettings, Rollout, advantages, grpo_step
from model.train.logprobs import sampled_logps, sequence_logps
from model.train.lora import LoraSettings, attach, optimizer_for

pytest.importorskip("peft")


pytestmark = pytest.mark.usefixtures("one_thread")


PROMPT = list(range(20, 32))
GOOD = TrainExample(PROMPT + [40, 41, 90, 91, 42, 43], [0] * 12 + [1, 1, 0, 0, 1, 1])
BAD = TrainExample(PROMPT + [50, 51, 52], [0] * 12 + [1] * 3)


def lora_model() -> torch.nn.Module:
    return attach(tiny_model("qwen2").model, LoraSettings(rank=4, dropout=0.0))


def logp(model: torch.nn.Module, example: TrainExample) -> float:
    with torch.no_grad():
        return float(sequence_logps(*sampled_logps(model, collate([example])))[0])


def test_advantages_are_rewards_standardized_within_the_group() -> None:
    assert advantages([1.0, 0.0], eps=0.0) == [1.0, -1.0]
    assert advantages([2.0, 2.0, 5.0], scale=False) == [-1.0, -1.0, 2.0]
    assert advantages([0.3, 0.3]) == [0.0, 0.0]
    assert sum(advantages([0.1, 0.7, 0.4, 1.0])) == pytest.approx(0.0, abs=1e-9)


def test_one_step_moves_lora_only_towards_the_better_rollout() -> None:
    model = lora_model()
    model.eval()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    good, bad = logp(model, GOOD), logp(model, BAD)
    optimizer = optimizer_for(model, lr=1e-2)
    stats = grpo_step(model, optimizer, [[Rollout([GOOD], 1.0), Rollout([BAD], 0.0)]])
    assert stats["tokens"] == GOOD.sampled + BAD.sampled and stats["skipped_groups"] == 0
    moved = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert moved and all("lora_" in n for n in moved)
    assert not model.training  # the step left the mode it found
    assert logp(model, GOOD) > good and logp(model, BAD) < bad


def test_a_group_without_signal_is_skipped_and_changes_nothing() -> None:
    model = lora_model()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    group = [Rollout([GOOD], 0.5), Rollout([BAD], 0.5)]
    stats = grpo_step(model, optimizer_for(model, lr=1e-2), [group])
    assert stats["skipped_groups"] == 1 and stats["tokens"] == 0
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_kl_to_the_reference_is_zero_at_first_and_grows_after_updates() -> None:
    model = lora_model()
    optimizer = optimizer_for(model, lr=5e-2)
    settings = GrpoSettings(kl_beta=0.1)
    groups = [[Rollout([GOOD], 1.0), Rollout([BAD], 0.0)]]
    first = grpo_step(model, optimizer, groups, settings)
    assert first["kl"] == pytest.approx(0.0, abs=1e-6)
    second = grpo_step(model, optimizer, groups, settings)
    assert second["kl"] > 0
