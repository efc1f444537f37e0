"""SFT with TRL's SFTTrainer on a tiny model: loss on sampled tokens, LoRA-only updates, resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from peft import get_peft_model_state_dict
from safetensors.torch import load_file

from model.lora import LoraSettings, attach
from model.sft import SftSettings, train_sft
from model.tiny import tiny_model
from model.train_data import TrainExample

pytest.importorskip("trl")


pytestmark = pytest.mark.usefixtures("one_thread")


EXAMPLE = TrainExample(list(range(10, 40)), [0] * 18 + [1] * 6 + [0] * 3 + [1] * 3)
ONE_STEP = SftSettings(max_steps=1, grad_accum=1, learning_rate=1e-2, scheduler="constant")


def test_one_step_trains_lora_only_with_loss_on_sampled_tokens(tmp_path: Path) -> None:
    lm = tiny_model("qwen2")
    ids = torch.tensor([EXAMPLE.input_ids])
    with torch.no_grad():
        expected = float(lm.model(input_ids=ids, labels=torch.tensor([EXAMPLE.labels])).loss)
    model = attach(lm.model, LoraSettings(rank=4, dropout=0.0))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    logs: list[dict[str, float]] = []
    result = train_sft(model, lm.tokenizer, [EXAMPLE], tmp_path, ONE_STEP, progress=logs.append)
    assert result["step"] == 1
    assert logs[0]["loss"] == pytest.approx(expected, rel=1e-4)  # the masked loss, not all tokens
    lora_moved, base_moved = _changes(model, before)
    assert lora_moved and not base_moved
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    assert not model.training  # the evals after training sample without dropout


def test_resume_continues_from_a_checkpoint(tmp_path: Path) -> None:
    lm = tiny_model("qwen2")
    settings = ONE_STEP.model_copy(update={"max_steps": 2, "save_steps": 1})
    train_sft(
        attach(lm.model, LoraSettings(rank=2)), lm.tokenizer, [EXAMPLE] * 2, tmp_path, settings
    )
    assert (tmp_path / "checkpoint-1").is_dir() and (tmp_path / "checkpoint-2").is_dir()
    again = tiny_model("qwen2")
    logs: list[dict[str, float]] = []
    model = attach(again.model, LoraSettings(rank=2))
    again_dir, start = tmp_path / "again", tmp_path / "checkpoint-1"
    examples = [EXAMPLE] * 2
    resumed = train_sft(
        model, again.tokenizer, examples, again_dir, settings, start, progress=logs.append
    )
    assert resumed["step"] == 2
    assert [log["step"] for log in logs if "loss" in log] == [2]  # only the step not yet done
    # Resumed, it ends where the run that was never stopped ended.
    uninterrupted = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    resumed_state = get_peft_model_state_dict(model)
    assert uninterrupted.keys() == resumed_state.keys()
    assert all(torch.allclose(resumed_state[k], v, atol=1e-6) for k, v in uninterrupted.items())


def _changes(model: torch.nn.Module, before: dict[str, torch.Tensor]) -> tuple[bool, bool]:
    moved = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    return any("lora_" in n for n in moved), any("lora_" not in n for n in moved)
