"""The BFCL v4 tool-calling suite: single-turn cases, the model's native tool format, AST scoring.

Cases come from the data files of the `bfcl-eval` package (installed with --no-deps; only its
data is read, never its code) or from a folder of the same layout (`data`): each case is one
user request, BFCL's function docs as our tool schemas, and the accepted calls. The model
answers once, greedily; its calls are read with `model.chat.parse` and scored by
`evals.ast_check`. Categories: simple_python, multiple, parallel, parallel_multiple,
irrelevance and their live_* counterparts, plus live_relevance (any call is right).

Not here: BFCL's multi-turn, memory, web-search, format-sensitivity and Java/JavaScript
categories; executing the calls; BFCL's own prompts or checker code.
"""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agent.settings import Settings
from evals.ast_check import NO_CALL_CATEGORIES, Verdict, check
from evals.common import CaseResult, EvalCase, Split, in_split
from model.batch import complete_many
from model.chat import ParsedOutput, ToolFormat, parse, render
from model.generate import Completion, Generator
from model.messages import Message

SUITE = "bfcl"
CATEGORIES = (
    "simple_python",
    "multiple",
    "parallel",
    "parallel_multiple",
    "irrelevance",
    "live_simple",
    "live_multiple",
    "live_parallel",
    "live_parallel_multiple",
    "live_irrelevance",
    "live_relevance",
)
GROUPS = {
    "live": tuple(c for c in CATEGORIES if c.startswith("live_")),
    "non-live": tuple(c for c in CATEGORIES if not c.startswith("live_")),
}
INSTALL = ".venv/bin/python -m pip install --no-deps bfcl-eval==2026.3.23"
MAX_NEW_TOKENS = 384
SYSTEM_PROMPT = (
    "You are a helpful assistant that can call functions. If the request can be done with the "
    "functions given, call the right ones with the right arguments, all of them at once if "
    "several calls are needed, and write nothing else. If none of the functions fits the "
    "request, do not call any: say so in one sentence."
)
BFCL_TO_JSON_TYPE = {
    "dict": "object",
    "object": "object",
    "float": "number",
    "number": "number",
    "double": "number",
    "integer": "integer",
    "int": "integer",
    "long": "integer",
    "string": "string",
    "str": "string",
    "char": "string",
    "any": "string",  # BFCL's checker wants a string for "any"
    "boolean": "boolean",
    "bool": "boolean",
    "array": "array",
    "list": "array",
    "tuple": "array",
}


class BfclDataMissing(FileNotFoundError):
    """The BFCL data files cannot be found; the message says how to install them."""


def data_dir(data: str | Path | None = None) -> Path:
    """The folder with BFCL_v4_*.json and possible_answer/: `data`, else the installed package's
    (located without importing it, since its code needs dependencies we do not install)."""
    if data is not None:
        folder = Path(data).expanduser()
        if not (folder / "BFCL_v4_simple_python.json").is_file():
            raise BfclDataMissing(f"no BFCL_v4_simple_python.json in {folder}")
        return folder
    spec = importlib.util.find_spec("bfcl_eval")
    roots = list(spec.submodule_search_locations or []) if spec else []
    for root in roots:
        if (Path(root) / "data" / "BFCL_v4_simple_python.json").is_file():
            return Path(root) / "data"
    raise BfclDataMissing(f"BFCL data not found: install it with `{INSTALL}` or pass --data PATH")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_cases(
    split: Split,
    limit: int | None = None,
    data: str | Path | None = None,
    categories: tuple[str, ...] | list[str] = CATEGORIES,
) -> list[EvalCase]:
    """The cases of `split`, categories interleaved so that a `limit` samples all of them;
    a category whose file the data folder lacks is left out."""
    unknown = sorted(set(categories) - set(CATEGORIES))
    if unknown:
        raise ValueError(
            f"unknown BFCL categories {unknown}; known: {', '.join(CATEGORIES)}, or the "
            "groups live and non-live"
        )
    folder = data_dir(data)
    per_category = [
        [c for c in _load_category(folder, name) if in_split(c.id, split)]
        for name in categories
        if (folder / f"BFCL_v4_{name}.json").is_file()
    ]
    cases = _interleave(per_category)
    return cases[:limit] if limit is not None else cases


def expand(names: str) -> tuple[str, ...]:
    """Comma-separated categories and group names (live, non-live) as categories, in order."""
    out: list[str] = []
    for name in (n.strip() for n in names.split(",") if n.strip()):
        for category in GROUPS.get(name, (name,)):
            if category not in out:
                out.append(category)
    return tuple(out)


def _load_category(folder: Path, category: str) -> list[EvalCase]:
    answer_file = folder / "possible_answer" / f"BFCL_v4_{category}.json"
    answers = (
        {row["id"]: row["ground_truth"] for row in _read_jsonl(answer_file)}
        if answer_file.is_file()
        else {}
    )
    cases = []
    for row in _read_jsonl(folder / f"BFCL_v4_{category}.json"):
        messages = [m for turn in row["question"] for m in turn]
        cases.append(
            EvalCase(
                suite=SUITE,
                id=row["id"],
                category=category,
                prompt="\n".join(m["content"] for m in messages if m["role"] == "user"),
                expected=answers.get(row["id"], []),
                data={"messages": messages, "functions": row["function"]},
            )
        )
    return cases


def _interleave(groups: list[list[EvalCase]]) -> list[EvalCase]:
    out: list[EvalCase] = []
    for i in range(max((len(g) for g in groups), default=0)):
        out += [g[i] for g in groups if i < len(g)]
    return out


def to_tool(function: dict[str, Any]) -> dict[str, Any]:
    """A BFCL function doc as the OpenAI-style tool schema our chat templates take."""
    params = to_json_schema(function.get("parameters", {}))
    params["type"] = "object"
    return {
        "type": "function",
        "function": {
            "name": function["name"],
            "description": function.get("description", ""),
            "parameters": params,
        },
    }


def to_json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """BFCL's loose types ("dict", "float", "tuple", "any") as JSON schema, recursively; the
    non-standard "optional" flag is dropped ("required" already says it)."""
    out: dict[str, Any] = {}
    if "type" in schema:
        out["type"] = BFCL_TO_JSON_TYPE.get(str(schema["type"]), "string")
    if "description" in schema:
        out["description"] = schema["description"]
    if isinstance(schema.get("properties"), dict):
        out["properties"] = {k: to_json_schema(v) for k, v in schema["properties"].items()}
    if isinstance(schema.get("items"), dict):
        out["items"] = to_json_schema(schema["items"])
    skip = {"type", "description", "properties", "items", "optional"}
    out.update({k: v for k, v in schema.items() if k not in skip})
    return out


def build_messages(case: EvalCase) -> list[Message]:
    """Our system prompt (joined with BFCL's own, if the case has one), then the turns."""
    turns = [Message(role=m["role"], content=m["content"]) for m in case.data["messages"]]
    system = SYSTEM_PROMPT
    if turns and turns[0].role == "system":
        system, turns = turns[0].content + "\n\n" + SYSTEM_PROMPT, turns[1:]
    return [Message(role="system", content=system), *turns]


def score_output(case: EvalCase, text: str, fmt: ToolFormat) -> tuple[Verdict, ParsedOutput]:
    """The verdict on one model output. An output with a call that cannot be read is, as in
    BFCL's eval_runner (its decoder fails on it), no call at all: right in the irrelevance
    categories, wrong in every other one."""
    parsed = parse(text, fmt)
    if parsed.errors:
        why = f"unreadable tool call: {parsed.errors[0].message}"
        if case.category.endswith(NO_CALL_CATEGORIES):
            return Verdict(True, f"{why} (BFCL: no call, which is right here)"), parsed
        return Verdict(False, why), parsed
    verdict = check(case.category, parsed.calls, case.data["functions"], case.expected or [])
    return verdict, parsed


def run_case(generator: Generator, case: EvalCase, settings: Settings) -> CaseResult:
    return next(run_cases(generator, [case], settings))


def run_cases(
    generator: Generator, cases: list[EvalCase], settings: Settings
) -> Iterator[CaseResult]:
    """Each case's result as it finishes, up to `eval.batch` cases decoding at once. A case's
    `seconds` is the wall time since the result before it, so they add up to the run's time."""
    lm = generator.lm
    prompts = [
        generator.encode(
            render(
                lm.tokenizer,
                build_messages(case),
                [to_tool(f) for f in case.data["functions"]],
                lm.tool_format,
            )
        )
        for case in cases
    ]
    sampling = settings.sampling.model_copy(
        update={
            "temperature": 0.0,
            "max_new_tokens": min(settings.sampling.max_new_tokens, MAX_NEW_TOKENS),
        }
    )
    last = time.perf_counter()
    done = complete_many(generator, prompts, sampling, settings.guard, settings.eval.batch)
    for index, completion in done:
        now = time.perf_counter()
        yield result_of(cases[index], completion, lm.tool_format, now - last)
        last = now


def result_of(
    case: EvalCase, completion: Completion, fmt: ToolFormat, seconds: float
) -> CaseResult:
    verdict, parsed = score_output(case, completion.text, fmt)
    return CaseResult(
        suite=SUITE,
        id=case.id,
        category=case.category,
        score=1.0 if verdict.valid else 0.0,
        correct=verdict.valid,
        output=completion.text,
        expected=case.expected,
        details={
            "error": verdict.error,
            "calls": [c.model_dump(exclude_none=True) for c in parsed.calls],
            "finish_reason": completion.finish_reason,
            "prompt_tokens": completion.prompt_tokens,
            "new_tokens": len(completion.token_ids),
        },
        seconds=seconds,
    )


def rescore(
    results: list[CaseResult], fmt: ToolFormat, data: str | Path | None = None, note: str = ""
) -> list[CaseResult]:
    """The results judged again from their saved outputs by today's checker, without the
    model: verdict, score, error and calls replaced, all else kept. `note` (the commit that
    re-scored them, say) goes in details["rescored"]; a result whose case the data no longer
    has is kept as it was."""
    cases = {c.id: c for c in load_cases("all", data=data)}
    out = []
    for r in results:
        case = cases.get(r.id)
        if case is None:
            out.append(r)
            continue
        verdict, parsed = score_output(case, r.output, fmt)
        details = {
            **r.details,
            "error": verdict.error,
            "calls": [c.model_dump(exclude_none=True) for c in parsed.calls],
            "rescored": note or True,
        }
        update = {"score": float(verdict.valid), "correct": verdict.valid, "details": details}
        out.append(r.model_copy(update=update))
    return out
