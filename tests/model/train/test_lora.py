"""LoRA adapters: per-architecture targets, saved adapters the loader applies, checkpoint/resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model.loader import load
from model.tiny import tiny_model
from model.train.lora import (
    LoraSettings,
    attach,
    latest_checkpoint,
    optimizer_for,
    restore_checkpoint,
    save_adapter,
    save_checkpoint,
    target_modules,
)

pytest.importorskip("peft")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(
    ("arch", "expected"),
    [
        ("qwen2", ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]),
        ("lfm2", ["q_proj", "k_proj", "v_proj", "out_proj", "in_proj", "w1", "w2", "w3"]),
    ],
)
def test_targets_are_attention_and_mlp_projections_per_architecture(
    arch: str, expected: list[str]
) -> None:
    base = tiny_model(arch).model  # type: ignore[arg-type]
    assert target_modules(base) == expected
    model = attach(base, LoraSettings(rank=2))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    adapted = {n.split(".")[-4] for n in trainable}  # ...q_proj.lora_A.default.weight
    assert adapted == set(expected)


def test_saved_adapter_is_applied_by_the_loader(tmp_path: Path) -> None:
    lm = tiny_model("qwen2")
    lm.model.save_pretrained(tmp_path / "base")
    lm.tokenizer.save_pretrained(tmp_path / "base")
    model = attach(lm.model, LoraSettings(rank=2))
    _perturb(model)
    save_adapter(model, tmp_path / "adapter")
    loaded = load(str(tmp_path / "base"), adapter=str(tmp_path / "adapter"))
    ids = torch.tensor([[5, 6, 7, 8]])
    model.eval()
    with torch.no_grad():
        merged, live = loaded.model(input_ids=ids).logits, model(input_ids=ids).logits
        assert torch.allclose(merged, live, atol=1e-4, rtol=1e-4)  # merged: equal up to rounding
        with model.disable_adapter():
            base = model(input_ids=ids).logits
    assert not torch.allclose(loaded.model(input_ids=ids).logits, base)


def test_checkpoint_restores_adapter_optimizer_and_step(tmp_path: Path) -> None:
    model = attach(tiny_model("qwen2").model, LoraSettings(rank=2))
    optimizer = optimizer_for(model, lr=1e-2)
    model(input_ids=torch.tensor([[1, 2, 3]]), labels=torch.tensor([[1, 2, 3]])).loss.backward()
    optimizer.step()
    save_checkpoint(model, optimizer, 1, tmp_path)
    save_checkpoint(model, optimizer, 3, tmp_path, {"epoch": 0})
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoint-3"
    assert latest_checkpoint(tmp_path / "nothing-here") is None

    fresh = attach(tiny_model("qwen2").model, LoraSettings(rank=2))
    fresh_optimizer = optimizer_for(fresh, lr=1e-2)
    state = restore_checkpoint(fresh, fresh_optimizer, tmp_path / "checkpoint-3")
    assert state == {"epoch": 0, "global_step": 3}
    assert _lora(fresh).keys() == _lora(model).keys()
    assert all(torch.equal(_lora(fresh)[k], v) for k, v in _lora(model).items())
    saved, restored = optimizer.state_dict()["state"], fresh_optimizer.state_dict()["state"]
    assert saved.keys() == restored.keys()
    assert all(torch.equal(saved[k]["exp_avg"], restored[k]["exp_avg"]) for k in saved)


def _perturb(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)


def _lora(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach() for n, p in model.named_parameters() if "lora_" in n}


def test_a_fresh_or_resumed_adapter_generates_without_dropout(tmp_path: Path) -> None:
    """Rollouts and evals sample from the adapted model: LoRA dropout must be off there."""
    model = attach(tiny_model("llama").model, LoraSettings(dropout=0.5))
    assert not any(m.training for m in model.modules())
    ids = torch.tensor([list(range(3, 20))])
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)  # a fresh adapter adds zero, dropout or not
        assert torch.equal(model(ids).logits, model(ids).logits)
    from model.train.lora import load_trainable

    save_adapter(model, tmp_path / "a")
    resumed = load_trainable(tiny_model("llama").model, tmp_path / "a")
    assert not any(m.training for m in resumed.modules())


def test_a_fresh_adapter_is_seeded_and_leaves_the_callers_generator_alone() -> None:
    torch.manual_seed(123)
    expected_draw = torch.rand(1)
    base = tiny_model("qwen2").model
    torch.manual_seed(123)
    first = attach(base, LoraSettings(rank=2))
    assert torch.equal(torch.rand(1), expected_draw)  # the caller's stream is untouched
    again = attach(tiny_model("qwen2").model, LoraSettings(rank=2))
    other = attach(tiny_model("qwen2").model, LoraSettings(rank=2, seed=1))

    def lora(m: torch.nn.Module) -> list[torch.Tensor]:
        return [p.detach() for n, p in m.named_parameters() if "lora_A" in n]

    assert all(torch.equal(a, b) for a, b in zip(lora(first), lora(again), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(lora(first), lora(other), strict=True))
