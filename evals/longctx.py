"""The long-context suite: questions about a long text, in four arms that tell model from scaffold.

Cases come from `evals.longcontext.make_case` (its six kinds at 10k, 100k and 1M characters,
`SEEDS_PER_SPLIT` seeds of each in each split) or from a JSONL file (`data`, format in
evals/README.md). Every case is run four ways, as cases next to each other in the same split
(`<id>:<arm>`; categories like `needle-100k:rlm`):
- direct: the text's first whole lines that fit the model's context window (read from its
  config, room kept for the answer), then the question; one greedy generation, no tools;
- scaffold: the fixed decomposition (`rlm.prefetch`) and the focused answer on what it found,
  with no model tool turn (`rlm.model_turns` off);
- model: the text in the sandbox but nothing searched before turn one, and the model's own
  last turn is the answer (`rlm.prefetch` and `rlm.focused_answer` off): whatever is found,
  the model found with search_context, count_lines, read_context or python/llm_query;
- rlm: `agent.attach.run_with_attachment` as a user gets it: both.
Cases are ordered by size, smallest first, so a `--limit` smoke never starts with 1M texts.

Scoring (`is_correct`): count and aggregate answers compare numbers as numbers (the first
number in the answer that the question does not itself contain); other answers must appear as
whole tokens in the normalized answer (`evals.scoring.contains_answer`: case, punctuation,
spaces).

Not here: making the texts (`evals.longcontext`), the RLM machinery (`agent.rlm`), the runner.
"""

from __future__ import annotations

import json
import re
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from agent.attach import run_with_attachment
from agent.events import drain
from agent.settings import Settings
from evals.common import CaseResult, EvalCase, Split, guard_stops, in_split, split_of
from evals.longcontext import KINDS, Kind, make_case
from evals.scoring import contains_answer
from model.chat import render
from model.generate import Generator, SamplingSettings
from model.messages import Message

SUITE = "longctx"
SIZES = (10_000, 100_000, 1_000_000)
METHODS = ("direct", "scaffold", "model", "rlm")
# What each agent arm switches off of the RLM scaffold (agent.settings.RlmSettings).
ARMS: dict[str, dict[str, bool]] = {
    "scaffold": {"model_turns": False},
    "model": {"prefetch": False, "focused_answer": False},
    "rlm": {},
}
NUMERIC_KINDS = ("count", "aggregate")
SEEDS_PER_SPLIT = 2
FALLBACK_WINDOW = 4096  # a model whose config names no context length
ANSWER_TOKENS = 64
DIRECT_SYSTEM = (
    "You answer questions about a document. Reply with the answer only: the code, number or "
    "name, written as the document writes it."
)
NUMBER = re.compile(r"\b\d[\d,]*(?:\.\d+)?")


# --- scoring ----------------------------------------------------------------------------------


def numbers(text: str) -> list[float]:
    """The numbers in `text`, in order; thousands separators are ignored ("1,204" is 1204)."""
    found = (m.group().replace(",", "").rstrip(".") for m in NUMBER.finditer(text))
    return [float(n) for n in found if n]


def count_correct(output: str, expected: str | int, question: str = "") -> bool:
    """The first number of the answer, skipping numbers the question itself contains."""
    asked = set(numbers(question))
    said = [n for n in numbers(output) if n not in asked]
    return bool(said) and said[0] == float(expected)


def is_correct(kind: str, output: str, expected: str | int, question: str = "") -> bool:
    if kind in NUMERIC_KINDS:
        return count_correct(output, expected, question)
    return contains_answer(output, str(expected))


# --- cases ------------------------------------------------------------------------------------


def size_label(chars: int) -> str:
    return f"{chars // 1_000_000}M" if chars >= 1_000_000 else f"{chars // 1000}k"


def size_bucket(chars: int) -> int:
    """The smallest standard size a custom text fits in (the largest one past that)."""
    return next((s for s in SIZES if chars <= s), SIZES[-1])


def seeds(kind: Kind, chars: int, split: Split) -> list[int]:
    """The first SEEDS_PER_SPLIT seeds whose case falls in each split: fixed, and both splits
    get every kind and size."""
    wanted = ("train", "test") if split == "all" else (split,)
    chosen: list[int] = []
    for part in wanted:
        found = (s for s in range(1000) if split_of(f"{kind}-{chars}-{s}") == part)
        chosen += [next(found) for _ in range(SEEDS_PER_SPLIT)]
    return sorted(chosen)


def _pair(base: EvalCase) -> list[EvalCase]:
    """The case once per arm: same split (decided by the base id), arm in id and category."""
    return [
        base.model_copy(
            update={
                "id": f"{base.id}:{m}",
                "category": f"{base.category}:{m}",
                "data": {**base.data, "method": m},
            }
        )
        for m in METHODS
    ]


@lru_cache(maxsize=4)
def generated(kind: Kind, chars: int, seed: int) -> tuple[str, str, str]:
    """(question, answer, text) of a generated case; cached since every arm reads it."""
    case = make_case(kind, chars, seed)
    return case.question, case.answer, case.text


def _generated_cases(split: Split, limit: int | None) -> list[EvalCase]:
    out: list[EvalCase] = []
    for chars in SIZES:
        per_kind = {k: seeds(k, chars, split) for k in KINDS}
        for rank in range(max(len(s) for s in per_kind.values())):
            for kind in KINDS:
                if limit is not None and len(out) >= limit:
                    return out
                seed = per_kind[kind][rank]
                question, answer, _ = generated(kind, chars, seed)
                base = EvalCase(
                    suite=SUITE,
                    id=f"{kind}-{chars}-{seed}",
                    category=f"{kind}-{size_label(chars)}",
                    prompt=question,
                    expected=answer,
                    data={"kind": kind, "chars": chars, "seed": seed},
                )
                out += _pair(base)
    return out


def _custom_cases(path: Path, split: Split) -> list[EvalCase]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    out: list[EvalCase] = []
    for number, row in enumerate(rows, 1):
        missing = [k for k in ("id", "question", "answer") if k not in row]
        if missing or ("text" in row) == ("text_path" in row):
            need = ", ".join(missing) or "exactly one of text, text_path"
            raise ValueError(f"{path} line {number}: needs {need}")
        if not in_split(str(row["id"]), split):
            continue
        data: dict[str, Any] = {"kind": str(row.get("kind", "custom"))}
        if "text" in row:
            data["text"], data["chars"] = row["text"], len(row["text"])
        else:
            text_path = (path.parent / row["text_path"]).resolve()
            data["text_path"], data["chars"] = str(text_path), text_path.stat().st_size
        label = size_label(size_bucket(data["chars"]))
        base = EvalCase(
            suite=SUITE,
            id=str(row["id"]),
            category=f"{data['kind']}-{label}",
            prompt=str(row["question"]),
            expected=str(row["answer"]),
            data=data,
        )
        out.append(base)
    out.sort(key=lambda c: c.data["chars"])  # stable: file order within a size
    return [c for base in out for c in _pair(base)]


def load_cases(
    split: Split,
    limit: int | None = None,
    data: str | Path | None = None,
    categories: tuple[str, ...] = (),
) -> list[EvalCase]:
    """Generated cases (or the JSONL file `data`), smallest texts first, the arms adjacent;
    `categories` (from `expand`) keeps only the arms, sizes and kinds it names."""
    if data is not None:
        cases = _custom_cases(Path(data).expanduser(), split)
    else:  # picking needs every case; a plain limit stops before making the big texts
        cases = _generated_cases(split, None if categories else limit)
    if categories:
        cases = picked(cases, categories)
    return cases[:limit] if limit is not None else cases


def expand(names: str) -> tuple[str, ...]:
    """Comma-separated arms (direct, scaffold, model, rlm), sizes (10k, 100k, 1M) and kinds
    (generated or a custom file's own): a kind is checked when cases load."""
    return tuple(n.strip() for n in names.split(",") if n.strip())


def picked(cases: list[EvalCase], categories: tuple[str, ...]) -> list[EvalCase]:
    """The cases of the named arms and sizes and kinds (each: any when none is named)."""
    arms = {c for c in categories if c in METHODS}
    sizes = {c for c in categories if c in {size_label(s) for s in SIZES}}
    kinds = set(categories) - arms - sizes

    def keep(case: EvalCase) -> bool:
        kind, size = case.category.split(":")[0].rsplit("-", 1)
        return all(
            not wanted or value in wanted
            for value, wanted in ((case.data["method"], arms), (size, sizes), (kind, kinds))
        )

    known = {case.category.split(":")[0].rsplit("-", 1)[0] for case in cases}
    if kinds - known:
        raise ValueError(
            f"no long-context kind {', '.join(sorted(kinds - known))}; "
            f"known: {', '.join(sorted(known))}, the arms {', '.join(METHODS)}, "
            f"the sizes {', '.join(size_label(s) for s in SIZES)}"
        )
    return [case for case in cases if keep(case)]


def case_text(case: EvalCase) -> str:
    d = case.data
    if "text" in d:
        return str(d["text"])
    if "text_path" in d:
        return Path(d["text_path"]).read_text(encoding="utf-8", errors="replace")
    return generated(d["kind"], d["chars"], d["seed"])[2]


# --- direct -----------------------------------------------------------------------------------


def context_window(generator: Generator) -> int:
    """The model's context length from its config, or its server's word (32,768 for
    Qwen2.5-Coder-0.5B)."""
    return int(generator.lm.window or FALLBACK_WINDOW)


def first_tokens(generator: Generator, text: str, budget: int) -> str:
    """The text itself when it fits `budget` tokens, else its whole lines within the first
    `budget` tokens. Only a prefix a little longer than needed is tokenized."""
    chars = max(budget, 1) * 8
    while True:
        ids = generator.encode(text[:chars])
        if len(ids) > budget or chars >= len(text):
            break
        chars *= 2
    if len(ids) <= budget:
        return text
    kept = generator.lm.tokenizer.decode(ids[:budget])
    cut = kept.rfind("\n")
    return kept[:cut] if cut > 0 else kept


def direct_prompt(generator: Generator, question: str, kept: str, total: int) -> str:
    note = ""
    if len(kept) < total:
        note = f"\n[The document goes on: only its first {len(kept):,} of {total:,} characters fit]"
    user = f"Document:\n{kept}{note}\n\nQuestion: {question}"
    messages = [Message(role="system", content=DIRECT_SYSTEM), Message(role="user", content=user)]
    lm = generator.lm
    return render(lm.tokenizer, messages, None, lm.tool_format)


def run_direct(
    generator: Generator, question: str, text: str, settings: Settings
) -> tuple[str, dict[str, Any]]:
    window = context_window(generator)
    sampling = SamplingSettings(max_new_tokens=ANSWER_TOKENS, temperature=0.0)
    overhead = len(generator.encode(direct_prompt(generator, question, "x", len(text) + 1)))
    budget = max(0, window - overhead - ANSWER_TOKENS - 8)  # 8: the note's digits may vary
    kept = first_tokens(generator, text, budget)
    prompt = generator.encode(direct_prompt(generator, question, kept, len(text)))
    done = generator.complete(prompt, sampling, settings.guard)
    details = {
        "window_tokens": window,
        "kept_chars": len(kept),
        "cut_chars": len(text) - len(kept),
        "truncated": len(kept) < len(text),
        "prompt_tokens": done.prompt_tokens,
        "new_tokens": len(done.token_ids),
        "finish_reason": done.finish_reason,
        "ttft_s": done.ttft_s,
    }
    return done.text.strip(), details


# --- scaffold, model, rlm ----------------------------------------------------------------------


def rlm_settings(settings: Settings, arm: str = "rlm") -> Settings:
    """Greedy, with the sandbox allowed (offline mode refuses it), no web tools in case a
    custom text is short enough to go inline, and the arm's parts of the scaffold off."""
    agent = settings.agent.model_copy(update={"tools": [], "log": False})
    sampling = settings.sampling.model_copy(update={"temperature": 0.0})
    rlm = settings.rlm.model_copy(update=ARMS[arm])
    update = {"offline": False, "agent": agent, "sampling": sampling, "rlm": rlm}
    return settings.model_copy(update=update)


def run_rlm(
    generator: Generator, question: str, text: str, settings: Settings, arm: str = "rlm"
) -> tuple[str, dict[str, Any], str | None]:
    arm_settings = rlm_settings(settings, arm)
    traj = drain(run_with_attachment(generator, question, text, arm_settings))
    details = {
        "mode": traj.mode,
        "outcome": traj.outcome,
        "steps": len(traj.steps),
        "guard_stops": guard_stops(traj.steps),
        "tool_turns": sum(1 for s in traj.steps if s.tool_runs),
        "tools": [r.call.name for s in traj.steps for r in s.tool_runs],
        "prefetch": arm_settings.rlm.prefetch,
        "new_tokens": traj.sampled_tokens,
        "ttft_s": traj.steps[0].ttft_s if traj.steps else 0.0,
    }
    return (traj.final_answer or "").strip(), details, traj.id


# --- one case ---------------------------------------------------------------------------------


def run_case(generator: Generator, case: EvalCase, settings: Settings) -> CaseResult:
    start = time.perf_counter()
    text, method, kind = case_text(case), case.data["method"], case.data["kind"]
    trajectory_id = None
    if method == "direct":
        output, details = run_direct(generator, case.prompt, text, settings)
    else:
        output, details, trajectory_id = run_rlm(generator, case.prompt, text, settings, method)
    correct = is_correct(kind, output, case.expected, case.prompt)
    return CaseResult(
        suite=SUITE,
        id=case.id,
        category=case.category,
        score=1.0 if correct else 0.0,
        correct=correct,
        output=output,
        expected=case.expected,
        details={"method": method, "kind": kind, "chars": len(text), **details},
        seconds=time.perf_counter() - start,
        trajectory_id=trajectory_id,
    )
