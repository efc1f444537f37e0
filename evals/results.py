"""Regenerates evals/RESULTS.md: every suite on each embedded model, side by side, with plots.

    .venv/bin/python -m evals.results            # both models bare, and the default as shipped
    .venv/bin/python -m evals.results --limits all --models smollm2
    .venv/bin/python -m evals.results --limits bfcl=400 --add --resume   # grow a sample

A `--models` entry `MODEL+adapter` is the model as users get it, its shipped adapter merged
(a column of its own); a bare `MODEL` runs with `--adapter` (none by default).
Each model's run lands in `--runs DIR/<model>` (the usual run folder: per-case JSONL,
summary.md, run.json); the page compares them per category, with one grouped bar chart per
suite in `evals/results/`, and lists published figures of small models for context. The
default limits keep a run on 2 CPU cores near half an hour; `--limits all` runs every test
case (BFCL alone is then hours). `--resume` keeps every case a run folder already holds, so
the full run can be stopped and started again, or grown limit by limit, session by session.
`--rescore` judges the BFCL outputs the run folders hold again with today's checker (no
model), rewrites their JSONL, run.json, summary.md and plots, then the page. After a change to
the doom-loop guard, `--redo-stopped` runs again only the cases it stopped (nothing else can
change: greedy decoding is the same up to the guard's first stop, but for batched bfloat16's
near-ties, which a rerun meets among other batch partners).

Not here: the suites, the runner (`evals.runner`), the page's text (`evals.page`), the
`edgeagent eval` CLI.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from evals import plots, runner
from evals.choices import CATEGORIES_HELP
from evals.page import HERE, SHIPPED, page
from model.loaded import DTYPES, QUANTS, Quant

DEFAULT_LIMITS = "bfcl=44,searchqa=8,longctx=12,doomloop=10,latency=15,incar=30,pytools=30"
MODELS = f"qwen2.5-coder-0.5b,smollm2,qwen2.5-coder-0.5b{SHIPPED}"


def model_and_adapter(entry: str, adapter: str) -> tuple[str, str]:
    """A --models entry's model and adapter: `MODEL` runs with --adapter, `MODEL+adapter`
    with the adapter shipped for it."""
    if entry.endswith(SHIPPED):
        return entry.removesuffix(SHIPPED), "default"
    return entry, adapter


def parse_limits(text: str) -> dict[str, int | None]:
    if text == "all":
        return dict.fromkeys(runner.SUITES)
    limits: dict[str, int | None] = {}
    for part in text.split(","):
        name, _, n = part.partition("=")
        if name not in runner.SUITES or not (n.isdigit() or n == "all"):
            raise SystemExit(
                f"--limits takes all or SUITE=N|all,... with suites {list(runner.SUITES)}"
            )
        limits[name] = None if n == "all" else int(n)
    return limits


def run_model(
    spec: str,
    limits: dict[str, int | None],
    out: Path,
    add: bool,
    resume: bool = False,
    categories: str | None = None,
    dtype: str = "float32",
    batch: int = 8,
    adapter: str | None = "none",
    quant: Quant = "none",
) -> dict[str, Any]:
    from tqdm import tqdm

    from agent.settings import Settings
    from model.generate import Generator
    from model.loader import load

    earlier = runner.read_run(out)["summary"] if add and (out / "run.json").is_file() else {}
    settings = Settings()
    settings.model.spec, settings.model.dtype, settings.eval.batch = spec, dtype, batch
    settings.model.adapter, settings.model.quant = adapter, quant
    generator = Generator(load(spec, adapter=adapter, dtype=dtype, quant=quant))
    cases = {
        n: runner.load_suite_cases(n, "test", limit, None, categories)
        for n, limit in limits.items()
    }
    meta = runner.run_meta(settings, "test", ",".join(f"{n}={len(c)}" for n, c in cases.items()),
                           None)  # fmt: skip
    if categories:
        meta["categories"] = categories
    if resume:
        runner.check_resumable(out, meta)

    def progress_for(name: str, suite_cases: list) -> runner.Progress:
        bar = tqdm(total=len(suite_cases), desc=f"{spec}: {name}", file=sys.stderr)
        return lambda *_: bar.update(1)

    run = runner.run_all(generator, settings, cases, out, meta, progress_for, resume)
    if earlier:  # --add: the earlier run's other suites stay, with their own limits
        kept = {n: s for n, s in earlier.items() if n not in cases}
        limits_text = ",".join(f"{n}={s['all'].get('cases', 0)}" for n, s in kept.items())
        meta["limit"] = ",".join(x for x in (limits_text, meta["limit"]) if x)
        run["summary"] = {**kept, **run["summary"]}
        runner.write_run(out, meta, run["summary"])
        run = runner.read_run(out)
    return run


def test_cases() -> dict[str, list | None]:
    """Each suite's test cases; None where its data is not installed."""
    tests: dict[str, list | None] = {}
    for name in runner.SUITES:
        try:
            tests[name] = runner.load_suite_cases(name, "test", None, None)
        except FileNotFoundError:
            tests[name] = None
    return tests


def held(folder: Path, run: dict[str, Any], tests: dict[str, list | None]) -> dict[str, Any]:
    """The run with each suite summarized over every test case its JSONL holds: the page
    shows all that was ever run into the folder (a full non-live BFCL run plus an earlier
    interleaved sample, say), not just the last command's cases."""
    summary = {}
    for suite in runner.SUITES:
        results = list(runner.held_results(folder / f"{suite}.jsonl").values())
        ids = {c.id for c in tests.get(suite) or []}
        results = [r for r in results if not ids or r.id in ids]
        if results:
            summary[suite] = runner.summarize(results)
    return {**run, "summary": summary}


def rescore_folder(folder: Path, tests: dict[str, list | None]) -> None:
    """The folder's BFCL results judged again from their outputs, then its run.json,
    summary.md and plots rewritten over every test case its JSONL holds."""
    from evals import bfcl
    from model.loader import tool_format_of

    run = runner.read_run(folder)
    path = folder / "bfcl.jsonl"
    if path.is_file():
        fmt = tool_format_of(run["model"])
        done = bfcl.rescore(list(runner.held_results(path).values()), fmt, note=runner.commit())
        path.write_text("".join(r.model_dump_json() + "\n" for r in done))
    meta = {k: v for k, v in run.items() if k not in ("summary", "commits")}
    runner.write_run(folder, meta, held(folder, run, tests)["summary"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m evals.results", description=__doc__)
    p.add_argument("--models", default=MODELS, help=f"MODEL or MODEL{SHIPPED},... ")
    p.add_argument("--limits", default=DEFAULT_LIMITS, help="SUITE=N|all,... or all")
    p.add_argument("--runs", default=str(HERE / "results"), help="where the run folders go")
    p.add_argument("--out", default=str(HERE / "RESULTS.md"))
    p.add_argument("--reuse", action="store_true", help="rewrite the page from existing runs")
    p.add_argument(
        "--rescore",
        action="store_true",
        help="judge the runs' BFCL outputs again (no model), rewrite the runs, then the page",
    )
    p.add_argument("--add", action="store_true", help="run just these suites into existing runs")
    p.add_argument(
        "--resume",
        action="store_true",
        help="keep the cases each run holds, run only the others: a stopped run goes on",
    )
    p.add_argument(
        "--redo-stopped",
        action="store_true",
        help="run again the cases of --limits' suites that the doom-loop guard stopped, as "
        "their results record it (after a change to the guard; implies --add --resume)",
    )
    p.add_argument("--categories", help=f"only these, in every suite run: {CATEGORIES_HELP}")
    p.add_argument("--dtype", default="float32", choices=DTYPES)
    p.add_argument("--batch", type=int, default=8, help="BFCL cases decoded at once")
    p.add_argument("--adapter", default="none", help="none, default (shipped), or a folder")
    # Not the app's "auto" (int8 on a CPU): the page's runs are the models' own weights.
    p.add_argument("--quant", default="none", choices=QUANTS, help="weight quantization")
    args = p.parse_args(argv)
    limits = parse_limits(args.limits)
    tests = test_cases()
    runs = []
    for entry in args.models.split(","):
        spec, adapter = model_and_adapter(entry, args.adapter)
        folder = Path(args.runs) / entry
        if args.redo_stopped:
            args.add = args.resume = True
            for suite in limits:
                dropped = runner.drop_results(folder / f"{suite}.jsonl", runner.stopped_by_guard)
                print(f"{entry}: {suite}: {dropped} cases the guard stopped, to run again")
        if args.rescore:
            rescore_folder(folder, tests)
        reuse = (args.reuse or args.rescore) and (folder / "run.json").is_file()
        run = (
            runner.read_run(folder)
            if reuse
            else run_model(
                spec,
                limits,
                folder,
                args.add,
                args.resume,
                args.categories,
                args.dtype,
                args.batch,
                adapter,
                args.quant,
            )  # fmt: skip
        )
        runs.append({**held(folder, run, tests), "model": entry})  # the column's name
    out = Path(args.out)
    (out.parent / "results").mkdir(parents=True, exist_ok=True)
    for suite in runner.SUITES:
        if any(suite in r["summary"] for r in runs):
            plots.plot_models(suite, runs, out.parent / "results" / f"{suite}.png")
    given = sys.argv[1:] if argv is None else argv
    command = " ".join([".venv/bin/python -m evals.results", *given])
    out.write_text(page(runs, command, tests, Path(args.runs)))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
