"""`model.lean`: Llama and Qwen2 built without transformers' classes are the same model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from model.batch import complete_many
from model.generate import Generator, SamplingSettings
from model.lean import CausalLM, read_config
from model.loader import load, resolve
from model.tiny import tiny_model
from model.tokenizer import LightTokenizer, from_folder

pytestmark = pytest.mark.usefixtures("one_thread")

IDS = list(range(3, 90))
TOOLS = [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {}}}]
CHAT = [{"role": "user", "content": "Turn on the lights <|im_end|> please"}]


def saved(tmp_path: Path, arch: str, tied: bool = True) -> Path:
    lm = tiny_model(arch)
    lm.model.config.tie_word_embeddings = tied
    if not tied:  # a head of its own, different from the table
        lm.model.lm_head.weight = torch.nn.Parameter(lm.model.lm_head.weight.detach().clone() * 2)
    folder = tmp_path / arch
    lm.model.save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.parametrize(("arch", "tied"), [("qwen2", True), ("llama", True), ("qwen2", False)])
def test_same_logits_text_and_tokens_as_transformers(tmp_path: Path, arch: str, tied: bool) -> None:
    folder = saved(tmp_path, arch, tied)
    ours, theirs = load(str(folder), lean=True), load(str(folder))
    assert isinstance(ours.model, CausalLM) and isinstance(ours.tokenizer, LightTokenizer)
    assert not isinstance(theirs.model, CausalLM)
    ids = torch.tensor([IDS])
    with torch.no_grad():
        torch.testing.assert_close(ours.model(ids).logits, theirs.model(ids).logits)
    settings = SamplingSettings(max_new_tokens=12)
    a = Generator(ours).complete(IDS[:20], settings)
    b = Generator(theirs).complete(IDS[:20], settings)
    assert a.token_ids == b.token_ids
    assert ours.stop_token_ids == theirs.stop_token_ids and ours.tool_format == theirs.tool_format
    # transformers' Qwen2 class adds an unk token of its own to a config without one; the
    # embedded models' configs name theirs (the slow test below compares them whole).
    assert ours.tokenizer.special_tokens_map.items() <= theirs.tokenizer.special_tokens_map.items()
    assert set(ours.tokenizer.all_special_tokens) == set(theirs.tokenizer.all_special_tokens)
    text = theirs.tokenizer.apply_chat_template(CHAT, tools=TOOLS, tokenize=False)
    assert ours.tokenizer.apply_chat_template(CHAT, tools=TOOLS, tokenize=False) == text
    assert ours.tokenizer(text)["input_ids"] == theirs.tokenizer(text)["input_ids"]
    assert (ours.tokenizer.eos_token_id, ours.tokenizer.pad_token_id) == (
        theirs.tokenizer.eos_token_id,
        theirs.tokenizer.pad_token_id,
    )


def test_batched_decoding_of_a_lean_model_is_transformers_one_by_one(tmp_path: Path) -> None:
    folder = saved(tmp_path, "llama")
    ours, theirs = Generator(load(str(folder), lean=True)), Generator(load(str(folder)))
    prompts = [list(range(3, 3 + n)) for n in (5, 40, 1, 17)]
    settings = SamplingSettings(max_new_tokens=15)
    batched = dict(complete_many(ours, prompts, settings, slots=3))
    for i, prompt in enumerate(prompts):
        assert batched[i].token_ids == theirs.complete(prompt, settings).token_ids


@pytest.mark.parametrize("quant", ["int8", "int4"])
def test_quantized_lean_model_is_saved_and_read_back(tmp_path: Path, quant: str) -> None:
    folder, cache = saved(tmp_path, "qwen2"), tmp_path / "cache"
    theirs = load(str(folder), quant=quant, cache=tmp_path / "other")
    first = load(str(folder), quant=quant, cache=cache, lean=True)
    again = load(str(folder), quant=quant, cache=cache, lean=True)  # from the saved file
    assert len(list((cache / "quantized").glob("*.safetensors"))) == 1
    ids = torch.tensor([IDS])
    with torch.no_grad():
        want = theirs.model(ids).logits
        for lm in (first, again):
            assert isinstance(lm.model, CausalLM)
            torch.testing.assert_close(lm.model(ids).logits, want)


@pytest.mark.parametrize("arch", ["lfm2", "gemma3"])
def test_other_architectures_are_left_to_transformers(tmp_path: Path, arch: str) -> None:
    folder = saved(tmp_path, arch)
    assert read_config(folder) is None
    assert not isinstance(load(str(folder), lean=True).model, CausalLM)


@pytest.mark.parametrize(
    "change",
    [
        {"rope_parameters": {"rope_type": "llama3", "rope_theta": 1e4, "factor": 8.0}},
        {"use_sliding_window": True},
        {"hidden_act": "gelu"},
    ],
)
def test_configs_it_does_not_cover_are_left_to_transformers(tmp_path: Path, change: dict) -> None:
    folder = saved(tmp_path, "qwen2")
    path = folder / "config.json"
    assert read_config(folder) is not None
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    assert read_config(folder) is None


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["smollm2", "qwen2.5-coder-0.5b"])
def test_embedded_tokenizers_read_as_transformers_reads_them(spec: str) -> None:
    from transformers import AutoTokenizer

    folder, _ = resolve(spec, online=False)
    assert folder is not None
    ours, theirs = from_folder(folder), AutoTokenizer.from_pretrained(folder)
    assert ours is not None
    assert ours.special_tokens_map == theirs.special_tokens_map
    assert ours.all_special_tokens == list(theirs.all_special_tokens)
    assert {i: (t.content, t.special) for i, t in ours.added_tokens_decoder.items()} == {
        i: (t.content, t.special) for i, t in theirs.added_tokens_decoder.items()
    }
    assert len(ours) == len(theirs) and ours.chat_template == theirs.chat_template
    text = theirs.apply_chat_template(CHAT, tools=TOOLS, tokenize=False, add_generation_prompt=True)
    assert (
        ours.apply_chat_template(CHAT, tools=TOOLS, tokenize=False, add_generation_prompt=True)
        == text
    )
    for sample in (text, " déjà vu  \t\n 3.14 <tool_call>{}</tool_call> 日本語"):
        ids = theirs(sample, add_special_tokens=False)["input_ids"]
        assert ours(sample)["input_ids"] == ids
        assert ours.decode(ids) == theirs.decode(ids)


@pytest.mark.slow
@pytest.mark.parametrize("quant", ["none", "int8"])
def test_the_embedded_model_starts_without_transformers_or_dynamo(quant: str) -> None:
    """The point of the module: a start that never imports transformers (nor torch._dynamo,
    which meta-device arithmetic pulls in), and still answers. The second start of int8
    reads the weights the first one saved."""
    code = (
        "import sys\n"
        "from model.loader import load\n"
        "from model.generate import Generator, SamplingSettings\n"
        f"lm = load('smollm2', lean=True, quant='{quant}', relayout=True)\n"
        "ids = lm.tokenizer.apply_chat_template([{'role': 'user', 'content': 'Hi'}],"
        " add_generation_prompt=True)\n"
        "done = Generator(lm).complete(ids, SamplingSettings(max_new_tokens=4))\n"
        "print(len(done.token_ids), 'transformers' in sys.modules, 'torch._dynamo' in sys.modules)"
    )
    for _ in range(2):
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["4", "False", "False"]
