"""Chat templates rendered without transformers, the way its `apply_chat_template` renders them.

A client of `edgeagent serve` renders its own prompts, and importing transformers for that
costs seconds. So this module rebuilds what transformers 5 does around the jinja template, for
text output of one conversation: the same sandboxed environment (immutable, `trim_blocks`,
`lstrip_blocks`, loop controls, the `{% generation %}` tag), its `tojson` (no HTML escaping,
`ensure_ascii` off), `raise_exception`, `strftime_now`, its guarded `dict` and `namespace`; the
same inputs (messages without their None-valued keys, reduced to plain JSON types, reasoning
aliased under its other names, tools, `documents=None`, `add_generation_prompt`, and the
tokenizer's named special tokens as variables); and the same choice among named templates.
`tests/model/test_template.py` holds it to transformers' output on the shipped templates and
the embedded model's own.

Not here: tokenizing (`model.tokenizer`), what messages and tools hold (`model.chat`);
`continue_final_message`, assistant masks, documents and control-token sanitizing, which no
caller of ours uses.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import jinja2
import jinja2.ext
import jinja2.nodes
import jinja2.utils
from jinja2.sandbox import ImmutableSandboxedEnvironment

REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")
ChatTemplate = str | dict[str, str]


def render_chat(
    template: ChatTemplate,
    messages: list[Any],
    tools: list[dict[str, Any]] | None = None,
    add_generation_prompt: bool = False,
    variables: Mapping[str, str] | None = None,
) -> str:
    """The prompt text for one conversation; `variables` are the tokenizer's named special
    tokens (bos_token, eos_token, ...), which templates read as globals."""
    if not messages:
        raise ValueError("Cannot apply chat template to an empty conversation.")
    compiled = compile_template(pick(template, tools))
    chat = _aliased(plain([_without_none(m) for m in messages]))
    return compiled.render(
        messages=chat,
        tools=plain(tools),
        documents=None,
        add_generation_prompt=add_generation_prompt,
        **plain(dict(variables or {})),
    )


def pick(template: ChatTemplate, tools: list[dict[str, Any]] | None) -> str:
    """One template out of named ones: "tool_use" when there are tools and it exists, else
    "default"."""
    if isinstance(template, str):
        return template
    if tools is not None and "tool_use" in template:
        return template["tool_use"]
    if "default" in template:
        return template["default"]
    names = sorted(template)
    raise ValueError(f"This model has multiple chat templates with no default specified: {names}")


@functools.lru_cache(maxsize=8)
def compile_template(source: str) -> jinja2.Template:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[Generation, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    env.globals["dict"] = TemplateDict()
    env.globals["namespace"] = TemplateNamespace
    return env.from_string(source)


class Generation(jinja2.ext.Extension):
    """`{% generation %}…{% endgeneration %}`: renders its body. transformers also records where
    it falls (assistant masks for training), which rendering text does not need."""

    tags = {"generation"}

    def parse(self, parser: Any) -> jinja2.nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        call = self.call_method("_body")
        return jinja2.nodes.CallBlock(call, [], [], body).set_lineno(lineno)

    def _body(self, caller: Any) -> str:
        return caller()


def raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def tojson(
    x: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    # Not jinja's own tojson, which escapes <, >, & and ' for HTML.
    return json.dumps(
        x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def strftime_now(format: str) -> str:
    return datetime.now().strftime(format)


class TemplateDict:
    """`dict(...)` in a template, without the attributes of the dict type itself."""

    def __call__(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
        return dict(*args, **kwargs)

    def fromkeys(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
        return dict.fromkeys(*args, **kwargs)


class TemplateNamespace(jinja2.utils.Namespace):
    """jinja's `namespace`, refusing underscore names (a way towards CPython internals)."""

    def __init__(*args: Any, **kwargs: Any) -> None:  # jinja's signature trick: `self` may be a key
        self, rest = args[0], args[1:]
        attrs = dict(*rest, **kwargs)
        for name in attrs:
            TemplateNamespace._check(name)
        jinja2.utils.Namespace.__init__(self, attrs)

    def __setitem__(self, name: str, value: Any) -> None:
        TemplateNamespace._check(name)
        jinja2.utils.Namespace.__setitem__(self, name, value)

    @staticmethod
    def _check(name: Any) -> None:
        if isinstance(name, str) and name.startswith("_"):
            raise jinja2.exceptions.SecurityError(
                f"Chat templates cannot store underscore-prefixed attributes on a namespace, "
                f"but got {name!r}."
            )


def plain(value: Any) -> Any:
    """`value` rebuilt from plain JSON types, as transformers hands data to a template: string
    and number subclasses (enums) lose their methods; objects become placeholders."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, Mapping):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(plain(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if callable(getattr(value, "model_dump", None)):
        return plain(value.model_dump())
    return f"<{type(value).__name__}>"


def _without_none(message: Any) -> dict[str, Any]:
    """A message as a dict without its None-valued keys (templates print them as "None")."""
    if callable(getattr(message, "model_dump", None)):
        message = message.model_dump()
    if not isinstance(message, Mapping):
        raise TypeError(f"Chat messages should be dicts or pydantic models, but got {message!r}.")
    return {k: v for k, v in message.items() if v is not None}


def _aliased(chat: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Reasoning under every name templates read it by, as transformers does."""
    out = []
    for message in chat:
        reasoning = next((message[k] for k in REASONING_FIELDS if message.get(k) is not None), None)
        if reasoning is not None:
            message = {"thinking": reasoning, **message, "reasoning_content": reasoning}
        out.append(message)
    return out
