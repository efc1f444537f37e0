"""The tool declaration: a name, a description, a pydantic model for the arguments, a function.

A tool's JSON schema (what chat templates render) comes from its argument model, so the schema
and the validation can never disagree. Arguments the model got wrong come back as an error
ToolResult that names the field and what was expected, for the model to read and retry.

This is not a registry or a plugin system: the agent keeps a plain dict of tools by name.
Failures a tool expects (a page that times out, code that raises in the sandbox) are raised as
ToolError inside the tool and become error results here; anything else is our bug and raises.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

SCHEMA_KEYWORDS = frozenset(
    {
        "required",
        "additionalProperties",
        "properties",
        "type",
        "description",
        "title",
        "default",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "enum",
        "items",
        "format",
    }
)


# Why a call failed, for code to read (rewards, the app) instead of the error's wording:
# "arguments": not valid JSON, not an object, or not what the schema asks; "unknown_tool":
# no tool of that name; "unreadable": the call itself could not be parsed; "repeat": the same
# call again past the limit; "guess": a page URL nobody showed; "empty": the tool ran and found
# nothing (a search without a match); "tool": the tool ran and failed.
ErrorKind = Literal["arguments", "unknown_tool", "unreadable", "repeat", "guess", "empty", "tool"]


class ToolResult(BaseModel):
    """What a tool hands back: text for the model, or an error the model can act on."""

    text: str = ""
    error: str | None = None
    error_kind: ErrorKind | None = None  # set with `error`; "tool" when the tool says nothing
    truncated: bool = False
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def kind(self) -> ErrorKind | None:
        """Why it failed (None when it did not): "tool" unless a kind was given."""
        return None if self.error is None else self.error_kind or "tool"

    def for_model(self) -> str:
        """The text the model reads back as the tool message."""
        body = self.text + ("\n[output truncated]" if self.truncated else "")
        if self.error is None:
            return body
        # Output printed before a failure (the sandbox's) helps the model fix its next try.
        error = f"Error: {self.error}"
        return error if not body or self.error in body else f"{body}\n{error}"


class ToolError(Exception):
    """An expected failure inside a tool; its message goes back to the model."""


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    args: type[BaseModel]
    fn: Callable[[Any], ToolResult]

    def schema(self) -> dict[str, Any]:
        """The OpenAI-style function schema that chat templates take in `tools=`."""
        params = self.args.model_json_schema()
        params.pop("title", None)
        for prop in params.get("properties", {}).values():
            prop.pop("title", None)
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": params},
        }

    def run(self, arguments: dict[str, Any] | str | None) -> ToolResult:
        """Validate the model's arguments and run the tool; never raises for the model's errors."""
        arguments = read_arguments(self.name, arguments)
        if isinstance(arguments, ToolResult):
            return arguments
        # Small models echo JSON-schema keywords from the tool list as if they were arguments.
        fields = self.args.model_fields
        arguments = {k: v for k, v in arguments.items() if k in fields or k not in SCHEMA_KEYWORDS}
        try:
            parsed = self.args.model_validate(arguments)
        except ValidationError as e:
            error = f"bad arguments for {self.name}: {describe_errors(e)}"
            return ToolResult(error=error, error_kind="arguments")
        try:
            return self.fn(parsed)
        except ToolError as e:
            return ToolResult(error=str(e))


def read_arguments(
    name: str, arguments: dict[str, Any] | str | None
) -> dict[str, Any] | ToolResult:
    """The model's arguments as a dict (from JSON text if need be), or the error to send back."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as e:
            error = f"arguments of {name} are not valid JSON: {e.msg}"
            return ToolResult(error=error, error_kind="arguments")
    if arguments is None:
        return {}
    if not isinstance(arguments, dict):
        error = f"arguments of {name} must be an object of named values"
        return ToolResult(error=error, error_kind="arguments")
    return arguments


def describe_errors(e: ValidationError) -> str:
    """One readable line per bad field: which field, what was wrong."""
    parts = []
    for err in e.errors(include_url=False):
        field = ".".join(str(p) for p in err["loc"]) or "(arguments)"
        if err["type"] == "missing":
            parts.append(f"'{field}' is required")
        elif err["type"] == "extra_forbidden":
            parts.append(f"'{field}' is not a parameter of this tool")
        else:
            got = json.dumps(err.get("input"), default=str)[:60]
            parts.append(f"'{field}': {err['msg']} (got {got})")
    return "; ".join(parts)
