"""`model.prepared`: the merged, moved float weights are saved once and read back as the same
model, a new adapter makes a new file (the stale one goes), a torn file is prepared again."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model import layout
from model.lean import CausalLM
from model.loader import load

pytestmark = pytest.mark.usefixtures("one_thread")

IDS = torch.tensor([list(range(3, 70))])


@pytest.fixture
def moving(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every projection kind of a tiny model counts as large and as faster moved."""
    monkeypatch.setattr(layout, "MIN_BYTES", 0)
    monkeypatch.setattr(layout, "_pays", lambda weights: True)


def prepared_files(cache: Path) -> list[Path]:
    return sorted((cache / "prepared").glob("*.safetensors"))


def test_saved_once_then_read_back_as_the_same_model(
    tmp_path: Path, saved_with_adapter, moving
) -> None:
    folder, adapter, _ = saved_with_adapter()
    cache = tmp_path / "cache"
    want = load(str(folder), adapter=str(adapter))  # transformers, merged, torch's order
    first = load(str(folder), adapter=str(adapter), cache=cache, relayout=True, lean=True)
    assert len(prepared_files(cache)) == 1
    again = load(str(folder), adapter=str(adapter), cache=cache, relayout=True, lean=True)
    assert isinstance(again.model, CausalLM)
    assert again.moved == first.moved and "lm_head" in again.moved
    assert layout.is_moved(again.model.lm_head)  # the same transposed view, read from the file
    assert again.model.lm_head.weight is again.model.model.embed_tokens.weight  # still tied
    with torch.no_grad():
        expected = want.model(IDS).logits
        for lm in (first, again):
            torch.testing.assert_close(lm.model(IDS).logits, expected)


def test_a_new_adapter_makes_a_new_file_and_the_stale_one_goes(
    tmp_path: Path, saved_with_adapter, moving
) -> None:
    folder, adapter, _ = saved_with_adapter()
    cache = tmp_path / "cache"
    load(str(folder), adapter=str(adapter), cache=cache, relayout=True, lean=True)
    old = prepared_files(cache)
    saved_with_adapter(scale=1.0)  # retrained: new weights in the same folder
    lm = load(str(folder), adapter=str(adapter), cache=cache, relayout=True, lean=True)
    new = prepared_files(cache)
    assert len(new) == 1 and new != old
    want = load(str(folder), adapter=str(adapter))
    with torch.no_grad():
        torch.testing.assert_close(lm.model(IDS).logits, want.model(IDS).logits)


def test_a_torn_file_is_prepared_again(tmp_path: Path, saved_with_adapter, moving) -> None:
    folder, adapter, _ = saved_with_adapter()
    cache = tmp_path / "cache"
    first = load(str(folder), adapter=str(adapter), cache=cache, relayout=True, lean=True)
    prepared_files(cache)[0].write_bytes(b"torn")
    again = load(str(folder), adapter=str(adapter), cache=cache, relayout=True, lean=True)
    with torch.no_grad():
        torch.testing.assert_close(again.model(IDS).logits, first.model(IDS).logits)
    assert prepared_files(cache)[0].stat().st_size > 1000


def test_nothing_to_prepare_without_adapter_or_relayout(tmp_path: Path, saved_with_adapter) -> None:
    folder, _, _ = saved_with_adapter()
    cache = tmp_path / "cache"
    lm = load(str(folder), adapter="none", cache=cache, relayout=False, lean=True)
    assert isinstance(lm.model, CausalLM) and not prepared_files(cache)
