"""`model.layout`: a kind is moved only where timing says it pays, a moved model computes what
it computed before, weights keep their shape and ties, and training loads without it."""

from __future__ import annotations

import pytest
import torch

from agent.settings import Settings
from evals.train import load_settings
from model import layout
from model.fast import Decoder
from model.tiny import tiny_model


@pytest.fixture
def small(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(layout, "MIN_BYTES", 0)  # a tiny model's layers count as large
    monkeypatch.setattr(layout, "SAMPLE_BYTES", 1 << 12)


def faster(moved_wins: bool):
    """A `_time` that finds [in, out] storage faster (or slower) than [out, in]."""

    def timed(x: torch.Tensor, weights: list[torch.Tensor]) -> float:
        is_moved = weights[0].stride()[0] == 1
        return 1.0 if is_moved == moved_wins else 2.0

    return timed


def test_a_kind_moves_where_it_pays_and_computes_the_same(small, monkeypatch) -> None:
    lm = tiny_model("qwen2")
    model = lm.model
    ids = [3, 14, 15, 92, 65, 35]
    before = Decoder(model).forward(ids)
    shapes = {n: p.shape for n, p in model.named_parameters()}
    assert model.lm_head.weight is model.model.embed_tokens.weight  # tied, as Qwen's small ones
    monkeypatch.setattr(layout, "_time", faster(moved_wins=True))
    moved = layout.relayout(model)
    assert "lm_head" in moved and "mlp.up_proj" in moved and "self_attn.q_proj" in moved
    assert all(layout.is_moved(x) for x in layout.kinds(model)["mlp.down_proj"])
    assert model.lm_head.weight.stride() == (1, model.lm_head.weight.shape[0])
    assert model.lm_head.weight is model.model.embed_tokens.weight  # still one tensor
    assert {n: p.shape for n, p in model.named_parameters()} == shapes
    after = Decoder(model).forward(ids)
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)
    assert Decoder(model).forward(ids).argmax() == before.argmax()


def test_nothing_moves_where_it_does_not_pay(small, monkeypatch) -> None:
    model = tiny_model("llama").model
    weights = {n: p for n, p in model.named_parameters()}
    monkeypatch.setattr(layout, "_time", faster(moved_wins=False))
    assert layout.relayout(model) == []
    assert all(p is weights[n] for n, p in model.named_parameters())  # untouched, not copied


def test_small_projections_are_left_alone() -> None:
    model = tiny_model("qwen2").model
    assert layout.kinds(model) == {}  # every layer is under MIN_BYTES, which fit in a cache
    assert layout.relayout(model) == []


def test_bfloat16_is_never_moved(small) -> None:
    model = tiny_model("qwen2").model.to(torch.bfloat16)
    assert layout.kinds(model) == {}
    assert layout.relayout(model) == []


def test_the_timing_itself_runs_on_real_kernels(small) -> None:
    """No monkeypatching: whatever this CPU decides, the model still computes the same."""
    lm = tiny_model("qwen2")
    ids = [5, 6, 7, 8]
    before = Decoder(lm.model).forward(ids)
    moved = layout.relayout(lm.model)
    assert set(moved) <= set(layout.kinds(lm.model))
    torch.testing.assert_close(Decoder(lm.model).forward(ids), before, rtol=1e-4, atol=1e-4)


def test_training_loads_weights_in_torchs_order() -> None:
    assert Settings().model.relayout is True
    assert load_settings(Settings()).model.relayout is False
