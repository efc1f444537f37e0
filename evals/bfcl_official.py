"""BFCL's own checker beside ours: the verdict bfcl-eval's code gives a BFCL output we scored.

    .venv/bin/python -m evals.bfcl_official                 # every committed run folder
    .venv/bin/python -m evals.bfcl_official runs/a runs/b   # these run folders
    .venv/bin/python -m evals.bfcl_official --sweep         # calls built from the answer keys

For each line of a run folder's `bfcl.jsonl`, the model's output is read with our parser
(`model.chat.parse`, the model's own tool format; BFCL's handlers read theirs) and judged by
`bfcl_eval`'s `ast_checker` and its `is_empty_output` / `is_function_calling_format_output`,
wrapped the way its `eval_runner` wraps them (quoted in `official_correct`). It prints how
many verdicts agree with ours and every one that does not; exit status 1 if any differs.
`--sweep` also judges, both ways, calls built from every case's answer key and variations of
them (`sweep_calls`), beyond what a model happened to write.

bfcl-eval is installed with --no-deps, so importing its checker would fail on the model
vendors' SDKs that `bfcl_eval.constants.model_config` imports: only that module is replaced,
while the checker is loaded, by a stand-in with one model entry (`underscore_to_dot` off: our
models see BFCL's dotted function names as they are). The checker's code itself is BFCL's.

Not here: our checker (`evals.ast_check`), decoding (`model.chat`), the model.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evals import bfcl
from evals.ast_check import check
from evals.common import CaseResult, EvalCase
from evals.runner import held_results
from model.chat import ToolFormat, parse
from model.messages import ToolCall

MODEL_NAME = "edgeagent"  # the stand-in config's only entry
CONFIG_MODULE = "bfcl_eval.constants.model_config"
HERE = Path(__file__).parent


@dataclass(frozen=True)
class Official:
    """The pieces of bfcl-eval that decide a single-turn verdict."""

    ast_checker: Any
    python: Any  # bfcl_eval.constants.enums.Language.PYTHON
    is_empty_output: Any
    is_function_calling_format_output: Any


def load_official() -> Official:
    """BFCL's checker functions; ImportError when bfcl-eval (or a light dependency of its
    checker) is not installed."""
    stand_in = types.ModuleType(CONFIG_MODULE)
    stand_in.MODEL_CONFIG_MAPPING = {MODEL_NAME: types.SimpleNamespace(underscore_to_dot=False)}  # type: ignore[attr-defined]
    saved = sys.modules.get(CONFIG_MODULE)
    sys.modules[CONFIG_MODULE] = stand_in
    try:
        checker = _fresh("bfcl_eval.eval_checker.ast_eval.ast_checker")
        utils = _fresh("bfcl_eval.utils")
        enums = importlib.import_module("bfcl_eval.constants.enums")
    finally:  # the stand-in lives on only inside the modules loaded above
        if saved is None:
            sys.modules.pop(CONFIG_MODULE, None)
        else:
            sys.modules[CONFIG_MODULE] = saved
    return Official(
        checker.ast_checker,
        enums.Language.PYTHON,
        utils.is_empty_output,
        utils.is_function_calling_format_output,
    )


def _fresh(name: str) -> types.ModuleType:
    """A private copy of module `name`, not registered in sys.modules."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(f"no module {name}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def official_correct(official: Official, case: EvalCase, output: str, fmt: ToolFormat) -> bool:
    """BFCL's verdict on `output`. As in bfcl_eval's eval_runner: a decode that fails is no
    call in the (ir)relevance categories (`_evaluate_single_relevance_entry`: irrelevance
    right without a call, relevance right with one) and wrong in the others
    (`_evaluate_single_ast_entry`), where the decoded calls then go to `ast_checker`."""
    parsed = parse(output, fmt)
    decoded = None if parsed.errors else [{c.name: c.arguments} for c in parsed.calls]
    if "relevance" in case.category:  # BFCL's is_relevance_or_irrelevance
        has_call = decoded is not None and not official.is_empty_output(decoded)
        return not has_call if "irrelevance" in case.category else has_call
    if decoded is None or not official.is_function_calling_format_output(decoded):
        return False
    verdict = official.ast_checker(
        case.data["functions"], decoded, case.expected, official.python, case.category,
        MODEL_NAME,
    )  # fmt: skip
    return bool(verdict["valid"])


def disagreements(
    official: Official, results: list[CaseResult], cases: dict[str, EvalCase], fmt: ToolFormat
) -> list[str]:
    """One line for each result whose verdict differs from BFCL's."""
    out = []
    for r in results:
        theirs = official_correct(official, cases[r.id], r.output, fmt)
        if theirs != r.correct:
            out.append(f"{r.id}: ours {r.correct}, BFCL {theirs}: {r.output[:120]!r}")
    return out


def check_folder(official: Official, folder: Path, cases: dict[str, EvalCase]) -> list[str]:
    """The disagreements in one run folder's bfcl.jsonl, judged in its model's tool format."""
    from evals.runner import read_run
    from model.loader import tool_format_of

    results = list(held_results(folder / "bfcl.jsonl").values())
    fmt = tool_format_of(read_run(folder)["model"])
    return disagreements(official, results, cases, fmt)


Calls = list[tuple[str, dict[str, Any]]]
VARIATIONS = ("as is", "ints", "floats", "upper", "underscores", "reversed", "swapped", "dropped")


def sweep_calls(case: EvalCase) -> list[tuple[str, Calls]]:
    """Calls built from the case's answer key (its first and its second allowed values), as
    is and varied: floats written as ints, ints as floats, strings upper-cased or with spaces
    as underscores, calls reversed or the first two swapped, the first parameter dropped."""
    out = []
    for pick in (0, 1):
        truth: Calls = []
        for answer in case.expected or []:
            name, params = next(iter(answer.items()))
            args = {}
            for param, options in params.items():
                real = [o for o in options if o != ""]
                if real:
                    args[param] = copy.deepcopy(real[pick % len(real)])
            truth.append((name, args))
        out += [(f"{how} {pick}", _vary(truth, how)) for how in VARIATIONS]
    return out


def _vary(calls: Calls, how: str) -> Calls:
    if how == "reversed":
        return calls[::-1]
    if how == "swapped":
        return [*calls[1:2], *calls[:1], *calls[2:]]
    if how == "dropped":
        return [(n, dict(list(a.items())[1:]) if i == 0 else a) for i, (n, a) in enumerate(calls)]
    return [(n, {k: _vary_value(v, how) for k, v in a.items()}) for n, a in calls]


def _vary_value(v: Any, how: str) -> Any:
    if isinstance(v, list):
        return [_vary_value(x, how) for x in v]
    if isinstance(v, dict):
        return {k: _vary_value(x, how) for k, x in v.items()}
    if isinstance(v, float) and how == "ints" and v.is_integer():
        return int(v)
    if isinstance(v, int) and not isinstance(v, bool) and how == "floats":
        return float(v)
    if isinstance(v, str) and how in ("upper", "underscores"):
        return v.upper() if how == "upper" else v.replace(" ", "_")
    return v


def sweep(official: Official, cases: list[EvalCase]) -> tuple[int, list[str]]:
    """How many swept calls were judged, and one line for each where the verdicts differ."""
    judged, differ = 0, []
    for case in cases:
        if not case.expected or "relevance" in case.category:
            continue
        for label, calls in sweep_calls(case):
            tool_calls = [ToolCall(name=n, arguments=a) for n, a in calls]
            ours = check(case.category, tool_calls, case.data["functions"], case.expected).valid
            theirs = official.ast_checker(
                case.data["functions"], [{n: a} for n, a in calls], case.expected,
                official.python, case.category, MODEL_NAME,
            )["valid"]  # fmt: skip
            judged += 1
            if ours != theirs:
                differ.append(f"{case.id} ({label}): ours {ours}, BFCL {theirs}: {calls}")
    return judged, differ


def committed_folders() -> list[Path]:
    """The committed run folders that hold BFCL outputs."""
    return sorted(p.parent for p in (HERE / "results").glob("*/bfcl.jsonl"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m evals.bfcl_official", description=__doc__)
    p.add_argument("folders", nargs="*", help="run folders (default: the committed ones)")
    p.add_argument("--sweep", action="store_true", help="also calls built from the answer keys")
    args = p.parse_args(argv)
    official = load_official()
    cases = {c.id: c for c in bfcl.load_cases("all")}
    status = 0
    for folder in [Path(f) for f in args.folders] or committed_folders():
        held = len(held_results(folder / "bfcl.jsonl"))
        differ = check_folder(official, folder, cases)
        print(f"{folder}: {held - len(differ)}/{held} verdicts agree with BFCL's checker")
        print("\n".join(f"  {line}" for line in differ))
        status |= bool(differ)
    if args.sweep:
        judged, differ = sweep(official, list(cases.values()))
        print(f"sweep: {judged - len(differ)}/{judged} verdicts agree with BFCL's checker")
        print("\n".join(f"  {line}" for line in differ))
        status |= bool(differ)
    return status


if __name__ == "__main__":
    sys.exit(main())
