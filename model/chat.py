"""Chat prompts with tools, and reading tool calls back out of model text.

Three tool-call formats, picked from the tokenizer's own chat template:
- hermes (Qwen2): JSON inside `<tool_call>…</tool_call>`. Qwen2.5-Coder-0.5B often writes the
  same JSON in a fenced ```json block instead, so that is read too.
- pythonic (LFM2): `<|tool_call_start|>[f(a=1), g(b="x")]<|tool_call_end|>`.
- fallback: for templates with no tool support (SmolLM2, Llama, Gemma 3 as shipped), our own
  system-prompt section describing the tools and asking for the hermes JSON form; tool results
  go back as user turns, since those templates know no "tool" role.

Parsing never raises: text that looks like a call but cannot be read becomes a
ToolCallParseError, kept for the log and shown to the model. This module does not decide what
to do with calls (the agent does) and does not validate arguments (the tools do).
"""

from __future__ import annotations

import ast
import json
import re
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from model.messages import Message, ToolCall, ToolCallParseError


class ToolFormat(StrEnum):
    HERMES = "hermes"
    PYTHONIC = "pythonic"
    FALLBACK = "fallback"


class ParsedOutput(BaseModel):
    content: str  # the text with the call markup removed
    calls: list[ToolCall] = Field(default_factory=list)
    errors: list[ToolCallParseError] = Field(default_factory=list)


def detect_format(chat_template: str | None) -> ToolFormat:
    template = chat_template or ""
    if "<|tool_call_start|>" in template or "<|tool_list_start|>" in template:
        return ToolFormat.PYTHONIC
    if "<tool_call>" in template and "tools" in template:
        return ToolFormat.HERMES
    return ToolFormat.FALLBACK


FALLBACK_TOOLS_PROMPT = """You can call tools. The tools, as JSON schemas:
{tools}

To call a tool, write exactly one line per call and nothing else on that line:
<tool_call>{{"name": "tool_name", "arguments": {{"arg": "value"}}}}</tool_call>
Tool results come back in <tool_response> tags. When you need no tool, answer directly."""


def render(
    tokenizer: Any,
    messages: list[Message],
    tools: list[dict[str, Any]] | None,
    fmt: ToolFormat,
    add_generation_prompt: bool = True,
) -> str:
    """The prompt text for `messages`, tools rendered the way this model was trained to read."""
    if fmt is ToolFormat.FALLBACK:
        dicts = _fallback_dicts(messages, tools)
        tools = None
    else:
        dicts = [m.as_template_dict() for m in messages]
    return tokenizer.apply_chat_template(
        dicts, tools=tools or None, add_generation_prompt=add_generation_prompt, tokenize=False
    )


def _fallback_dicts(messages: list[Message], tools: list[dict[str, Any]] | None) -> list[dict]:
    out: list[dict[str, Any]] = []
    if tools:
        section = FALLBACK_TOOLS_PROMPT.format(tools="\n".join(json.dumps(t) for t in tools))
        if messages and messages[0].role == "system":
            out.append({"role": "system", "content": messages[0].content + "\n\n" + section})
            messages = messages[1:]
        else:
            out.append({"role": "system", "content": section})
    for m in messages:
        role, content = m.role, m.content
        if m.tool_calls:
            calls = "\n".join(
                f"<tool_call>{json.dumps({'name': c.name, 'arguments': c.arguments})}</tool_call>"
                for c in m.tool_calls
            )
            content = (content + "\n" + calls).strip()
        if role == "tool":
            role, content = "user", f"<tool_response>\n{content}\n</tool_response>"
        # Templates like Gemma 3's insist on alternating turns: merge neighbours of one role.
        if out and out[-1]["role"] == role and role != "system":
            out[-1]["content"] += "\n" + content
        else:
            out.append({"role": role, "content": content})
    return out


def call_prefix(fmt: ToolFormat, name: str, first_arg: str) -> str:
    """The start of a call to `name`, up to the opening quote of its first (string) argument:
    what the loop writes for the model when it steers a turn, leaving the value to the model."""
    if fmt is ToolFormat.PYTHONIC:
        return f'<|tool_call_start|>[{name}({first_arg}="'
    return f'<tool_call>\n{{"name": "{name}", "arguments": {{"{first_arg}": "'


def parse(text: str, fmt: ToolFormat) -> ParsedOutput:
    """Tool calls in `text`, in order, plus what could not be read."""
    if fmt is ToolFormat.PYTHONIC:
        return _parse_pythonic(text)
    return _parse_json_calls(text)


TOOL_CALL_RE = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.S)
FENCE_RE = re.compile(r"```(?:json|tool_call|JSON)?[ \t]*\n(.*?)(?:```|$)", re.S)
JSON_LINE_RE = re.compile(r"^[ \t]*(\{.*\})[ \t]*$", re.M)
PYTHONIC_RE = re.compile(r"<\|tool_call_start\|>(.*?)(?:<\|tool_call_end\|>|$)", re.S)


def _parse_json_calls(text: str) -> ParsedOutput:
    calls: list[ToolCall] = []
    errors: list[ToolCallParseError] = []
    spans = [m for m in TOOL_CALL_RE.finditer(text)]
    if not spans:
        # Fenced JSON only counts as a call when it has the call's shape; a model that answers
        # with a JSON example in a code block is not calling anything.
        spans = [m for m in FENCE_RE.finditer(text) if _looks_like_call(m.group(1))]
    if not spans and _looks_like_call(text.strip()) and text.strip().startswith(("{", "[")):
        whole = re.match(r"(?s)\s*(.*)", text)
        # Bare calls, one JSON object per line, as Qwen2.5-Coder writes them without tags.
        lines = list(JSON_LINE_RE.finditer(text))
        spans = lines if len(lines) > 1 else [whole]  # type: ignore[list-item]
    for m in spans:
        found, err = _calls_from_json(m.group(1))
        calls += found
        if err:
            errors.append(err)
    content = text
    for m in reversed(spans):
        content = content[: m.start()] + content[m.end() :]
    return ParsedOutput(content=content.strip(), calls=calls, errors=errors)


def _looks_like_call(body: str) -> bool:
    return bool(re.search(r'"name"\s*:', body)) and bool(
        re.search(r'"(arguments|parameters)"\s*:', body)
    )


def _calls_from_json(body: str) -> tuple[list[ToolCall], ToolCallParseError | None]:
    raw = body.strip()
    data = _loads_lenient(raw)
    if data is None:
        return [], ToolCallParseError(raw=raw, message="tool call is not valid JSON")
    items = data if isinstance(data, list) else [data]
    calls: list[ToolCall] = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            return calls, ToolCallParseError(raw=raw, message='a tool call needs a "name" string')
        args = item.get("arguments", item.get("parameters", {}))
        if isinstance(args, str):
            args = _loads_lenient(args) if args.strip() else {}
        if not isinstance(args, dict):
            return calls, ToolCallParseError(raw=raw, message='"arguments" must be a JSON object')
        calls.append(ToolCall(name=item["name"], arguments=args))
    return calls, None


def _loads_lenient(raw: str) -> Any | None:
    """json.loads, then once more after the slips small models make: // comments, trailing
    commas, Python literals. Nothing is evaluated."""
    for candidate in (raw, _repair(raw)):
        try:
            return json.loads(candidate)
        except json.JSONDecodeError:
            continue
    if (several := _json_sequence(raw)) is not None:
        return several
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    return list(value) if isinstance(value, tuple) else value


def _json_sequence(raw: str) -> list[Any] | None:
    """Several JSON values one after another, a line each or comma-separated without the
    enclosing brackets: how small models write parallel calls in one fence."""
    decoder = json.JSONDecoder()
    items: list[Any] = []
    at = 0
    while at < len(raw):
        try:
            item, at = decoder.raw_decode(raw, at)
        except json.JSONDecodeError:
            return None
        items.append(item)
        at = len(raw) - len(raw[at:].lstrip(" \t\r\n,"))
    return items if len(items) > 1 else None


def _repair(raw: str) -> str:
    s = re.sub(r'("(?:[^"\\]|\\.)*")|//[^\n]*', lambda m: m.group(1) or "", raw)
    s = re.sub(r",\s*([}\]])", r"\1", s)
    # A call cut off by the stop token often just lacks its closing braces.
    depth = s.count("{") - s.count("}")
    return s + "}" * depth if 0 < depth <= 3 else s


def _parse_pythonic(text: str) -> ParsedOutput:
    calls: list[ToolCall] = []
    errors: list[ToolCallParseError] = []
    spans = list(PYTHONIC_RE.finditer(text))
    for m in spans:
        body = m.group(1).strip()
        if body.startswith(("[{", "{")):  # some LFM2 checkpoints answer in JSON when asked
            found, err = _calls_from_json(body)
        else:
            found, err = _calls_from_python(body)
        calls += found
        if err:
            errors.append(err)
    content = text
    for m in reversed(spans):
        content = content[: m.start()] + content[m.end() :]
    return ParsedOutput(content=content.strip(), calls=calls, errors=errors)


def _calls_from_python(body: str) -> tuple[list[ToolCall], ToolCallParseError | None]:
    try:
        tree = ast.parse(body if body.startswith("[") else f"[{body}]", mode="eval").body
    except SyntaxError as e:
        return [], ToolCallParseError(raw=body, message=f"tool call is not valid Python: {e.msg}")
    if not isinstance(tree, ast.List):
        return [], ToolCallParseError(raw=body, message="expected a list of calls like [f(a=1)]")
    calls: list[ToolCall] = []
    for node in tree.elts:
        if not isinstance(node, ast.Call):
            return calls, ToolCallParseError(raw=body, message="each item must be a call f(...)")
        name = _dotted_name(node.func)
        if name is None:
            return calls, ToolCallParseError(raw=body, message="a call needs a plain name")
        if node.args:
            msg = f"{name}: pass arguments by name, like {name}(x=1)"
            return calls, ToolCallParseError(raw=body, message=msg)
        try:
            args = {kw.arg: _literal(kw.value) for kw in node.keywords if kw.arg is not None}
        except ValueError as e:
            return calls, ToolCallParseError(raw=body, message=f"{name}: {e}")
        calls.append(ToolCall(name=name, arguments=args))
    return calls, None


JSON_NAMES = {"true": True, "false": False, "null": None}


def _literal(node: ast.expr) -> Any:
    """A literal value; JSON's true/false/null are accepted since templates render JSON."""
    if isinstance(node, ast.Name) and node.id in JSON_NAMES:
        return JSON_NAMES[node.id]
    if isinstance(node, ast.List | ast.Tuple):
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.Dict):
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values, strict=True)}  # type: ignore[arg-type]
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise ValueError(f"argument value {ast.unparse(node)!r} is not a literal") from None


def _dotted_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted_name(node.value)
        return f"{base}.{node.attr}" if base else None
    return None
