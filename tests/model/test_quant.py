"""Weight-only int8/int4 layers: close to the float model, smaller, and loadable by spec."""

from __future__ import annotations

import threading

import pytest
import torch
from torch import nn

from model import fast, quant_saved
from model import quant as layers
from model.generate import Generator, SamplingSettings
from model.quant import Int4Linear, Int8Linear, quantize
from model.tiny import tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(("kind", "tolerance"), [(Int8Linear, 0.02), (Int4Linear, 0.15)])
@pytest.mark.parametrize("rows", [1, 3, 200])  # decode rows and a prompt's many rows
def test_layer_is_close_to_the_float_one(
    int8_kernel: str, kind: type[Int8Linear] | type[Int4Linear], tolerance: float, rows: int
) -> None:
    torch.manual_seed(0)
    linear = nn.Linear(256, 96, bias=True)
    x = torch.randn(1, rows, 256)
    expected = linear(x)
    got = kind.of(linear)(x)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    error = (got - expected).norm() / expected.norm()
    assert error < tolerance


@pytest.mark.parametrize("kind", [Int8Linear, Int4Linear])
@pytest.mark.parametrize("shape", [(256, 96), (64, 48)])  # 48 outputs: not whole int4 blocks
def test_a_prompts_float_matmul_agrees_with_the_packed_kernel(
    int8_kernel: str, kind: type[Int8Linear] | type[Int4Linear], shape: tuple[int, int], monkeypatch
) -> None:
    """The float copy (the int4 one unpacks torch's CPU layout by hand) is the kernel's weight:
    the two paths differ only by the kernel's bfloat16 activations."""
    torch.manual_seed(0)
    layer = kind.of(nn.Linear(*shape, bias=False))
    x = torch.randn(5, shape[0])
    monkeypatch.setattr(layers, "GEMM_ROWS", {"int8": 10**6, "int4": 10**6})
    kernel = layer(x)
    monkeypatch.setattr(layers, "GEMM_ROWS", {"int8": 1, "int4": 1})
    first, again = layer(x), layer(x)  # the second reuses the thread's buffer
    assert torch.equal(first, again)
    assert (first - kernel).norm() / kernel.norm() < 0.01


@pytest.mark.parametrize("kind", [Int8Linear, Int4Linear])
def test_a_prompt_outside_inference_mode_after_one_inside(int8_kernel, kind, monkeypatch) -> None:
    """The thread's buffer, first made during a decode step (inference mode), is written again
    by a forward outside it (the trainer's, transformers' generate)."""
    monkeypatch.setattr(layers, "_scratch", threading.local())
    layer, x = kind.of(nn.Linear(256, 96)), torch.randn(200, 256)
    with torch.inference_mode():
        inside = layer(x)
    with torch.no_grad():
        assert torch.equal(layer(x), inside)


def test_this_cpus_int4_layout_is_known() -> None:
    """torch packs int4 per the kernel it dispatches to (blocks of 64 outputs on AVX-512, 32
    on AVX2); on x86 one of the known layouts must match, or prompts lose the float path."""
    if torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"):
        assert layers.int4_layout() is not None


@pytest.mark.parametrize("layout", [(64, True), (32, True), (32, False)])
@pytest.mark.parametrize("outputs", [128, 96, 48])  # whole blocks, and partial last blocks
def test_every_known_int4_layout_unpacks_to_its_weight(layout, outputs, monkeypatch) -> None:
    """Each candidate layout, whatever this CPU's: packed as that layout, unpacked by
    `transposed`, the weight is the rounded one, output by output."""
    monkeypatch.setattr(layers.native, "ready", lambda: False)  # torch's kernel and its layouts
    torch.manual_seed(0)
    layer = Int4Linear.of(nn.Linear(64, outputs, bias=False))
    q = torch.randint(0, 16, (outputs, 64), dtype=torch.int32)
    layer.qweight = layers._pack_like(q, *layout)
    monkeypatch.setattr(layers, "int4_layout", lambda: layout)
    scale, zero = layer.scales_zeros.float().unbind(-1)  # each [in / 32, out]
    groups = torch.arange(64) // layers.GROUP
    expected = (q.t().float() - 8) * scale[groups] + zero[groups]
    assert torch.allclose(layer.transposed(torch.float32), expected, atol=1e-5)


@pytest.mark.parametrize("quant", ["int8", "int4"])
def test_quantized_model_keeps_most_greedy_choices(int8_kernel: str, quant: str) -> None:
    plain, lm = tiny_model("qwen2"), tiny_model("qwen2")
    quantize(lm.model, quant)
    linears = [m for m in lm.model.modules() if isinstance(m, nn.Linear)]
    assert not linears  # every linear layer swapped; int4 leaves the vocabulary head int8
    assert isinstance(lm.model.lm_head, Int8Linear)
    assert hasattr(lm.model.model.layers[0].self_attn, "qkv_proj")  # fused, then quantized
    ids = torch.tensor([list(range(3, 120))])
    with torch.no_grad():
        a, b = plain.model(ids).logits[0], lm.model(ids).logits[0]
    # A wide-init random model amplifies every error layer after layer (int4's too much to
    # bound here); the real model's test below is the quality check.
    if quant == "int8":
        assert (a - b).norm() / a.norm() < 0.15
    done = Generator(lm).complete(list(range(3, 30)), SamplingSettings(max_new_tokens=8))
    assert len(done.token_ids) == 8


def test_quantized_weights_are_smaller() -> None:
    def nbytes(model: nn.Module) -> int:
        tensors = [*model.parameters(), *model.buffers()]
        return sum(t.numel() * t.element_size() for t in tensors)

    plain = nbytes(tiny_model("llama").model)
    sizes = {q: nbytes(quantize(tiny_model("llama").model, q)) for q in ("int8", "int4")}
    assert sizes["int4"] < sizes["int8"] < plain


def test_loader_quantizes_by_setting_and_merges_an_adapter_first(
    tmp_path, saved_with_adapter
) -> None:
    from model.loaded import ModelLoadError
    from model.loader import load

    folder, _, adapted = saved_with_adapter()
    ids = torch.tensor([list(range(3, 60))])
    with torch.no_grad():
        want = adapted(ids).logits[0].argmax(-1)
    cache = tmp_path / "cache"
    got = load(str(folder), adapter=str(tmp_path / "adapter"), quant="int8", cache=cache)
    assert got.quant == "int8"
    assert not [m for m in got.model.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        agree = (got.model(ids).logits[0].argmax(-1) == want).float().mean()
    assert agree > 0.8  # the adapter's change survived quantization
    # Saved with the adapter merged: the next start reads it, without the adapter another file.
    again = load(str(folder), adapter=str(tmp_path / "adapter"), quant="int8", cache=cache)
    assert len(list((cache / "quantized").glob("*.safetensors"))) == 1
    with torch.no_grad():
        torch.testing.assert_close(again.model(ids).logits, got.model(ids).logits)
    plain = load(str(folder), adapter="none", quant="int8", cache=cache)
    assert len(list((cache / "quantized").glob("*.safetensors"))) == 2
    with torch.no_grad():
        assert not torch.allclose(plain.model(ids).logits, got.model(ids).logits)
    # Retrained in the same folder: its new file replaces the old one, the plain one stays.
    before = {f.name for f in (cache / "quantized").glob("*.safetensors")}
    saved_with_adapter(scale=1.0)
    retrained = load(str(folder), adapter=str(tmp_path / "adapter"), quant="int8", cache=cache)
    after = {f.name for f in (cache / "quantized").glob("*.safetensors")}
    assert len(after) == 2 and len(after & before) == 1  # the adapter's file is a new one
    with torch.no_grad():
        assert not torch.allclose(retrained.model(ids).logits, got.model(ids).logits)
    (tmp_path / "adapter" / "adapter_config.json").unlink()  # broken: refused, cache or not
    with pytest.raises(ModelLoadError, match="not a LoRA adapter folder"):
        load(str(folder), adapter=str(tmp_path / "adapter"), quant="int8", cache=cache)


TEXT = (
    "The lighthouse stood at the end of the harbour wall. Every evening the keeper climbed the "
    "ninety steps, trimmed the wick and wound the clockwork that turned the lens. Ships coming "
    "home from the north saw its beam long before they saw the town, and in the winter storms "
    "the fishermen's wives watched it from their windows, counting the flashes."
)


@pytest.mark.slow
@pytest.mark.parametrize("quant", ["int8", "int4"])
def test_real_model_quantized_predicts_like_the_float_one(quant: str) -> None:
    """SmolLM2 teacher-forced on a paragraph: the next-token choice rarely changes."""
    from model.loader import load

    plain, small = load("smollm2"), load("smollm2", quant=quant)
    ids = plain.tokenizer(TEXT, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        a, b = plain.model(ids).logits[0], small.model(ids).logits[0]
        # Decode steps take the packed kernels (one row at a time), and so does a prompt under
        # `GEMM_ROWS` rows; longer ones a float matmul (the other test above).
        step = Generator(small)._forward(ids[0].tolist())
    kl = torch.nn.functional.kl_div(
        b.log_softmax(-1), a.log_softmax(-1), log_target=True, reduction="batchmean"
    )
    assert kl < 0.02  # mean nats per position (measured: 0.006 int8, 0.0014 int4 in our blocks)
    agree = (a.argmax(-1) == b.argmax(-1)).float().mean()
    assert agree > 0.9
    # The packed kernels return bfloat16: logits within 0.4% of each other may tie.
    assert (step - b[-1]).abs().max() < 0.25
    assert int(step.argmax()) in b[-1].topk(3).indices.tolist()


@pytest.mark.slow
@pytest.mark.usefixtures("ours")
def test_smollm2s_layers_come_back_exactly_from_int4_blocks() -> None:
    """Its GGUF holds every layer in Q4_1 (32 inputs, q * d + m, d and m float16): our int4
    blocks round nothing, which is why int4 is SmolLM2's CPU default (`Embedded.cpu_quant`)."""
    from model.loader import load

    plain, small = load("smollm2"), load("smollm2", quant="int4")
    assert small.quant == "int4"
    layers = [m for m in small.model.modules() if isinstance(m, Int4Linear)]
    assert len(layers) == 4 * plain.model.config.num_hidden_layers  # qkv, o, gate_up, down
    fast.fuse(plain.model)  # the same fused projections, as floats
    floats = dict(plain.model.named_modules())
    for name, layer in small.model.named_modules():
        if isinstance(layer, Int4Linear):
            assert layer.blocked
            assert torch.equal(layer.unblocked(torch.float32), floats[name].weight.float())


@pytest.mark.parametrize("quant", ["int8", "int4"])
def test_quantized_weights_are_saved_and_read_back_at_the_next_start(
    int8_kernel: str, tmp_path, quant
) -> None:
    from model.loader import load

    lm = tiny_model("llama")
    folder, cache = tmp_path / "model", tmp_path / "cache"
    lm.model.save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)
    first = load(str(folder), quant=quant, cache=cache)
    saved = list((cache / "quantized").glob("*.safetensors"))
    assert len(saved) == 1 and quant in saved[0].name
    again = load(str(folder), quant=quant, cache=cache)  # built on meta, tensors assigned
    ids = torch.tensor([list(range(3, 50))])
    with torch.no_grad():
        torch.testing.assert_close(again.model(ids).logits, first.model(ids).logits)
    a = Generator(first).complete(list(range(3, 20)), SamplingSettings(max_new_tokens=10))
    b = Generator(again).complete(list(range(3, 20)), SamplingSettings(max_new_tokens=10))
    assert a.token_ids == b.token_ids  # the rotary buffers (not in the file) rebuilt right
    assert again.stop_token_ids == first.stop_token_ids
    saved[0].write_bytes(b"not a safetensors file")  # a torn or foreign file: quantize anew
    third = load(str(folder), quant=quant, cache=cache)
    with torch.no_grad():
        torch.testing.assert_close(third.model(ids).logits, first.model(ids).logits)
    whole = saved[0].read_bytes()
    saved[0].write_bytes(whole[: len(whole) // 2])  # cut short: read, it would be zeros
    with pytest.raises(ValueError, match="cut short"):
        quant_saved.read_copied(saved[0])
    fourth = load(str(folder), quant=quant, cache=cache)
    with torch.no_grad():
        torch.testing.assert_close(fourth.model(ids).logits, first.model(ids).logits)


@pytest.mark.parametrize("quant", ["int8", "int4"])
def test_a_tied_table_is_the_heads_rows_and_saved_once(
    int8_kernel: str, quant: str, tmp_path
) -> None:
    from model.loader import load

    lm = tiny_model("llama")  # tied, as SmolLM2
    folder, cache = tmp_path / "model", tmp_path / "cache"
    lm.model.save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)
    got = load(str(folder), quant=quant, cache=cache)
    table, head = got.model.get_input_embeddings(), got.model.get_output_embeddings()
    assert isinstance(table, layers.HeadRows) and isinstance(head, Int8Linear)
    ids = torch.tensor([[0, 5, 17, 63, 64, 200]])
    weight = head.qweight
    if head.blocked:  # [out/16, in/16, 16, 16] back to rows
        weight = weight.permute(0, 2, 1, 3).reshape(head.padded, -1)
    rows = weight[ids[0]].float() * head.scales[ids[0]].float()[:, None]
    torch.testing.assert_close(table(ids)[0], rows)
    original = lm.model.get_input_embeddings().weight[ids[0]].detach()
    step = original.abs().amax(-1, keepdim=True) / 127
    assert ((table(ids)[0] - original).abs() <= step * 0.51).all()  # the table, rounded once
    (saved,) = (cache / "quantized").glob("*.safetensors")
    names = quant_saved.read(saved).keys()
    assert not [n for n in names if "embed_tokens" in n]  # the table once, as the head
    again = load(str(folder), quant=quant, cache=cache)
    assert isinstance(again.model.get_input_embeddings(), layers.HeadRows)
    with torch.no_grad():
        torch.testing.assert_close(again.model(ids).logits, got.model(ids).logits)
    untied = tiny_model("qwen2")
    untied.model.config.tie_word_embeddings = False
    untied.model.lm_head.weight = nn.Parameter(untied.model.lm_head.weight.detach().clone())
    quantize(untied.model, quant)
    assert isinstance(untied.model.get_input_embeddings(), layers.Int8Embedding)


@pytest.mark.parametrize("cap", ["AVX2", "avx512_core"])
def test_onednn_capped_below_bfloat16_counts_as_a_cpu_without_it(cap, monkeypatch) -> None:
    """ONEDNN_MAX_CPU_ISA below AVX512_CORE_BF16 makes oneDNN emulate bfloat16 products, so
    prompts stay in float32 there, as on a CPU that lacks them."""
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    layers.native_bf16.cache_clear()
    try:
        assert layers.native_bf16() is False
        assert layers.gemm_dtype(torch.float32) == torch.float32
    finally:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
        layers.native_bf16.cache_clear()
