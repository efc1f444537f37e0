"""Fixtures of the model tests: a tiny model saved as a folder, with a LoRA adapter of its own."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from model import native
from model.tiny import tiny_model

Saved = Callable[..., tuple[Path, Path, Any]]


@pytest.fixture
def saved_with_adapter(tmp_path: Path) -> Saved:
    """`make(scale)` saves a tiny Qwen2 into tmp_path/model and a LoRA adapter whose B weights
    are drawn with `scale` into tmp_path/adapter (again: the same folders, new files); returns
    both folders and the adapted (peft) model."""
    pytest.importorskip("peft")
    from model.train.lora import attach, save_adapter

    def make(scale: float = 0.5) -> tuple[Path, Path, Any]:
        lm = tiny_model("qwen2")
        folder = tmp_path / "model"
        lm.model.save_pretrained(folder)
        lm.tokenizer.save_pretrained(folder)
        adapted = attach(tiny_model("qwen2").model)
        torch.manual_seed(1)
        with torch.no_grad():
            for name, p in adapted.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, scale)
        save_adapter(adapted, tmp_path / "adapter")
        return folder, tmp_path / "adapter", adapted

    return make


@pytest.fixture(scope="session")
def native_built(tmp_path_factory: pytest.TempPathFactory) -> bool:
    """Our kernels built once for the whole session (a process loads them once)."""
    return native.load(tmp_path_factory.mktemp("cache"))


@pytest.fixture
def ours(native_built: bool) -> None:
    """Our kernels loaded; skipped only where no compiler could build them."""
    if not native_built:
        if shutil.which(os.environ.get("CXX", "g++")) is None:
            pytest.skip("no C++ compiler: our kernels cannot be built here")
        pytest.fail("our kernels did not build although a compiler is here")


@pytest.fixture(params=["ours", "torch"])
def int8_kernel(request: pytest.FixtureRequest, monkeypatch) -> str:
    """Layers built in this test take our kernel (`model.native`) or torch's."""
    if request.param == "ours":
        request.getfixturevalue("ours")
    else:
        monkeypatch.setattr(native, "ready", lambda: False)
    return request.param
