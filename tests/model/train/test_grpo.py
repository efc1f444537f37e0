"""GRPO steps on a tiny model: group advantages, LoRA-only updates in the advantage's direction."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model.tiny import tiny_model
from model.train.data import TrainExample, collate
from model.train.grpo import GrpoSettings, Rollout, advantages, grpo_step, train_grpo
from model.train.logprobs import sampled_logps, sequence_logps
from model.train.lora import LoraSettings, attach, latest_checkpoint, optimizer_for

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


def test_online_training_samples_each_step_with_the_adapter_it_has_then(tmp_path: Path) -> None:
    """`train_grpo` on the shared loop: `collect` is asked for each step's prompts in turn,
    after the step before has moved the adapter; a resumed run samples only the steps left."""
    model = lora_model()
    seen: list[tuple[int, list[str], float]] = []

    def collect(share: list[str], step: int) -> list[list[Rollout]]:
        seen.append((step, share, logp(model, GOOD)))  # the policy this step samples from
        return [[Rollout([GOOD], 1.0, greedy=True), Rollout([BAD], 0.0)] for _ in share]

    s = GrpoSettings(learning_rate=1e-2, prompts_per_step=2, save_steps=1)
    last = train_grpo(model, ["a", "b", "c"], collect, tmp_path / "run", s)
    assert [step for step, _, _ in seen] == [1, 2]
    assert sorted(p for _, share, _ in seen for p in share) == ["a", "b", "c"]
    assert seen[1][2] > seen[0][2]  # step 2 sampled from the adapter step 1 trained
    assert last["step"] == 2 and last["greedy_reward"] == 1.0 and last["reward"] == 0.5
    assert (tmp_path / "run" / "adapter" / "adapter_config.json").is_file()
    assert latest_checkpoint(tmp_path / "run") == tmp_path / "run" / "checkpoint-2"

    seen.clear()
    resumed = train_grpo(lora_model(), ["a", "b", "c"], collect, tmp_path / "run", s, True)
    assert seen == [] and resumed == {"step": 2.0}  # every step done: nothing sampled again


def test_log_probs_are_computed_only_where_a_token_was_sampled() -> None:
    """Two turns with a long tool output between them: the log-probs of the sampled tokens are
    those of the whole forward, and the vocabulary projection runs on those positions only."""
    model = lora_model()
    output = list(range(100, 160))  # a tool's output: read, never scored
    turns = TrainExample(
        PROMPT + [40, 41] + output + [42, 43], [0] * 12 + [1, 1] + [0] * 60 + [1, 1]
    )
    batch = collate([turns, GOOD])
    with torch.no_grad():
        logps, mask = sampled_logps(model, batch)
        full = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    full = full[:, :-1].float().log_softmax(-1).gather(-1, batch.input_ids[:, 1:, None])[..., 0]
    want = (full * batch.mask[:, 1:]).sum(-1)
    torch.testing.assert_close((logps * mask).sum(-1), want, rtol=1e-4, atol=1e-4)
    assert logps.shape == (2, 6)  # 12, 13, 16, 17, 74, 75: not the 64 from 12 on
    assert mask.sum() == batch.mask.sum()  # every sampled token counted, once


def test_an_online_step_with_a_long_rollout_turns_checkpointing_on(
    tmp_path: Path, monkeypatch
) -> None:
    from model.train import loop

    monkeypatch.setattr(loop, "LONG", len(GOOD.input_ids) - 1)  # GOOD is long, BAD is not
    model = lora_model()
    layers = model.get_base_model().model.layers
    short = [[Rollout([BAD], 1.0), Rollout([BAD], 0.0)]]
    s = GrpoSettings(learning_rate=1e-2, prompts_per_step=1)
    train_grpo(model, ["a"], lambda share, step: short, tmp_path / "short", s)
    assert not layers[0].gradient_checkpointing
    long = [[Rollout([GOOD], 1.0), Rollout([BAD], 0.0)]]
    train_grpo(model, ["a", "b"], lambda share, step: long, tmp_path / "long", s)
    assert layers[0].gradient_checkpointing  # and it stays on, enabled once
