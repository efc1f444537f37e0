"""Shared fixtures: tiny random models (seconds) and the real embedded models (marked slow)."""

from __future__ import annotations

import os
import tempfile

import pytest

# Nothing in the tests may reach a model hub; transformers and huggingface_hub honour these.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Episodes the tests run go to a throwaway log, not the user's.
os.environ["EDGEAGENT_LOG"] = os.path.join(tempfile.mkdtemp(prefix="edgeagent-test-"), "log.jsonl")
# A developer's running `edgeagent serve` must not answer for the tests' in-process models.
os.environ["EDGEAGENT_SERVER"] = "none"

_tiny_cache: dict[str, object] = {}


@pytest.fixture
def tiny():
    """tiny("qwen2" | "llama" | "lfm2" | "gemma3") -> LoadedModel, built once per session."""
    from model.tiny import tiny_model

    def make(arch: str = "qwen2"):
        if arch not in _tiny_cache:
            _tiny_cache[arch] = tiny_model(arch)  # type: ignore[arg-type]
        return _tiny_cache[arch]

    return make


@pytest.fixture
def one_thread():
    """One torch thread for a tiny training step: on shared cores, OpenMP's waiting threads
    make it ~100x slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def lora_adapter(one_thread):
    """lora_adapter(folder, seed=0) -> logits: saves a tiny qwen2 model's LoRA adapter with
    non-zero weights to `folder` and returns the adapted model's logits on four tokens."""
    import torch

    from model.tiny import tiny_model
    from model.train.lora import LoraSettings, attach, save_adapter

    def make(folder, seed: int = 0) -> torch.Tensor:
        torch.manual_seed(seed)
        model = attach(tiny_model("qwen2").model, LoraSettings(rank=4, dropout=0.0))
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.5)  # peft starts B at zero: an untrained adapter is a no-op
        save_adapter(model, folder)
        with torch.no_grad():
            return model(input_ids=torch.tensor([[5, 6, 7, 8]])).logits

    return make


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory):
    """A tiny qwen2 model saved as a Hugging Face folder, for commands that take --model."""
    from model.tiny import tiny_model

    lm = tiny_model("qwen2")
    folder = tmp_path_factory.mktemp("tiny-qwen2")
    lm.model.save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def embedded_lm():
    """The embedded default model with its real weights (converted into the cache once)."""
    from model.loader import load

    return load("embedded")


@pytest.fixture(scope="session")
def smollm2_lm():
    from model.loader import load

    return load("smollm2")
