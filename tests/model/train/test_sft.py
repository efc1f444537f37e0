"""SFT on the shared loop, on a tiny model: the loss on trained tokens only, LoRA-only updates,
the prompt-without-gradient mode computing the same loss, resume, and a run that learns."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from peft import get_peft_model_state_dict
from safetensors.torch import load_file

from model.tiny import tiny_model
from model.train.data import TrainExample
from model.train.lora import LoraSettings, attach
from model.train.sft import SftSettings, example_loss, train_sft

pytestmark = pytest.mark.usefixtures("one_thread")

EXAMPLE = TrainExample(list(range(10, 40)), [0] * 18 + [1] * 6 + [0] * 3 + [1] * 3)
ONE_STEP = SftSettings(batch_size=1, learning_rate=1e-2)


def test_one_step_trains_lora_only_with_loss_on_sampled_tokens(tmp_path: Path) -> None:
    lm = tiny_model("qwen2")
    ids = torch.tensor([EXAMPLE.input_ids])
    with torch.no_grad():
        expected = float(lm.model(input_ids=ids, labels=torch.tensor([EXAMPLE.labels])).loss)
    model = attach(lm.model, LoraSettings(rank=4, dropout=0.0))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    logs: list[dict[str, float]] = []
    result = train_sft(model, [EXAMPLE], tmp_path, ONE_STEP, progress=logs.append)
    assert result["step"] == 1
    assert logs[0]["loss"] == pytest.approx(expected, rel=1e-4)  # the masked loss, not all tokens
    lora_moved, base_moved = _changes(model, before)
    assert lora_moved and not base_moved
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    assert not model.training  # the evals after training sample without dropout


def test_prompt_without_gradient_gives_the_same_loss() -> None:
    model = attach(tiny_model("qwen2").model, LoraSettings(rank=4, dropout=0.0))
    exact = example_loss(model, EXAMPLE)
    for tokens in (0, 5, 100):  # none of the prompt, its last five, more than it has
        cut = example_loss(model, EXAMPLE, context_grad=tokens)
        assert float(cut) == pytest.approx(float(exact), rel=1e-4)
        model.zero_grad()
        cut.backward()  # and the trained part still reaches the adapter
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_resume_continues_from_a_checkpoint(tmp_path: Path) -> None:
    settings = ONE_STEP.model_copy(update={"save_steps": 1})
    examples = [EXAMPLE] * 2
    train_sft(
        attach(tiny_model("qwen2").model, LoraSettings(rank=2, dropout=0.0)),
        examples,
        tmp_path,
        settings,
    )
    assert (tmp_path / "checkpoint-1").is_dir() and (tmp_path / "checkpoint-2").is_dir()
    logs: list[dict[str, float]] = []
    model = attach(tiny_model("qwen2").model, LoraSettings(rank=2, dropout=0.0))
    again_dir, start = tmp_path / "again", tmp_path / "checkpoint-1"
    resumed = train_sft(model, examples, again_dir, settings, start, progress=logs.append)
    assert resumed["step"] == 2
    assert [log["step"] for log in logs] == [2]  # only the step not yet done
    # Resumed, it ends where the run that was never stopped ended.
    uninterrupted = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    resumed_state = get_peft_model_state_dict(model)
    assert uninterrupted.keys() == resumed_state.keys()
    assert all(torch.allclose(resumed_state[k], v, atol=1e-6) for k, v in uninterrupted.items())


def _changes(model: torch.nn.Module, before: dict[str, torch.Tensor]) -> tuple[bool, bool]:
    moved = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    return any("lora_" in n for n in moved), any("lora_" not in n for n in moved)
