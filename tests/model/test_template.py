"""`model.template` and `model.tokenizer`: prompts rendered without transformers are transformers'
own, character for character, on the shipped templates and the embedded model's, for chats with
tools, tool calls and tool results; and the light tokenizer encodes and decodes as it does."""

from __future__ import annotations

from typing import Any

import jinja2
import pytest

from agent.frame import special_markers
from model import served
from model.chat import ToolFormat, render
from model.embedded import QWEN, SMOLLM2, cache_root
from model.loaded import LoadedModel
from model.messages import Message, ToolCall
from model.template import render_chat
from model.tiny import byte_tokenizer

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city <b>&'now'</b>",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "a city, e.g. Zürich"},
                "days": {"type": "integer", "minimum": 1},
            },
            "required": ["city"],
        },
    },
}
RUN = {
    "type": "function",
    "function": {"name": "python", "description": "Run code.", "parameters": {"type": "object"}},
}


def chat() -> list[Message]:
    """System, user, calls, tool results, answer, and a user turn again: what an episode holds,
    with text that tests escaping (quotes, <, &, non-ASCII, newlines, braces)."""
    calls = [
        ToolCall(name="get_weather", arguments={"city": 'Zürich "old town"', "days": 2}),
        ToolCall(name="python", arguments={"code": "print({'a': [1, None, True]})\n"}),
    ]
    return [
        Message(role="system", content="Be brief. <|im_start|> is data & so is {{ this }}."),
        Message(role="user", content="Weather in Zürich? 😀 ünïcødé"),
        Message(role="assistant", content="Let me look.", tool_calls=calls),
        Message(role="tool", name="get_weather", content='{"temp": 21, "html": "<p>&amp;</p>"}'),
        Message(role="tool", name="python", content="{'a': [1, None, True]}"),
        Message(role="assistant", content="It is 21 °C.\n\nSunny."),
        Message(role="user", content="And tomorrow?"),
    ]


def light(tokenizer: Any) -> Any:
    """The light tokenizer a client builds from what a server serving `tokenizer` says."""
    lm = LoadedModel(model=None, tokenizer=tokenizer, spec="x", source=None,
                     tool_format=ToolFormat.HERMES)  # fmt: skip
    info = served.describe(lm, "test-server")
    return served.loaded(info, lambda: tokenizer.backend_tokenizer.to_str()).tokenizer


def embedded_tokenizer(name: str) -> Any:
    """An embedded model's tokenizer from its converted folder in the cache (no weights)."""
    from transformers import AutoTokenizer

    folder = cache_root() / "models" / name
    if not (folder / "tokenizer.json").is_file():
        pytest.skip(f"{name} is not converted in {folder.parent} (`edgeagent model prepare`)")
    return AutoTokenizer.from_pretrained(folder)


def tokenizers() -> list[tuple[str, Any]]:
    tiny = [
        (f"tiny-{arch}", lambda a=arch: byte_tokenizer(a)) for arch in ("qwen2", "lfm2", "llama")
    ]
    real = [(m.name, lambda n=m.name: embedded_tokenizer(n)) for m in (QWEN, SMOLLM2)]
    return tiny + real


@pytest.mark.parametrize(("name", "make"), tokenizers(), ids=[n for n, _ in tokenizers()])
def test_light_rendering_is_transformers_rendering(name: str, make, tmp_path, monkeypatch) -> None:
    hf = make()
    monkeypatch.setenv("EDGEAGENT_CACHE", str(tmp_path))
    lt = light(hf)
    messages = chat()
    cases = 0
    for fmt in (ToolFormat.HERMES, ToolFormat.PYTHONIC, ToolFormat.FALLBACK):
        for tools in ([WEATHER, RUN], None):
            for upto in range(2, len(messages) + 1):
                for prompt in (True, False):
                    want = render(hf, messages[:upto], tools, fmt, add_generation_prompt=prompt)
                    got = render(lt, messages[:upto], tools, fmt, add_generation_prompt=prompt)
                    assert got == want, (fmt, tools is not None, upto, prompt)
                    cases += 1
    assert cases == 3 * 2 * 6 * 2
    # What the agent reads besides the prompt: the markers it defuses in tool output.
    assert special_markers(lt) == special_markers(hf)
    # And what a client that encodes itself gets, from `tokenizers` alone.
    text = render(hf, messages, [WEATHER], ToolFormat.HERMES)
    ids = hf(text, add_special_tokens=False)["input_ids"]
    assert lt(text)["input_ids"] == ids
    assert lt.decode(ids) == hf.decode(ids, skip_special_tokens=False)
    assert len(lt) == len(hf)


def test_the_jinja_environment_is_transformers_own(tmp_path, monkeypatch) -> None:
    """The globals, filters and tags templates use: raise_exception, tojson's options, the
    guarded namespace, loop controls, {% generation %}, named templates."""
    hf = byte_tokenizer("qwen2")
    monkeypatch.setenv("EDGEAGENT_CACHE", str(tmp_path))
    lt = light(hf)
    source = (
        "{% set ns = namespace(n=0) %}{% for m in messages %}{% if loop.index > 3 %}{% break %}"
        "{% endif %}{% set ns.n = ns.n + 1 %}{% generation %}{{ m['content'] | tojson(indent=2) }}"
        "{% endgeneration %}{% endfor %}{{ ns.n }}{{ dict(a=1) | tojson(sort_keys=True) }}"
        "{{ tools | tojson }}{{ eos_token }}{% if add_generation_prompt %}<go>{% endif %}"
    )
    msgs = [m.as_template_dict() for m in chat()]
    seen = []
    for template in (source, {"default": "plain {{ messages | length }}", "tool_use": source}):
        hf.chat_template = lt.chat_template = template
        for tools in ([WEATHER], None):
            want = hf.apply_chat_template(msgs, tools=tools, add_generation_prompt=True,
                                          tokenize=False)  # fmt: skip
            got = lt.apply_chat_template(msgs, tools=tools, add_generation_prompt=True,
                                         tokenize=False)  # fmt: skip
            assert got == want
            seen.append(got)
    assert seen[3] == "plain 7" and seen[2] == seen[0]  # the tool_use template only with tools
    assert '"Be brief. <|im_start|> is data & so is {{ this }}."' in seen[0]  # no HTML escaping
    assert '3{"a": 1}[{"type": "function"' in seen[0] and seen[0].endswith("<|im_end|><go>")
    raising = "{{ raise_exception('no system role here') }}"
    with pytest.raises(jinja2.exceptions.TemplateError, match="no system role"):
        render_chat(raising, msgs)
    with pytest.raises(jinja2.exceptions.SecurityError):
        render_chat("{% set ns = namespace() %}{% set ns._x = 1 %}", msgs)
    with pytest.raises(ValueError, match="no default"):
        render_chat({"tool_use": source}, msgs)
