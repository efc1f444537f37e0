"""Rendering tools with each format's template and reading calls back out of model-style text."""

from __future__ import annotations

import json

import pytest

from model.chat import ToolFormat, detect_format, parse, render
from model.messages import Message, ToolCall

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}
CALLS = [
    ToolCall(name="get_weather", arguments={"city": "Paris", "days": 2}),
    ToolCall(name="get_weather", arguments={"city": 'Zürich "old town"', "flags": [True, None]}),
]


def conversation_with_calls() -> list[Message]:
    return [
        Message(role="system", content="Be brief."),
        Message(role="user", content="Weather in Paris and Zürich?"),
        Message(role="assistant", content="", tool_calls=CALLS),
        Message(role="tool", name="get_weather", content="sunny, 21 C"),
        Message(role="tool", name="get_weather", content="rain, 12 C"),
    ]


@pytest.mark.parametrize(
    ("arch", "fmt"),
    [("qwen2", ToolFormat.HERMES), ("lfm2", ToolFormat.PYTHONIC), ("llama", ToolFormat.FALLBACK)],
)
def test_round_trip_each_format(tiny, arch: str, fmt: ToolFormat) -> None:
    """The template renders the calls the way the model writes them; parsing gets them back."""
    lm = tiny(arch)
    assert lm.tool_format is fmt
    messages = conversation_with_calls()
    prompt = render(lm.tokenizer, messages, [WEATHER], fmt)
    assert "get_weather" in prompt and "Current weather for a city" in prompt
    assert "sunny, 21 C" in prompt and "rain, 12 C" in prompt
    # The assistant turn as the template wrote it is exactly what a trained model would emit.
    before = render(lm.tokenizer, messages[:2], [WEATHER], fmt)
    turn = prompt[len(before) :].split("<|im_end|>")[0]
    parsed = parse(turn, fmt)
    assert parsed.errors == []
    assert parsed.calls == CALLS


def test_fallback_turns_tool_results_into_user_turns(tiny) -> None:
    lm = tiny("llama")
    prompt = render(lm.tokenizer, conversation_with_calls(), [WEATHER], ToolFormat.FALLBACK)
    assert "<|im_start|>tool" not in prompt
    assert "<tool_response>\nsunny, 21 C\n</tool_response>" in prompt
    assert "Be brief." in prompt and '"name": "get_weather"' in prompt
    # two tool results in a row merge into one user turn, for templates that insist on turns
    assert prompt.count("<|im_start|>user") == 2


def test_detect_format() -> None:
    assert detect_format(None) is ToolFormat.FALLBACK
    assert detect_format("{{ '<|tool_call_start|>' }}") is ToolFormat.PYTHONIC
    assert detect_format("{% if tools %}<tool_call>{% endif %}") is ToolFormat.HERMES


@pytest.mark.parametrize(
    "text",
    [
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
        'Let me check.\n```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```',
        '{"name": "get_weather", "arguments": {"city": "Paris"}}',
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris",}}</tool_call>',
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"} // the capital\n}',
        '<tool_call>{"name": "get_weather", "parameters": "{\\"city\\": \\"Paris\\"}"}</tool_call>',
    ],
)
def test_hermes_variants_small_models_write(text: str) -> None:
    parsed = parse(text, ToolFormat.HERMES)
    assert parsed.errors == []
    assert parsed.calls == [ToolCall(name="get_weather", arguments={"city": "Paris"})]


def test_hermes_several_calls_and_content_kept() -> None:
    text = (
        'Checking both.\n<tool_call>{"name": "a", "arguments": {}}</tool_call>\n'
        '<tool_call>[{"name": "b", "arguments": {"x": 1}}, {"name": "c", "arguments": {}}]'
        "</tool_call>"
    )
    parsed = parse(text, ToolFormat.HERMES)
    assert [c.name for c in parsed.calls] == ["a", "b", "c"]
    assert parsed.content == "Checking both."


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<tool_call>{not json at all</tool_call>", "not valid JSON"),
        ('<tool_call>{"arguments": {"city": "Paris"}}</tool_call>', '"name"'),
        ('<tool_call>{"name": "f", "arguments": [1, 2]}</tool_call>', "JSON object"),
        ('<tool_call>{"name": "f", "arguments": {"x": 3 * 10**8}}</tool_call>', "not valid JSON"),
    ],
)
def test_hermes_malformed_becomes_parse_error(text: str, message: str) -> None:
    parsed = parse(text, ToolFormat.HERMES)
    assert parsed.calls == []
    assert len(parsed.errors) == 1 and message in parsed.errors[0].message
    assert parsed.errors[0].raw


def test_prose_and_json_examples_are_not_calls() -> None:
    text = 'Here is JSON:\n```json\n{"city": "Paris", "temp": 21}\n```\nNo tool needed.'
    parsed = parse(text, ToolFormat.HERMES)
    assert parsed.calls == [] and parsed.errors == []
    assert parsed.content == text


def test_pythonic_calls() -> None:
    text = (
        '<|tool_call_start|>[get_weather(city="Paris", days=2), '
        "lookup(q='x', exact=true, tags=['a', 'b'], opts={'k': None})]<|tool_call_end|>Done."
    )
    parsed = parse(text, ToolFormat.PYTHONIC)
    assert parsed.errors == []
    assert parsed.calls == [
        ToolCall(name="get_weather", arguments={"city": "Paris", "days": 2}),
        ToolCall(
            name="lookup",
            arguments={"q": "x", "exact": True, "tags": ["a", "b"], "opts": {"k": None}},
        ),
    ]
    assert parsed.content == "Done."


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('get_weather("Paris")', "by name"),
        ("get_weather(city=", "not valid Python"),
        ("get_weather(city=os.getcwd())", "not a literal"),
        ("42", "call"),
    ],
)
def test_pythonic_malformed(body: str, message: str) -> None:
    parsed = parse(f"<|tool_call_start|>[{body}]<|tool_call_end|>", ToolFormat.PYTHONIC)
    assert parsed.calls == []
    assert message in parsed.errors[0].message


def test_pythonic_accepts_json_payload() -> None:
    body = json.dumps([{"name": "f", "arguments": {"a": 1}}])
    parsed = parse(f"<|tool_call_start|>{body}<|tool_call_end|>", ToolFormat.PYTHONIC)
    assert parsed.calls == [ToolCall(name="f", arguments={"a": 1})]


@pytest.mark.slow
def test_embedded_qwen_template_renders_tools_and_its_calls_parse(embedded_lm) -> None:
    assert embedded_lm.tool_format is ToolFormat.HERMES
    messages = conversation_with_calls()
    prompt = render(embedded_lm.tokenizer, messages, [WEATHER], ToolFormat.HERMES)
    assert "<tools>" in prompt and json.dumps(WEATHER) in prompt
    before = render(embedded_lm.tokenizer, messages[:2], [WEATHER], ToolFormat.HERMES)
    parsed = parse(prompt[len(before) :].split("<|im_end|>")[0], ToolFormat.HERMES)
    assert parsed.calls == CALLS


@pytest.mark.slow
def test_smollm2_uses_the_fallback_format(smollm2_lm) -> None:
    assert smollm2_lm.tool_format is ToolFormat.FALLBACK
    prompt = render(smollm2_lm.tokenizer, conversation_with_calls(), [WEATHER], ToolFormat.FALLBACK)
    assert "You can call tools" in prompt and "<tool_response>" in prompt
    assert "named SmolLM" not in prompt  # our system message replaces the template's default


def test_bare_json_lines_are_calls() -> None:
    text = (
        '{"name": "search_context", "arguments": {"query": "vault"}}\n'
        '{"name": "count_lines", "arguments": {"query": "vault"}}'
    )
    parsed = parse(text, ToolFormat.HERMES)
    assert [c.name for c in parsed.calls] == ["search_context", "count_lines"]
    assert parsed.errors == []


@pytest.mark.parametrize(
    "text",
    [  # parallel calls as Qwen2.5-Coder writes them in BFCL
        '```json\n{"name": "f", "arguments": {"n": 5}}\n{"name": "g", "arguments": {"n": 10}}\n```',
        '{"name": "f", "arguments": {"n": 5}},\n{"name": "g", "arguments": {"n": 10}}',
        '<tool_call>\n{"name": "f", "arguments": {"n": 5}}, {"name": "g", "arguments": {"n": 10}}'
        "\n</tool_call>",
    ],
)
def test_several_json_objects_in_one_block_are_several_calls(text: str) -> None:
    parsed = parse(text, ToolFormat.HERMES)
    assert [(c.name, c.arguments) for c in parsed.calls] == [("f", {"n": 5}), ("g", {"n": 10})]
    assert parsed.errors == []


def test_a_sequence_with_garbage_between_is_still_an_error() -> None:
    parsed = parse('<tool_call>{"name": "f", "arguments": {}} and {"name": "g"', ToolFormat.HERMES)
    assert parsed.calls == [] and "not valid JSON" in parsed.errors[0].message
