"""Merging a LoRA adapter without peft: the merged model computes what the peft model does;
which adapter a setting names; one-line errors for folders that are not adapters."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from model import adapter as adapters
from model.tiny import tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")
Make = Callable[..., torch.Tensor]


def test_merged_weights_compute_what_the_peft_model_computes(
    tmp_path: Path, lora_adapter: Make
) -> None:
    expected = lora_adapter(tmp_path / "a")
    base = tiny_model("qwen2").model
    with torch.no_grad():
        before = base(input_ids=torch.tensor([[5, 6, 7, 8]])).logits
    assert adapters.merge(base, tmp_path / "a") > 0
    with torch.no_grad():
        after = base(input_ids=torch.tensor([[5, 6, 7, 8]])).logits
    assert not torch.allclose(before, expected, atol=1e-3)  # the adapter does change outputs
    assert torch.allclose(after, expected, atol=1e-4)


def test_bfloat16_copy_is_half_the_size_and_still_merges(
    tmp_path: Path, lora_adapter: Make
) -> None:
    lora_adapter(tmp_path / "a")
    small = adapters.to_bfloat16(tmp_path / "a", tmp_path / "b")
    size = (small / adapters.WEIGHTS).stat().st_size
    assert size < 0.6 * (tmp_path / "a" / adapters.WEIGHTS).stat().st_size
    assert adapters.merge(tiny_model("qwen2").model, small) > 0


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_an_average_changes_each_layer_by_the_weighted_sum_of_the_changes(
    tmp_path: Path, lora_adapter: Make
) -> None:
    lora_adapter(tmp_path / "a", seed=0)
    lora_adapter(tmp_path / "b", seed=1)
    base = _weights(tiny_model("qwen2").model)
    deltas = []
    for name in ("a", "b"):
        model = tiny_model("qwen2").model
        adapters.merge(model, tmp_path / name)
        deltas.append({k: v - base[k] for k, v in _weights(model).items()})
    for weights in ([0.3, 0.7], [1.5, -0.5]):  # a negative weight subtracts its change
        mixed = adapters.average([tmp_path / "a", tmp_path / "b"], weights, tmp_path / "m")
        assert adapters.read_config(mixed)["r"] == 8  # the two rank-4 adapters side by side
        model = tiny_model("qwen2").model
        adapters.merge(model, mixed)
        changed = 0
        for k, v in _weights(model).items():
            expected = base[k] + weights[0] * deltas[0][k] + weights[1] * deltas[1][k]
            assert torch.allclose(v, expected, atol=1e-5), k
            changed += bool(deltas[0][k].abs().sum())
        assert changed > 0
    with pytest.raises(adapters.AdapterError, match="one weight per adapter"):
        adapters.average([tmp_path / "a"], [0.5, 0.5], tmp_path / "x")


def test_a_lower_rank_average_keeps_each_layers_best_approximation(
    tmp_path: Path, lora_adapter: Make
) -> None:
    lora_adapter(tmp_path / "a", seed=0)
    lora_adapter(tmp_path / "b", seed=1)
    sources, weights = [tmp_path / "a", tmp_path / "b"], [0.5, 0.5]
    full = load_file(str(adapters.average(sources, weights, tmp_path / "f") / adapters.WEIGHTS))
    for rank, exact in ((8, True), (3, False)):
        small = adapters.average(sources, weights, tmp_path / f"r{rank}", rank=rank)
        assert adapters.read_config(small)["r"] == rank
        kept = load_file(str(small / adapters.WEIGHTS))
        for key in (k for k in full if ".lora_A." in k):
            up = key.replace(".lora_A.", ".lora_B.")
            change = full[up] @ full[key]
            assert kept[key].shape[0] == rank
            u, s, vh = torch.linalg.svd(change)
            best = (u[:, :rank] * s[:rank]) @ vh[:rank]
            assert torch.allclose(kept[up] @ kept[key], best, atol=1e-5), key
            assert torch.allclose(best, change, atol=1e-5) == exact or not change.abs().sum()
    with pytest.raises(adapters.AdapterError, match="rank must be at least 1"):
        adapters.average(sources, weights, tmp_path / "x", rank=0)


def test_settings_name_the_shipped_adapter_none_or_a_folder() -> None:
    assert adapters.resolve("qwen2.5-coder-0.5b", "none") is None
    assert adapters.resolve(None, "default") is None  # a model that ships none
    assert adapters.resolve("no-such-model", "default") is None
    assert adapters.resolve("x", "/some/folder") == "/some/folder"
    shipped = adapters.shipped("qwen2.5-coder-0.5b")
    assert adapters.resolve("qwen2.5-coder-0.5b", "default") == (str(shipped) if shipped else None)


def test_a_folder_that_is_not_an_adapter_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(adapters.AdapterError, match="not a LoRA adapter folder"):
        adapters.merge(tiny_model("qwen2").model, tmp_path)
