"""Running eval suites and writing their results: per-case JSONL, a Markdown summary, PNG plots.

A run is a folder: `run.json` (model, adapter, settings, commit, date, split, limit, and the
summary), `<suite>.jsonl` (one CaseResult per line, written as each case finishes, so an
interrupted run keeps what it did), `summary.md` and `<suite>.png`. Each result line carries
the commit and the settings hash that produced it, and run.json lists every commit its lines
came from (`commits`), since a folder can be grown by several commands (`--resume`). Two runs
are compared in `evals.compare`. The suites themselves live in their own modules (`SUITES`).

Not here: loading the model or printing (the CLI does both), scoring (each suite's scorers).
"""

from __future__ import annotations

import importlib
import json
import statistics
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.settings import Settings
from evals import plots
from evals.common import CaseResult, EvalCase, Split, settings_hash
from evals.stats import wilson
from model import adapter as adapters
from model.embedded import lookup
from model.generate import Generator
from model.loader import resolve_device, resolve_dtype, resolve_quant
from model.served import ServedModel

SUITES = {
    "bfcl": "evals.bfcl",
    "searchqa": "evals.searchqa",
    "longctx": "evals.longctx",
    "doomloop": "evals.doomloop",
    "latency": "evals.latency",
    "incar": "evals.incar",
    "pytools": "evals.pytasks",
}
Progress = Callable[[str, int, int, CaseResult], None]  # suite, done, total, last result


def suite_module(name: str) -> Any:
    if name not in SUITES:
        raise ValueError(f"no suite {name!r}; choose from {', '.join(SUITES)} or all")
    return importlib.import_module(SUITES[name])


def load_suite_cases(
    name: str, split: Split, limit: int | None, data: str | None, categories: str | None = None
) -> list:
    """A suite's cases; `categories` (comma-separated) picks within a suite: what each suite
    takes is `evals.choices.CATEGORIES_HELP`."""
    if not categories:
        return suite_module(name).load_cases(split, limit=limit, data=data)
    module = suite_module(name)
    if not hasattr(module, "expand"):
        pickable = [n for n in SUITES if hasattr(suite_module(n), "expand")]
        raise ValueError(f"--categories picks in {', '.join(pickable)}; {name} has none")
    return module.load_cases(split, limit=limit, data=data, categories=module.expand(categories))


def run_suite(
    name: str,
    generator: Generator,
    settings: Settings,
    cases: list[EvalCase],
    out: Path,
    progress: Progress | None = None,
    resume: bool = False,
) -> list[CaseResult]:
    """Each case's result, appended to OUT/<suite>.jsonl as it finishes. `resume`: the cases
    that file already holds are not run again (an interrupted run, or a smaller limit before);
    their results come first."""
    module = suite_module(name)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.jsonl"
    finished = held_results(path) if resume else {}
    stamp = {"commit": commit(), "settings_hash": settings_hash(settings)}
    results = [finished[c.id] for c in cases if c.id in finished]
    for n, result in enumerate(results if progress else [], 1):
        progress(name, n, len(cases), result)  # type: ignore[misc]
    with path.open("a" if resume else "w") as f:
        if resume and path.stat().st_size and not path.read_bytes().endswith(b"\n"):
            f.write("\n")  # end a line cut by a crash, so the next result starts its own
        for result in _results(module, generator, [c for c in cases if c.id not in finished],
                               settings):  # fmt: skip
            result = result.model_copy(update=stamp)
            f.write(result.model_dump_json() + "\n")
            f.flush()
            results.append(result)
            if progress:
                progress(name, len(results), len(cases), result)
    return results


def _results(
    module: Any, generator: Generator, cases: list[EvalCase], settings: Settings
) -> Iterator[CaseResult]:
    """A suite's results as they finish: several cases at once through its `run_cases`
    where it has one (BFCL batches its decoding), else one `run_case` after another."""
    if hasattr(module, "run_cases"):
        yield from module.run_cases(generator, cases, settings)
    else:
        yield from (module.run_case(generator, case, settings) for case in cases)


def held_results(path: Path) -> dict[str, CaseResult]:
    """The results a suite's JSONL holds, by case id; a line cut by a crash is left out."""
    found = {}
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            result = CaseResult.model_validate_json(line)
        except ValueError:
            continue
        found[result.id] = result
    return found


def stopped_by_guard(result: CaseResult) -> bool:
    """Whether the doom-loop guard cut a turn of this case, as its details record it: the only
    results a change to the guard can change, since greedy decoding is the same up to the
    guard's first stop, but for batched bfloat16's near-ties (an agent episode's middle turns
    count where its result records `guard_stops`)."""
    d = result.details
    ends = (d.get("finish_reason"), d.get("final_finish_reason"), d.get("outcome"))
    return d.get("caught") is True or d.get("guard_stops", 0) > 0 or "doom_loop" in ends


def drop_results(path: Path, which: Callable[[CaseResult], bool]) -> int:
    """Rewrites a suite's JSONL without the results `which` picks (a resumed run then runs those
    cases again); how many it dropped."""
    held = held_results(path)
    kept = [r for r in held.values() if not which(r)]
    if len(kept) < len(held):
        path.write_text("".join(r.model_dump_json() + "\n" for r in kept))
    return len(held) - len(kept)


def check_resumable(out: Path, meta: dict[str, Any]) -> None:
    """A resumed run must be the same model, adapter, weights and split as the run it adds to."""
    if not (out / "run.json").is_file():
        return
    before = read_run(out)
    for key in ("model", "adapter", "dtype", "quant", "split", "data"):
        if before.get(key, "none" if key == "quant" else None) != meta.get(key):
            raise ValueError(
                f"{out} holds a run with {key}={before.get(key)!r}, not {meta.get(key)!r}: "
                "resume with the same flags, or give another --out"
            )


def run_all(
    generator: Generator,
    settings: Settings,
    cases: dict[str, list[EvalCase]],
    out: Path,
    meta: dict[str, Any],
    progress_for: Callable[[str, list[EvalCase]], Progress | None] | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Every suite's cases into `out`, then run.json, summary.md and the plots; returns the
    run as `read_run` would. `resume`: skip the cases `out` already holds results for."""
    summaries = {}
    for name, suite_cases in cases.items():
        progress = progress_for(name, suite_cases) if progress_for else None
        results = run_suite(name, generator, settings, suite_cases, out, progress, resume)
        summaries[name] = summarize(results)
    write_run(out, meta, summaries)
    return {**meta, "summary": summaries}


def run_meta(settings: Settings, split: str, limit: int | str | None, data: str | None) -> dict:
    return {
        "model": settings.model.spec,
        "adapter": adapters.label(settings.model.spec, settings.model.adapter),
        "dtype": concrete_dtype(settings),  # "auto" as this machine made it: resumes compare it
        "quant": concrete_quant(settings),
        "split": split,
        "limit": limit,
        "data": data,
        "commit": commit(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": settings.model_dump(mode="json"),
    }


def served_mismatch(meta: dict[str, Any], served: ServedModel) -> str | None:
    """Why the server's weights are not the ones this run records (model, adapter, dtype,
    quantization), or None: a run generated on a server must be the run its run.json says."""
    theirs = {"model": canonical(served.spec), "adapter": served.adapter_label,
              "dtype": served.dtype, "quant": served.quant}  # fmt: skip
    for key, value in theirs.items():
        ours = canonical(meta[key]) if key == "model" else meta[key]
        if value != ours:
            return (f"the server serves {key} {value!r}, this run asks for {ours!r}: give the "
                    "server's flags, or start it with these")  # fmt: skip
    return None


def canonical(spec: str) -> str:
    """An embedded model by its name ("embedded" is the default one's alias); else as given."""
    known = lookup(spec)
    return known.name if known else spec


def concrete_dtype(settings: Settings) -> str:
    m = settings.model
    return resolve_dtype(m.dtype, resolve_device(m.device, m.quant))


def concrete_quant(settings: Settings) -> str:
    m = settings.model
    return resolve_quant(m.quant, resolve_device(m.device, m.quant), m.spec)


def commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return head.stdout.strip() or "unknown"


# --- summaries ------------------------------------------------------------------------------


def summarize(results: list[CaseResult]) -> dict[str, Any]:
    """Per category: cases, correct, accuracy and its 95% interval, mean score; plus
    suite-specific figures, and how many results each commit produced."""
    rows: dict[str, dict[str, Any]] = {}
    for category in sorted({r.category for r in results}):
        group = [r for r in results if r.category == category]
        rows[category] = _row(group)
    summary: dict[str, Any] = {"categories": rows, "all": _row(results) if results else {}}
    timings = _timings(results)
    if timings:
        summary["timings"] = timings
    if results:
        summary["commits"] = commits_of(results)
    return summary


UNRECORDED = "unrecorded"  # lines written before results carried their commit


def commits_of(results: list[CaseResult]) -> dict[str, int]:
    """How many results each commit produced, most first."""
    counts = Counter(r.commit or UNRECORDED for r in results)
    return dict(counts.most_common())


# doom loops: caught loops that recovered, right answers (old runs), ended with a right answer;
# python-tool tasks: cases that ended on an empty reply, cases that repeated a call
COUNTED = ("recovered", "correct_answer", "answered", "empty_answer", "repeated_identical_calls")
AVERAGED = ("em", "f1")  # search-QA: exact match and token F1 beside the contains verdict


def _row(group: list[CaseResult]) -> dict[str, Any]:
    correct = sum(r.correct for r in group)
    low, high = wilson(correct, len(group))
    row = {
        "cases": len(group),
        "correct": correct,
        "accuracy": correct / len(group),
        "ci_low": low,
        "ci_high": high,
        "mean_score": statistics.fmean(r.score for r in group),
        "mean_seconds": statistics.fmean(r.seconds for r in group),
    }
    looped = [r.details["looped"] for r in group if "looped" in r.details]
    if looped:
        row["loop_ratio"] = sum(bool(x) for x in looped) / len(looped)
    for key in COUNTED:
        if any(key in r.details for r in group):
            row[key] = sum(bool(r.details.get(key)) for r in group)
    for key in AVERAGED:
        if all(key in r.details for r in group):
            row[key] = statistics.fmean(float(r.details[key]) for r in group)
    return row


def _timings(results: list[CaseResult]) -> dict[str, dict[str, float]]:
    """Mean, median and p90 of every timing a suite reports in its details (ttft_s, total_s)."""
    out = {}
    for key in ("ttft_s", "total_s", "tok_s"):
        values = sorted(float(r.details[key]) for r in results if key in r.details)
        if values:
            p90 = values[min(len(values) - 1, round(0.9 * (len(values) - 1)))]
            out[key] = {
                "mean": statistics.fmean(values),
                "median": statistics.median(values),
                "p90": p90,
            }
    return out


def markdown(meta: dict[str, Any], summaries: dict[str, dict[str, Any]]) -> str:
    head = (
        f"# Eval run: {meta['model']}" + (f" + {meta['adapter']}" if meta.get("adapter") else "")
        + f"\n\n{meta['date']} · commit {meta['commit']} · split {meta['split']}"
        + (f" · limit {meta['limit']}" if meta.get("limit") else "") + f" · {meta['dtype']}"
        + (f"+{meta['quant']}" if meta.get("quant", "none") != "none" else "") + "\n"
    )  # fmt: skip
    commits = meta.get("commits") or []
    if len(commits) > 1:
        head += f"\nThe results come from several commits: {', '.join(commits)}.\n"
    parts = [head]
    for suite, summary in summaries.items():
        parts.append(f"## {suite}\n")
        parts.append(
            "| category | cases | correct | accuracy | 95% interval | mean score | s/case |"
        )
        parts.append("|---|---|---|---|---|---|---|")
        for category, row in [*summary["categories"].items(), ("**all**", summary["all"])]:
            if not row:
                continue
            loop = f" (loops {row['loop_ratio']:.0%})" if "loop_ratio" in row else ""
            low, high = wilson(row["correct"], row["cases"])
            parts.append(
                f"| {category} | {row['cases']} | {row['correct']} | {row['accuracy']:.1%}{loop} "
                f"| {low:.1%}–{high:.1%} | {row['mean_score']:.3f} | {row['mean_seconds']:.1f} |"
            )
        for key, t in summary.get("timings", {}).items():
            figures = f"mean {t['mean']:.2f}, median {t['median']:.2f}, p90 {t['p90']:.2f}"
            parts.append(f"\n{key}: {figures}")
        parts.append("")
    return "\n".join(parts)


def write_run(out: Path, meta: dict[str, Any], summaries: dict[str, dict[str, Any]]) -> None:
    """run.json, summary.md and the plots; `commits` lists every commit whose results the
    folder's JSONL files hold (UNRECORDED for lines that predate the field)."""
    out.mkdir(parents=True, exist_ok=True)
    meta = {**meta, "commits": folder_commits(out)}
    (out / "run.json").write_text(json.dumps({**meta, "summary": summaries}, indent=1))
    (out / "summary.md").write_text(markdown(meta, summaries))
    for suite, summary in summaries.items():
        if summary["categories"]:
            plots.plot_run(suite, summary, out / f"{suite}.png", meta["model"])


def folder_commits(out: Path) -> list[str]:
    """Every commit the results in a run folder came from, most results first."""
    counts: Counter[str] = Counter()
    for path in sorted(out.glob("*.jsonl")):
        counts.update(commits_of(list(held_results(path).values())))
    return [c for c, _ in counts.most_common()]


def read_run(folder: Path) -> dict[str, Any]:
    path = folder / "run.json"
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not an eval run (no run.json)")
    return json.loads(path.read_text())
