"""BFCL's AST check, written from its published rules: are a model's tool calls the expected ones.

Inputs are BFCL's own shapes: `functions` are its function docs (types like "dict", "float",
"tuple"), and each expected call is `{name: {param: [allowed values]}}`. The rules:
- the function name matches exactly; every required parameter is present; no parameter that
  the doc or the answer key does not list; every parameter of the answer key is given unless
  its allowed values include "" (then it may be left out, or given as an empty list);
- each value has the declared type (an int passes for a float, a bool never for an int; a
  value of the answer key's own type also passes, which is how BFCL allows variable names);
- each value equals one allowed value: strings after BFCL's normalization (lowercase, with
  spaces and , . / - _ * ^ removed, ' read as "), lists item by item, dicts key by key (a
  dict in the answer key maps each key to its allowed values), all recursively;
- simple and multiple: exactly one call; parallel: the calls match the expected ones one to
  one, in any order; irrelevance: no call at all; relevance: at least one call.

Cross-checked against BFCL's own `ast_checker` (bfcl-eval 2026.3.23, run in a throw-away venv
by /tmp/bfcl-work/crosscheck.py): 301 cases (220 drawn from the eight categories with answer
keys, 80 more with dict, tuple, any or list-of-dict parameters, and parallel_178), 3,482
outputs (the ground truth three ways, plus a wrong value, a wrong type, a missing required
param, a wrong name, an extra param, a dropped, duplicated or reordered call, ...): 3,481
same verdicts (99.97%). The one difference is by design: on parallel_178 reordered, BFCL's
greedy matching takes a call that two expected calls accept and then fails; we find the
one-to-one matching. Other known differences, not hit in the sample: we normalize strings at
every depth (BFCL one level down) and accept ints in lists of floats. Where BFCL's data makes
a case unsatisfiable (live_simple_112-68-0, an empty list of allowed values), both fail it.

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
    """Every expected call matched by its own call, in any order (a bipartite matching)."""
    verdicts = [[check_call(c, functions, a) for c in calls] for a in answers]
    fits = [[j for j, v in enumerate(row) if v.valid] for row in verdicts]
    owner: dict[int, int] = {}  # call index -> the answer it is matched to
    for i in range(len(answers)):
        if not _augment(i, fits, owner, set()):
            name = next(iter(answers[i]))
            same = [v for c, v in zip(calls, verdicts[i], strict=True) if c.name == name]
            why = same[0].error if same else "no call of that function"
            return Verdict(False, f"no call matches expected call {i} ({name}): {why}")
    return OK


def _augment(i: int, fits: list[list[int]], owner: dict[int, int], seen: set[int]) -> bool:
    for j in fits[i]:
        if j in seen:
            continue
        seen.add(j)
        if j not in owner or _augment(owner[j], fits, owner, seen):
            owner[j] = i
            return True
    return False


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
    """One argument: its type, then whether it is among the allowed values."""
    examples = [o for o in options if o != ""]
    if not type_ok(value, schema, examples):
        declared = schema.get("type", "any")
        got = type(value).__name__
        return Verdict(False, f"{param!r} should be of type {declared}, got {got} {value!r}")
    if not any(matches(value, option) for option in options):
        return Verdict(False, f"{param!r}: {value!r} is not one of {options!r}")
    return OK


def type_ok(value: Any, schema: dict[str, Any], examples: list[Any]) -> bool:
    """The declared type, or the type of the answer key's own values (BFCL's variables);
    the items of a list are checked against the declared item type."""
    if not (is_type(value, schema.get("type")) or any(type(value) is type(e) for e in examples)):
        return False
    items = schema.get("items")
    if isinstance(value, list | tuple) and isinstance(items, dict):
        inner = [x for e in examples if isinstance(e, list | tuple) for x in e]
        return all(type_ok(v, items, inner) for v in value)
    return True


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


def matches(value: Any, option: Any) -> bool:
    """Whether `value` equals the allowed `option`, recursively, strings normalized."""
    if option == "" and isinstance(value, list) and not value:
        return True  # an empty list stands for a list left out, as BFCL reads it
    if isinstance(option, str):
        return isinstance(value, str) and normalize(value) == normalize(option)
    if isinstance(option, bool) or isinstance(value, bool):
        return isinstance(option, bool) and isinstance(value, bool) and value == option
    if isinstance(option, int | float):
        return isinstance(value, int | float) and value == option
    if isinstance(option, list | tuple):
        return (
            isinstance(value, list | tuple)
            and len(value) == len(option)
            and all(matches(v, o) for v, o in zip(value, option, strict=True))
        )
    if isinstance(option, dict):
        return isinstance(value, dict) and dict_matches(value, option)
    return value == option


def dict_matches(value: dict[str, Any], option: dict[str, Any]) -> bool:
    """A dict in the answer key maps each key to its allowed values (as a parameter does);
    a dict whose values are not all lists is a literal and compares key by key."""
    if not all(isinstance(v, list) for v in option.values()):
        return value.keys() == option.keys() and all(matches(value[k], option[k]) for k in value)
    for key, item in value.items():
        if key not in option or not any(matches(item, o) for o in option[key]):
            return False
    return all(key in value or "" in allowed for key, allowed in option.items())
