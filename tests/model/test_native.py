"""Our C++ kernels (`model/native.cpp`) against torch's own ops, and in a decode step."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from model import fast, native
from model.quant import BLOCK, GROUP, Int4Linear, Int8Linear, quantize, to_blocks, to_blocks4
from model.tiny import tiny_model

pytestmark = pytest.mark.usefixtures("ours")


def ops():  # noqa: ANN201 - torch's op namespace has no useful type
    return torch.ops.edgeagent


@pytest.mark.parametrize("rows", [1, 5, 63])
@pytest.mark.parametrize(("outputs", "inputs"), [(32, 16), (96, 256), (1152, 896)])
def test_int8_linear_is_the_product_with_the_dequantized_weight(rows, outputs, inputs) -> None:
    torch.manual_seed(0)
    q = torch.randint(-127, 128, (outputs, inputs), dtype=torch.int8)
    scales = torch.rand(outputs) / 100
    x = torch.randn(rows, inputs)
    got = ops().int8_linear(x, to_blocks(q), scales)
    want = (x.double() @ q.double().t()) * scales.double()
    assert got.shape == (rows, outputs) and got.dtype == torch.float32
    assert ((got.double() - want).abs().max() / want.abs().max()) < 1e-5


def test_int8_linear_refuses_what_it_cannot_read() -> None:
    q = to_blocks(torch.zeros(32, 32, dtype=torch.int8))
    with pytest.raises(RuntimeError, match="float32"):
        ops().int8_linear(torch.zeros(1, 32, dtype=torch.float64), q, torch.ones(32))
    with pytest.raises(RuntimeError, match="inputs differ"):
        ops().int8_linear(torch.zeros(1, 48), q, torch.ones(32))
    with pytest.raises(RuntimeError, match="out/16"):
        ops().int8_linear(torch.zeros(1, 32), torch.zeros(32, 32, dtype=torch.int8), torch.ones(32))


def q4_1_weight(outputs: int, inputs: int) -> torch.Tensor:
    """Weights as a 4-bit GGUF (Q4_1) holds them: per group of 32 inputs, q * d + m with q in
    0..15 (each group using both ends) and d, m float16."""
    q = torch.randint(0, 16, (outputs, inputs // GROUP, GROUP))
    q[..., 0], q[..., 1] = 0, 15
    d = (torch.rand(outputs, inputs // GROUP, 1) / 50).half().float()
    m = (-torch.rand(outputs, inputs // GROUP, 1) / 5).half().float()
    return (q * d + m).reshape(outputs, inputs)


@pytest.mark.parametrize("rows", [1, 5, 63])
@pytest.mark.parametrize(("outputs", "inputs"), [(16, 32), (96, 256), (1152, 896)])
def test_int4_blocks_hold_a_4bit_gguf_weight_exactly_and_multiply_it(rows, outputs, inputs) -> None:
    torch.manual_seed(0)
    w = q4_1_weight(outputs, inputs)
    layer = Int4Linear(inputs, outputs, False, torch.float32)
    assert layer.blocked
    layer.qweight, layer.scales = to_blocks4(w)
    assert torch.equal(layer.unblocked(torch.float32), w)  # every weight as it was
    x = torch.randn(rows, inputs)
    got = ops().int4_linear(x, layer.qweight, layer.scales)
    want = x.double() @ w.double().t()
    assert got.shape == (rows, outputs) and got.dtype == torch.float32
    assert ((got.double() - want).abs().max() / want.abs().max()) < 1e-5


@pytest.mark.parametrize("rows", [2, 200])  # decode rows, and a prompt's float matmul
def test_an_int4_layer_rounds_any_weight_to_its_group_lattice(rows: int) -> None:
    torch.manual_seed(0)
    linear = nn.Linear(128, 48)
    layer = Int4Linear.of(linear)
    assert layer.blocked and layer.qweight.shape == (48 // BLOCK, 128 // GROUP, BLOCK, GROUP // 2)
    weight = layer.unblocked(torch.float32).clone()
    span = linear.weight.reshape(48, 4, GROUP).aminmax(dim=-1)
    step = ((span.max - span.min) / 15).repeat_interleave(GROUP, -1).reshape(48, 128)
    assert ((weight - linear.weight).abs() <= step * 0.51 + 1e-3).all()  # half a step, float16
    x = torch.randn(rows, 128)
    want = nn.functional.linear(x, weight, linear.bias)
    got = layer(x)
    tolerance = 2e-2 if rows >= 128 else 1e-5  # a prompt's matmul may be bfloat16 here
    assert ((got - want).abs().max() / want.abs().max()) < tolerance


def test_int4_linear_refuses_what_it_cannot_read() -> None:
    q, dm = to_blocks4(torch.randn(32, 64))
    with pytest.raises(RuntimeError, match="inputs differ"):
        ops().int4_linear(torch.zeros(1, 32), q, dm)
    with pytest.raises(RuntimeError, match="float16"):
        ops().int4_linear(torch.zeros(1, 64), q, dm.float())


@pytest.mark.parametrize("rows", [2, 100])  # decode rows, and a prompt's float matmul
def test_a_layer_takes_our_kernel_with_outputs_padded_to_whole_blocks(rows: int) -> None:
    torch.manual_seed(0)
    whole, ragged = Int8Linear.of(nn.Linear(64, 48)), Int8Linear.of(nn.Linear(64, 40))
    assert whole.blocked and whole.qweight.shape == (48 // BLOCK, 64 // BLOCK, BLOCK, BLOCK)
    assert ragged.blocked and ragged.qweight.shape == (48 // BLOCK, 64 // BLOCK, BLOCK, BLOCK)
    assert not Int8Linear.of(nn.Linear(40, 48)).blocked  # inputs are never padded: torch's
    x = torch.randn(rows, 64)
    for layer in (whole, ragged):
        blocks = layer.qweight.permute(0, 2, 1, 3).reshape(layer.padded, -1)
        weight = blocks.float() * layer.scales[:, None]
        want = (x @ weight.t())[:, : layer.out_features] + layer.bias
        got = layer(x)
        assert got.shape == want.shape
        assert (got - want).norm() / want.norm() < (1e-5 if rows < 64 else 0.01)


def test_rms_norm_and_silu_mul_match_torch() -> None:
    torch.manual_seed(0)
    x, weight = torch.randn(3, 7, 896), torch.rand(896)
    want = F.rms_norm(x, (896,), weight, 1e-6)
    torch.testing.assert_close(ops().rms_norm(x, weight, 1e-6), want)
    gate_up = torch.randn(2, 1, 2 * 100)
    gate, up = gate_up.chunk(2, dim=-1)
    torch.testing.assert_close(ops().silu_mul(gate_up), F.silu(gate) * up)


@pytest.mark.parametrize("length", [1, 37, 300])
@pytest.mark.parametrize(("heads", "kv_heads"), [(14, 2), (4, 4)])
def test_decode_attention_matches_sdpa(length: int, heads: int, kv_heads: int) -> None:
    torch.manual_seed(0)
    q = torch.randn(1, heads, 64, 1).transpose(2, 3)  # a view, as the rotated query is
    keys, values = torch.randn(2, 1, kv_heads, 512, 64).unbind(0)
    got = ops().decode_attention(q, keys, values, length, 0.125)
    want = F.scaled_dot_product_attention(
        q, keys[:, :, :length], values[:, :, :length], scale=0.125, enable_gqa=True
    )
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("quant", ["int8", "int4"])
@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_a_decode_step_with_our_layer_is_torchs(arch: str, quant: str, monkeypatch) -> None:
    """Same quantized model, same tokens: the step with each layer as one call of ours
    (`decode_layer`: norm, q/k/v with Qwen2's bias, rotary, cache, attention, MLP) gives the
    logits of the step with torch's ops, and the same greedy tokens."""
    lm = tiny_model(arch)
    quantize(lm.model, quant)
    prompt, logits = list(range(3, 40)), {}
    for ours in (True, False):
        monkeypatch.setattr(native, "ready", lambda ours=ours: ours)
        decoder, tokens, steps = fast.Decoder(lm.model), [], []
        step = decoder.forward(prompt)
        for _ in range(6):
            tokens.append(int(step.argmax()))
            step = decoder.forward(tokens[-1:])
            steps.append(step)
        assert decoder._fused() is ours  # the layers qualify; `native.ready` decides
        logits[ours] = (tokens, torch.stack(steps))
    assert logits[True][0] == logits[False][0]
    torch.testing.assert_close(logits[True][1], logits[False][1], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"CXX": "/nonexistent/g++"}, "no C++ compiler"),
        ({"CXX": "false"}, "unavailable"),
        ({"EDGEAGENT_NATIVE": "0"}, "off"),
    ],
)
def test_without_a_compiler_or_when_turned_off_the_layers_take_torchs_kernel(
    tmp_path, monkeypatch, env: dict[str, str], said: str
) -> None:
    monkeypatch.setattr(native, "_loaded", [])  # as in a fresh process
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    heard: list[str] = []
    assert native.load(tmp_path, heard.append) is False
    assert said in heard[-1] and "torch's ops" in heard[-1]
    assert not native.ready() and not list(tmp_path.glob("native/*"))  # no half-built file
    layer = Int8Linear.of(nn.Linear(64, 48))
    assert not layer.blocked and layer.refine == 0  # torch's layout: still a working layer
    assert layer(torch.randn(2, 64)).shape == (2, 48)


CHECK = """
import sys, torch
from model.quant import to_blocks, to_blocks4
torch.ops.load_library(sys.argv[1])
torch.manual_seed(0)
q, s = torch.randint(-127, 128, (96, 256), dtype=torch.int8), torch.rand(96) / 100
x = torch.randn(3, 256)
got = torch.ops.edgeagent.int8_linear(x, to_blocks(q), s).double()
want = (x.double() @ q.double().t()) * s.double()
error = float((got - want).abs().max() / want.abs().max())
w = torch.randn(96, 256)
q4, dm = to_blocks4(w)
d, m = dm.float().unbind(2)  # [out/16, in/32, 16]: w = q * d + m, q unpacked here
q = torch.cat([q4 & 15, q4 >> 4], -1).float()  # [out/16, in/32, 16, 32]
w = (q * d[..., None] + m[..., None]).permute(0, 2, 1, 3).reshape(96, 256)
got = torch.ops.edgeagent.int4_linear(x, q4, dm).double()
want = x.double() @ w.double().t()
print(max(error, float((got - want).abs().max() / want.abs().max())))
"""


@pytest.mark.slow
@pytest.mark.parametrize("without", [["-mno-avx512f"], ["-mno-avx512f", "-mno-avx2", "-mno-fma"]])
def test_the_avx2_and_plain_paths_compute_the_same_product(tmp_path, without) -> None:
    """A CPU without AVX-512 (or without AVX2) builds the other branches of native.cpp: built
    here with those extensions turned off, each gives the product (run in a process of its own:
    a process registers the `edgeagent` ops once)."""
    if not torch.backends.cpu.get_cpu_capability().startswith("AVX"):
        pytest.skip("not an x86 CPU with AVX2")
    library = tmp_path / "native.so"
    flags = native._flags()
    subprocess.run(["g++", str(native.SOURCE), *flags, *without, "-o", str(library)], check=True)
    done = subprocess.run([sys.executable, "-c", CHECK, str(library)], capture_output=True,
                          text=True, check=True)  # fmt: skip
    assert float(done.stdout) < 1e-5


def test_another_target_is_built_under_its_own_key(monkeypatch) -> None:
    """$EDGEAGENT_NATIVE_MARCH builds for another target (AVX2 only, to measure what such a CPU
    gets), into a file of its own: the native build is not taken for it, nor it for the native."""
    native_key = native._key("g++")
    monkeypatch.setenv("EDGEAGENT_NATIVE_MARCH", "x86-64-v3")
    assert "-march=x86-64-v3" in native._flags() and "-march=native" not in native._flags()
    assert native._key("g++") != native_key
