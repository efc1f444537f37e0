"""DPO on a tiny model: sampled-token log-probs, the loss against the base, LoRA-only updates."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from model.tiny import tiny_model
from model.train.data import TrainExample, collate
from model.train.dpo import DpoSettings, PreferencePair, dpo_step, pair_loss, train_dpo
from model.train.logprobs import reference_logps, sampled_logps, sequence_logps
from model.train.lora import LoraSettings, attach, optimizer_for

pytest.importorskip("peft")


pytestmark = pytest.mark.usefixtures("one_thread")


PROMPT = list(range(20, 32))
# Multi-turn: a sampled call, the tool's output (masked), a sampled answer.
CHOSEN = TrainExample(
    PROMPT + [40, 41, 42, 90, 91, 92, 43, 44], [0] * 12 + [1] * 3 + [0] * 3 + [1] * 2
)
REJECTED = TrainExample(PROMPT + [50, 51, 52, 53], [0] * 12 + [1] * 4)


def lora_model(arch: str = "qwen2") -> torch.nn.Module:
    return attach(tiny_model(arch).model, LoraSettings(rank=4, dropout=0.0))  # type: ignore[arg-type]


@pytest.mark.parametrize("arch", ["qwen2", "lfm2"])
def test_sequence_logps_sum_over_sampled_tokens_only(arch: str) -> None:
    model = lora_model(arch)
    model.eval()
    batch = collate([CHOSEN, REJECTED])
    with torch.no_grad():
        got = sequence_logps(*sampled_logps(model, batch))
        for row, example in enumerate([CHOSEN, REJECTED]):
            ids = torch.tensor([example.input_ids])
            logps = model(input_ids=ids).logits[0, :-1].log_softmax(-1)
            per_token = logps.gather(-1, ids[0, 1:, None]).squeeze(-1)
            expected = (per_token * torch.tensor(example.mask[1:])).sum()
            assert float(got[row]) == pytest.approx(float(expected), abs=1e-4)


def test_one_step_moves_lora_only_and_starts_at_log_2() -> None:
    model = lora_model()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = optimizer_for(model, lr=1e-2)
    pair = PreferencePair(CHOSEN, REJECTED)
    stats = dpo_step(model, optimizer, [pair], DpoSettings(beta=0.5))
    assert stats["loss"] == pytest.approx(math.log(2), abs=1e-5)  # the policy is the reference
    moved = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert moved and all("lora_" in n for n in moved)
    for _ in range(2):  # the pair keeps the reference it took at its first step
        stats = dpo_step(model, optimizer, [pair], DpoSettings())
    assert stats["margin"] > 0 and stats["loss"] < math.log(2)  # chosen now preferred


def test_an_adapter_gone_on_from_is_its_own_reference(tmp_path: Path) -> None:
    """A run from a trained adapter starts at log 2 as a fresh one does: the ratio is taken
    against the adapter as given, not against the base model underneath it."""
    model = lora_model()
    with torch.no_grad():  # an earlier stage's adapter: one that changes the outputs
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    pair = PreferencePair(CHOSEN, REJECTED)
    first: list[dict[str, float]] = []
    settings = DpoSettings(batch_size=1, learning_rate=1e-2)
    train_dpo(model, [pair], tmp_path / "run", settings, progress=first.append)
    with torch.no_grad(), model.disable_adapter():
        base = sequence_logps(*sampled_logps(model, collate([CHOSEN, REJECTED])))
    assert abs(pair.reference[0] - float(base[0])) > 1e-3  # not the base model's log-probs
    assert first[0]["loss"] == pytest.approx(math.log(2), abs=1e-5)


@pytest.mark.parametrize("normalized", [False, True])
def test_pair_loss_against_given_reference(normalized: bool) -> None:
    model = lora_model()
    model.eval()
    pair = PreferencePair(CHOSEN, REJECTED, reference=(-30.0, -20.0))
    settings = DpoSettings(beta=0.2, length_normalized=normalized)
    loss, margin = pair_loss(model, pair, settings)
    with torch.no_grad():
        policy = sequence_logps(*sampled_logps(model, collate([CHOSEN, REJECTED])))
        ref = sequence_logps(*reference_logps(model, collate([CHOSEN, REJECTED])))
    assert torch.allclose(policy, ref)  # a fresh adapter changes nothing
    chosen, rejected = float(policy[0]) + 30.0, float(policy[1]) + 20.0
    if normalized:
        chosen, rejected = chosen / CHOSEN.sampled, rejected / REJECTED.sampled
    assert margin == pytest.approx(0.2 * (chosen - rejected), abs=1e-4)
    assert float(loss.detach()) == pytest.approx(-math.log(1 / (1 + math.exp(-margin))), abs=1e-4)


def test_resumed_training_ends_where_an_uninterrupted_run_ends(tmp_path: Path) -> None:
    pairs = [PreferencePair(CHOSEN, REJECTED), PreferencePair(REJECTED, CHOSEN)]
    settings = DpoSettings(batch_size=1, epochs=2, save_steps=2, learning_rate=1e-2)
    whole = lora_model()
    train_dpo(whole, pairs, tmp_path / "whole", settings)
    assert sorted(p.name for p in (tmp_path / "whole").iterdir()) == [
        "adapter",
        "checkpoint-2",
        "checkpoint-4",
    ]
    steps: list[float] = []
    resumed = lora_model()
    last = train_dpo(
        resumed,
        [PreferencePair(CHOSEN, REJECTED), PreferencePair(REJECTED, CHOSEN)],
        tmp_path / "resumed",
        settings,
        resume=tmp_path / "whole" / "checkpoint-2",
        progress=lambda stats: steps.append(stats["step"]),
    )
    assert steps == [3.0, 4.0] and last["step"] == 4.0
    for (name, a), b in zip(whole.named_parameters(), resumed.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), name


def test_sft_weight_adds_the_chosen_sides_mean_nll() -> None:
    model = lora_model()
    model.eval()
    plain = pair_loss(model, PreferencePair(CHOSEN, REJECTED, reference=(-30.0, -20.0)),
                      DpoSettings())[0]  # fmt: skip
    rpo = pair_loss(model, PreferencePair(CHOSEN, REJECTED, reference=(-30.0, -20.0)),
                    DpoSettings(sft_weight=0.5))[0]  # fmt: skip
    with torch.no_grad():
        chosen = sequence_logps(*sampled_logps(model, collate([CHOSEN, REJECTED])))[0]
    nll = -float(chosen) / CHOSEN.sampled
    assert nll > 0 and float(rpo - plain) == pytest.approx(0.5 * nll, abs=1e-4)


def test_a_run_with_long_sequences_checkpoints_its_layers_to_the_same_adapter(
    tmp_path: Path, monkeypatch
) -> None:
    """Past `LONG` tokens the run recomputes each layer in the backward instead of keeping its
    activations; with dropout on, the adapter it trains is the same."""
    from model.train import loop

    adapters = {}
    for long in (10_000, 8):  # off, then on for these 20-token pairs
        monkeypatch.setattr(loop, "LONG", long)
        torch.manual_seed(0)
        model = attach(tiny_model("qwen2").model, LoraSettings(rank=4, dropout=0.1))
        pairs = [PreferencePair(CHOSEN, REJECTED), PreferencePair(REJECTED, CHOSEN)]
        train_dpo(model, pairs, tmp_path / str(long), DpoSettings(batch_size=2, epochs=2))
        layers = model.get_base_model().model.layers
        assert layers[0].gradient_checkpointing is (long == 8)
        adapters[long] = {
            n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n
        }
    for name, weight in adapters[8].items():
        torch.testing.assert_close(weight, adapters[10_000][name], rtol=1e-5, atol=1e-6)
