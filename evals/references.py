"""Reference answers as training examples: what a right reply to a train-split case looks like,
written from the data set's answer key, for the cases the model's own rollouts do not solve.

Each example is the eval's own prompt (the same token ids the eval decodes from) followed by
the reference reply as the model's chat template renders an assistant turn, end token
included, with the loss on the reply only. Every example carries `meta["source"] =
"reference"`, so a report counts them apart from the model's own successful episodes.

- `bfcl`: the expected calls, each parameter given its first allowed value (an optional one
  whose allowed values are only "" is left out), written as the model writes calls
  (`natural_calls`: bare JSON lines for Qwen2.5-Coder; else the template's rendering); the
  calls are checked by the eval's own scorer before they are kept, so a reference is always
  scored right. An irrelevance case's reference is one sentence saying no function fits.
- `masked`: BFCL's own irrelevance cases are few (97 in the train split), and the model's
  wrong answers on them are well-formed calls to a near function that cannot do the request.
  So a train case that needs one call (simple, multiple, live_simple, live_multiple) is shown
  again with the function it needs taken out and the reply "no function fits": the same
  request with its sibling functions (a near miss), or, where it had only the one, with the
  functions of a case half the category away (Hammer's function masking); skipped where a
  sibling's name is nearly the needed one's (a renamed copy may do the same job). With the `bfcl`
  references on the same cases the model sees both sides: the function there, call it; gone,
  say so.
- `abstain`: BFCL's own irrelevance and live_irrelevance train cases only, each answered that
  no function fits: `bfcl=N` takes N of each of its 11 categories, so this is the way to give
  "no call" more weight without more calls (live_irrelevance's terse requests, "air", "turn
  on", are where the masked near misses do not reach). The cases `bfcl` also takes are the
  same examples, kept once (`evals.train.reference_examples`).
- `doomloop`: the enumeration families only (count, spell, alphabet, primes, tables, ...), where
  loops happen: the whole list once, comma-separated, and the end token; kept where the suite's
  own check accepts it. Puzzles with a bare number are left out (a reference without the
  working would teach guessing), and so is the python-tool family (`pytools` does those).
- `pytools`: a real agent episode with the python tool whose two model turns are scripted
  (the task's reference call, then "The answer is ...") and everything else real: the loop's
  prompts, the sandbox's output. Kept when the judge accepts the reply. And a second episode
  of the same task whose first call is broken (a missing import, an extra or missing
  parenthesis, no code), its error shown by the real sandbox, then the fixed call and the
  answer: only those two trained, so the model learns to fix a failed call rather than to
  answer from an error.
- `searchqa`, `split`, `read`: search-QA's first search, its question split, and a whole
  free-choice episode from search to answer (`evals.search_references` says how).

Test-split cases never become examples: `examples` loads the train split itself.

Not here: rollouts (`evals.rollouts`), the losses (`model.train.sft`), choosing the mix (the
caller).
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Callable
from difflib import SequenceMatcher
from functools import cache
from typing import Any

from agent.loop import run
from agent.settings import Settings
from agent.toolbox import toolbox
from agent.trajectory import Trajectory
from evals import bfcl, doomloop, pytasks, runner, searchqa
from evals.ast_check import NO_CALL_CATEGORIES
from evals.common import EvalCase
from evals.doomprompts import answer_ok
from evals.pytasks_check import Task, judge
from evals.search_references import read_examples, search_examples, split_examples
from evals.turns import call_text, encode, end_id, natural_calls, reply_ids
from model.chat import render
from model.loader import LoadedModel
from model.messages import Message, ToolCall
from model.scripted import ScriptedGenerator
from model.train.data import TrainExample, examples_from_steps

NO_FIT = "None of the available functions can do this, so I will not call any of them."


def first_allowed(answer: dict[str, list[Any]]) -> dict[str, Any]:
    """One concrete argument set from BFCL's allowed values: the first of each, optional
    parameters (only "" allowed) left out."""
    out = {}
    for name, allowed in answer.items():
        given = [v for v in allowed if v != ""]
        if given:
            out[name] = given[0]
    return out


def bfcl_reply(case: EvalCase) -> Message | None:
    """The reference reply of a BFCL case, or None where the answer key yields no call that
    the scorer accepts (a few live cases have unsatisfiable keys)."""
    if case.category.endswith(NO_CALL_CATEGORIES):
        return Message(role="assistant", content=NO_FIT)
    calls = [
        ToolCall(name=name, arguments=first_allowed(params))
        for expected in case.expected or []
        for name, params in expected.items()
    ]
    if not calls:
        return None
    verdict = bfcl.check(case.category, calls, case.data["functions"], case.expected or [])
    return Message(role="assistant", tool_calls=calls) if verdict.valid else None


def bfcl_example(lm: LoadedModel, case: EvalCase) -> TrainExample | None:
    reply = bfcl_reply(case)
    if reply is None:
        return None
    messages = bfcl.build_messages(case)
    tools = [bfcl.to_tool(f) for f in case.data["functions"]]
    prompt = render(lm.tokenizer, messages, tools, lm.tool_format)
    natural = natural_calls(lm, reply.tool_calls)
    if natural is not None:
        ids: list[int] | None = encode(lm, natural) + [end_id(lm)]
    else:
        ids = reply_ids(lm, prompt, messages, reply, tools)
    return _example(encode(lm, prompt), ids, case) if ids else None


def pytools_examples(lm: LoadedModel, case: EvalCase, settings: Settings) -> list[TrainExample]:
    """A real agent episode with the python tool in which the model's turns are scripted (the
    reference call, then the answer) and everything else is real: the prompts the loop builds,
    the sandbox's output, the frame around it. Kept only when the tool printed the answer and
    the suite's judge accepts the reply. Then the same task recovering from a broken first call
    (`broken_call`): that call and its error are context, not trained; the fixed call and the
    answer after them are."""
    task = Task.model_validate(case.data)
    meta = {"source": "reference", "suite": case.suite, "case": case.id, "category": case.category}
    out = []
    for broken in (None, broken_call(task, case.id)):
        traj = scripted_episode(lm, case, settings, task, broken)
        printed = [r.text for s in traj.steps for r in s.tool_runs if r.error is None]
        if (
            not printed
            or task.answer not in printed[0]
            or not judge(task, traj.final_answer or "")[0]
        ):
            continue
        steps = traj.steps[1:] if broken else traj.steps  # the broken call is not imitated
        out += [TrainExample(e.input_ids, e.mask, {**e.meta, **meta, "recovery": bool(broken)})
                for e in examples_from_steps(steps, {"trajectory": traj.id})]  # fmt: skip
    return out


def scripted_episode(lm: LoadedModel, case: EvalCase, settings: Settings, task: Task,
                     broken: ToolCall | None) -> Trajectory:  # fmt: skip
    calls = [c for c in (broken, ToolCall(name="python", arguments={"code": task.code})) if c]
    script = [call_text(lm, c) for c in calls] + [f"The answer is {task.answer}."]
    episode = pytasks.episode_settings(settings)
    generator = ScriptedGenerator(lm, list(script), end_id=end_id(lm))
    with toolbox(episode, question=case.prompt) as tools:
        return run(generator, case.prompt, tools, episode)


def broken_call(task: Task, seed: str) -> ToolCall:
    """The reference call broken as small models break theirs (seen in our python-tool runs):
    a module used without its import (where the code imports one: the commonest failure of
    our first adapters), else an extra closing parenthesis, a missing one, or no code at all.
    Which one is fixed by the case id, so every run builds the same examples."""
    code = task.code.strip()
    body = [line for line in code.splitlines() if not line.startswith(("import ", "from "))]
    if len(body) < len(code.splitlines()):
        return ToolCall(name="python", arguments={"code": "\n".join(body)})
    kinds: list[dict[str, Any]] = [{"code": code + ")"}, {}]
    if code.endswith(")"):
        kinds.append({"code": code[:-1]})
    return ToolCall(name="python", arguments=kinds[zlib.crc32(seed.encode()) % len(kinds)])


MASKABLE = ("simple_python", "multiple", "live_simple", "live_multiple")


def masked_case(case: EvalCase, siblings: list[EvalCase]) -> EvalCase | None:
    """`case` without the function its answer calls, as an irrelevance case; None where it is
    not a one-call case. `siblings`: its category's train cases, to borrow functions from where
    it had no other (the one half the list away: far enough to be unrelated, and fixed)."""
    if case.category not in MASKABLE or len(case.expected or []) != 1:
        return None
    needed = set(case.expected[0])
    functions = [f for f in case.data["functions"] if f["name"] not in needed]
    if not functions:
        other = siblings[(siblings.index(case) + len(siblings) // 2) % len(siblings)]
        functions = [f for f in other.data["functions"] if f["name"] not in needed]
    if not functions or any(_renamed(n, f["name"]) for n in needed for f in functions):
        return None
    data = {**case.data, "functions": functions}
    return case.model_copy(update={"id": f"{case.id}:masked", "category": "masked_irrelevance",
                                   "expected": [], "data": data})  # fmt: skip


def _renamed(a: str, b: str) -> bool:
    """Names so alike (`uber.ride`, `uber.ride2`) that the other may do the same job."""
    return SequenceMatcher(None, a, b).ratio() >= 0.9


@cache
def _bfcl_train() -> dict[str, list[EvalCase]]:
    by: dict[str, list[EvalCase]] = {}
    for case in runner.load_suite_cases("bfcl", "train", None, None):
        by.setdefault(case.category, []).append(case)
    return by


# BFCL's dev split, where no function fits: train cases past what the recipe reaches. Its
# references take at most 45 cases of a category (`bfcl=45`) and its rollouts the first 25;
# the margin covers references dropped as too long, which reach further (measured with
# --max-length 800: the last irrelevance reference is case 45, the last live_irrelevance one
# case 51). A run given more references per category trains on part of this split.
DEV_START = 45 + 10


def no_fit_dev_cases(limit: int | None = None) -> list[EvalCase]:
    """The dev split of BFCL's no-fit categories (irrelevance, live_irrelevance): each one's
    train cases from `DEV_START` on, at most `limit` of each, in the suite's order."""
    by = _bfcl_train()
    return [c for cat in sorted(by) if cat.endswith(NO_CALL_CATEGORIES)
            for c in by[cat][DEV_START:][:limit]]  # fmt: skip


def masked_example(lm: LoadedModel, case: EvalCase) -> TrainExample | None:
    masked = masked_case(case, _bfcl_train().get(case.category, [case]))
    example = bfcl_example(lm, masked) if masked else None
    if example is not None:
        example.meta["category"] = f"masked/{case.category}"
    return example


def abstain_example(lm: LoadedModel, case: EvalCase) -> TrainExample | None:
    return bfcl_example(lm, case) if case.category.endswith(NO_CALL_CATEGORIES) else None


def doomloop_reply(case: EvalCase) -> Message | None:
    if case.data.get("agent"):
        return None
    check = case.data["check"]
    if not check.get("items"):  # a puzzle's bare number would teach guessing, not ending
        return None
    text = ", ".join(map(str, check["items"]))
    ok = answer_ok(text, str(case.expected), check)  # the suite's own check, as for BFCL
    return Message(role="assistant", content=text) if ok else None


def doomloop_example(lm: LoadedModel, case: EvalCase) -> TrainExample | None:
    reply = doomloop_reply(case)
    if reply is None or not case.id.endswith(":off"):  # one example per prompt, not per arm
        return None
    messages = doomloop.messages(case.prompt)
    prompt = render(lm.tokenizer, messages, None, lm.tool_format)
    ids = reply_ids(lm, prompt, messages, reply, None)
    return _example(encode(lm, prompt), ids, case) if ids else None


def _example(prompt_ids: list[int], reply: list[int], case: EvalCase) -> TrainExample:
    meta = {"source": "reference", "suite": case.suite, "case": case.id, "category": case.category}
    return TrainExample(list(prompt_ids) + reply, [0] * len(prompt_ids) + [1] * len(reply), meta)


def _one(build: Callable[[LoadedModel, EvalCase], TrainExample | None]) -> Builder:
    return lambda lm, case, settings: [e for e in [build(lm, case)] if e]


Builder = Callable[[LoadedModel, EvalCase, Settings], list[TrainExample]]
# The suite whose train cases a builder reads, where not its own.
SOURCE = {"masked": "bfcl", "abstain": "bfcl"}
BUILDERS: dict[str, Builder] = {
    "bfcl": _one(bfcl_example),
    "masked": _one(masked_example),
    "abstain": _one(abstain_example),
    "doomloop": _one(doomloop_example),
    "pytools": pytools_examples,
    "searchqa": search_examples,
    "split": split_examples,
    "read": read_examples,
}


def train_cases(suite: str) -> list[EvalCase]:
    """The cases `suite`'s builder reads: search-QA's training worlds, else a train split."""
    if suite in ("searchqa", "split", "read"):
        return searchqa.training_cases()
    return runner.load_suite_cases(SOURCE.get(suite, suite), "train", None, None)


def examples(
    lm: LoadedModel,
    suite: str,
    settings: Settings,
    per_category: int | None = None,
    max_tokens: int | None = None,
) -> list[TrainExample]:
    """The reference examples of `suite`'s train split: at most `per_category` cases of each
    category (in the suite's order), each example at most `max_tokens` long (a longer one is
    dropped, never cut, since its reply is at the end)."""
    if suite not in BUILDERS:
        raise ValueError(f"no reference answers for {suite!r}; choose {', '.join(BUILDERS)}")
    out: list[TrainExample] = []
    taken: Counter[str] = Counter()
    for case in train_cases(suite):
        group = case.category.split(":")[0]
        if per_category is not None and taken[group] >= per_category:
            continue
        found = [e for e in BUILDERS[suite](lm, case, settings)
                 if max_tokens is None or len(e.input_ids) <= max_tokens]  # fmt: skip
        taken[group] += bool(found)
        out += found
    return out
