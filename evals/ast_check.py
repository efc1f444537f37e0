"""BFCL's AST check, written from its published rules: are a model's tool calls the expected ones.

Inputs are BFCL's own shapes: `functions` are its function docs (types like "dict", "float",
"tuple"), and each expected call is `{name: {param: [allowed values]}}`. The rules:
- the function name matches exactly; every required parameter is present; no parameter that
  the doc or the answer key does not list; every parameter of the answer key is given unless
  its allowed values include "" (then it may be left out, or given as an empty list);
- each value has the declared type (an int passes for a float at the top level, a bool never
  for an int; a value of the type of the answer key's first value also passes, which is how
  BFCL allows variable names); the items of a list have the declared item type exactly (no
  int for a float, unless the allowed list itself holds ints), one level deep as in BFCL;
- each value equals one allowed value: strings after BFCL's normalization (lowercase, with
  spaces and , . / - _ * ^ removed, ' read as "), lists with their string items normalized
  (one level, as BFCL), dicts key by key (a dict in the answer key maps each key to its
  allowed values), lists of dicts in order; a value where the answer key holds a variable
  (another type than declared) by plain equality;
- simple and multiple: exactly one call; parallel: the calls match the expected ones one to
  one, in any order, matched greedily as BFCL does; irrelevance: no call at all; relevance:
  at least one call. (An output whose call cannot be read is no call, as in BFCL:
  `evals.bfcl.score_output` decides that.)

Checked against BFCL's own `ast_checker` (bfcl-eval 2026.3.23) on every committed BFCL output,
by `evals/bfcl_official.py` and `tests/evals/test_bfcl_official.py`: all verdicts agree.
Beyond them, a sweep of 37,616 calls built from the answer keys of every case (each
ground truth, with floats written as ints, ints as floats, strings upper-cased or with
spaces as underscores, calls reordered or swapped, a parameter dropped) gave the same verdicts
as BFCL's. Where BFCL's data makes a case
unsatisfiable (live_simple_112-68-0, an empty list of allowed values), both fail it.

Not here: reading calls out of model text (`model.chat.parse`), prompting, the dataset. These
are plain functions of plain data, so the trainer can reuse them as rewards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from model.messages import ToolCall

Answer = dict[str, dict[str, list[Any]]]  # one expected call: {name: {param: [allowed values]}}
FunctionDoc = dict[str, Any]  # BFCL's: {"name", "description", "parameters": {...}}

NO_CALL_CATEGORIES = ("irrelevance",)  # also live_irrelevance
SOME_CALL_CATEGORIES = ("live_relevance",)
STRIPPED = str.maketrans("", "", " ,./-_*^")


@dataclass(frozen=True)
class Verdict:
    valid: bool
    error: str = ""


OK = Verdict(True)


def check(
    category: str,
    calls: Sequence[ToolCall],
    functions: Sequence[FunctionDoc],
    answers: Sequence[Answer],
) -> Verdict:
    """The verdict for one case: `calls` as the model made them, `answers` from BFCL."""
    if category.endswith(NO_CALL_CATEGORIES):
        names = ", ".join(c.name for c in calls)
        return OK if not calls else Verdict(False, f"no function fits, but it called {names}")
    if category in SOME_CALL_CATEGORIES:
        return OK if calls else Verdict(False, "a function fits, but it made no call")
    if len(calls) != len(answers):
        return Verdict(False, f"expected {len(answers)} call(s), got {len(calls)}")
    if "parallel" in category:
        return check_parallel(calls, functions, answers)
    return check_call(calls[0], functions, answers[0])


def check_parallel(
    calls: Sequence[ToolCall], functions: Sequence[FunctionDoc], answers: Sequence[Answer]
) -> Verdict:
    """Every expected call matched by its own call, in any order, the way BFCL's checker
    matches them: expected calls in order, each taking the first call not yet taken that
    fits it. (A call that fits two expected calls can thus be taken by the wrong one, and the
    case fail, where a one-to-one matching exists: BFCL's verdict, so ours.)"""
    taken: set[int] = set()
    for i, answer in enumerate(answers):
        verdicts = {
            j: check_call(c, functions, answer) for j, c in enumerate(calls) if j not in taken
        }
        fit = next((j for j, v in verdicts.items() if v.valid), None)
        if fit is None:
            name = next(iter(answer))
            same = [v for j, v in verdicts.items() if calls[j].name == name]
            why = same[0].error if same else "no call of that function"
            return Verdict(False, f"no call matches expected call {i} ({name}): {why}")
        taken.add(fit)
    return OK


def check_call(call: ToolCall, functions: Sequence[FunctionDoc], answer: Answer) -> Verdict:
    """One call against one expected call."""
    name, allowed = next(iter(answer.items()))
    if call.name != name:
        return Verdict(False, f"called {call.name!r}, expected {name!r}")
    doc = next((f for f in functions if f["name"] == name), None)
    params = doc.get("parameters", {}) if doc else {}
    props: dict[str, Any] = params.get("properties", {})
    for param in params.get("required", []):
        if param not in call.arguments:
            return Verdict(False, f"missing required parameter {param!r}")
    for param, value in call.arguments.items():
        if param not in props or param not in allowed:
            return Verdict(False, f"unexpected parameter {param!r}")
        verdict = check_value(param, value, props[param], allowed[param])
        if not verdict.valid:
            return verdict
    for param, options in allowed.items():
        if param not in call.arguments and "" not in options:
            return Verdict(False, f"missing parameter {param!r} (it is not optional here)")
    return OK


def check_value(param: str, value: Any, schema: dict[str, Any], options: list[Any]) -> Verdict:
    """One argument: its type, then whether it is among the allowed values, compared the way
    BFCL's checker compares a value of that type."""
    if not type_ok(value, schema, options):
        declared = schema.get("type", "any")
        got = type(value).__name__
        return Verdict(False, f"{param!r} should be of type {declared}, got {got} {value!r}")
    if not value_allowed(value, schema, options):
        return Verdict(False, f"{param!r}: {value!r} is not one of {options!r}")
    return OK


def value_allowed(value: Any, schema: dict[str, Any], options: list[Any]) -> bool:
    """BFCL's comparison: strings normalized; lists with their string items normalized (one
    level); dicts key by key; lists of dicts dict by dict, in order; anything else, and any
    value where the answer key holds a variable (a value of another type than declared), by
    plain equality."""
    declared = schema.get("type")
    expected = EXACT_TYPES.get(declared or "")
    first = next((o for o in options if o != ""), None)
    variable = first is not None and type(first) is not expected
    if expected is None or variable or (type(value) is not expected and declared != "float"):
        return value in options
    if expected is dict:
        return dict_allowed(value, options)
    items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
    if expected is list and EXACT_TYPES.get(items.get("type", "")) is dict:
        return list_of_dicts_allowed(value, options)
    if expected is str:
        return normalize(value) in [normalize(o) for o in options if isinstance(o, str)]
    if expected is list:
        return _normalized_items(value) in [_normalized_items(o) for o in options]
    return value in options


def _normalized_items(value: Any) -> list[Any]:
    """A list with its string items normalized (BFCL's list_checker; "" reads as [])."""
    items = list(value) if isinstance(value, list | tuple | str) else [value]
    return [normalize(x) if isinstance(x, str) else x for x in items]


def dict_allowed(value: dict[str, Any], options: list[Any]) -> bool:
    """A dict in the answer key maps each key to its allowed values: every key given is one
    of them with an allowed value (strings normalized), every key not given is optional."""
    for option in options:
        if not isinstance(option, dict):
            continue
        given_ok = all(
            key in option
            and (normalize(item) if isinstance(item, str) else item)
            in _normalized_items(option[key])
            for key, item in value.items()
        )
        if given_ok and all(k in value or _has_blank(v) for k, v in option.items()):
            return True
    return False


def _has_blank(allowed: Any) -> bool:
    """Python's `"" in allowed`, as BFCL tests an optional dict key (true for any string)."""
    return isinstance(allowed, list | tuple | str) and "" in allowed


def list_of_dicts_allowed(value: list[Any], options: list[Any]) -> bool:
    """A list of dicts against an allowed list of dicts: as long, and each dict allowed by
    the one at its place."""
    for option in options:
        seq = _as_list(option)
        if len(seq) == len(value) and all(
            isinstance(v, dict) and dict_allowed(v, [o]) for v, o in zip(value, seq, strict=True)
        ):
            return True
    return False


def _as_list(x: Any) -> list[Any]:
    return list(x) if isinstance(x, list | tuple | str) else [x]


def type_ok(value: Any, schema: dict[str, Any], options: list[Any]) -> bool:
    """BFCL's type check: the declared type (an int passes for a float at the top level
    only), or the type of the answer key's first value (BFCL's variables); in a list or
    tuple, each item has the declared item type exactly, or the type of the first item of
    the allowed list it is checked against, so [1, 2] is no list of floats unless the answer
    key itself writes ints. Like BFCL, only one level of items is checked."""
    examples = [o for o in options if o != ""]
    if not is_type(value, schema.get("type")):
        return bool(examples) and type(value) is type(examples[0])
    items = schema.get("items")
    if schema.get("type") not in ("array", "tuple") or not isinstance(items, dict):
        return True
    # An allowed value that is not a list ("" for optional) sets no item type: it passes.
    return any(
        not isinstance(option, list | tuple)
        or all(item_type_ok(v, items.get("type"), option) for v in value)
        for option in options
    )


def item_type_ok(item: Any, declared: str | None, option: list[Any] | tuple[Any, ...]) -> bool:
    """One item of a list: exactly the declared item type, or the type of the option's first
    item; BFCL compares types with ==, so neither an int for a float nor a bool for an int."""
    exact = EXACT_TYPES.get(declared or "")
    if exact is None or type(item) is exact:
        return True
    first = next((o for o in option if o != ""), None)
    return first is not None and type(item) is type(first)


NUMBER = (int, float)
PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "boolean": (bool,),
    "integer": (int,),
    "float": NUMBER,
    "number": NUMBER,
    "string": (str,),
    "any": (str,),  # BFCL reads "any" as a string, and so does the schema we show the model
    "array": (list,),
    "tuple": (list, tuple),
    "dict": (dict,),
    "object": (dict,),
}


EXACT_TYPES: dict[str, type] = {  # BFCL's PYTHON_TYPE_MAPPING, for the items of a list
    "string": str,
    "integer": int,
    "float": float,
    "boolean": bool,
    "array": list,
    "tuple": list,
    "dict": dict,
    "any": str,
}


def is_type(value: Any, declared: str | None) -> bool:
    """Whether `value` (decoded JSON or a Python literal) has the BFCL type `declared`; an
    unknown or missing type constrains nothing."""
    allowed = PYTHON_TYPES.get(declared or "")
    if allowed is None:
        return True
    if isinstance(value, bool):  # a bool is an int to Python, never to BFCL
        return bool in allowed
    return isinstance(value, allowed)


def normalize(text: str) -> str:
    """BFCL's string normalization: "April 1, 2024" and "april 1 2024" compare equal."""
    return text.translate(STRIPPED).lower().replace("'", '"')
