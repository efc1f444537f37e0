"""The tool declaration: schema from the argument model, validation errors the model can read."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from tools.base import Tool, ToolError, ToolResult


class Args(BaseModel):
    model_config = ConfigDict(extra="forbid")
    city: str = Field(description="a city name")
    days: int = Field(1, ge=1, le=7)


def forecast(args: Args) -> ToolResult:
    if args.city == "Atlantis":
        raise ToolError("no forecast for Atlantis")
    return ToolResult(text=f"{args.city}: sunny for {args.days} days")


TOOL = Tool("forecast", "Weather forecast.", Args, forecast)


def test_schema_comes_from_the_model() -> None:
    fn = TOOL.schema()["function"]
    assert fn["name"] == "forecast"
    assert fn["parameters"]["required"] == ["city"]
    assert fn["parameters"]["properties"]["days"]["maximum"] == 7


def test_runs_and_reports_errors_as_results() -> None:
    assert TOOL.run({"city": "Oslo", "days": 2}).text == "Oslo: sunny for 2 days"
    assert TOOL.run('{"city": "Oslo"}').ok
    assert TOOL.run({"city": "Atlantis"}).error == "no forecast for Atlantis"
    assert "'city' is required" in TOOL.run({}).error
    assert "'days'" in TOOL.run({"city": "Oslo", "days": 9}).error
    assert "not a parameter" in TOOL.run({"city": "Oslo", "colour": "red"}).error
    assert "not valid JSON" in TOOL.run("{city: Oslo").error
    assert "object of named values" in TOOL.run([1, 2]).error  # type: ignore[arg-type]


def test_echoed_schema_keywords_are_dropped() -> None:
    result = TOOL.run({"city": "Oslo", "required": ["city"], "additionalProperties": False})
    assert result.ok


def test_for_model_keeps_output_printed_before_an_error() -> None:
    assert ToolResult(text="partial", error="boom").for_model() == "partial\nError: boom"
    assert ToolResult(error="boom").for_model() == "Error: boom"
    assert ToolResult(text="x", truncated=True).for_model() == "x\n[output truncated]"
