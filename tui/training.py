"""`edgeagent train sft|dpo|rl` and `edgeagent adapter ...`: flags in, progress bars and the
report out.

The run itself is `evals.train`'s (`run_training`); the adapter files' arithmetic (bfloat16
copies, weighted averages) is `model.adapter`'s. This module only parses the flags, loads the
model, shows progress and prints. Not here: any training logic.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from evals.choices import (
    CALIBRATION_TARGET,
    CATEGORIES_HELP,
    REFERENCE_KINDS,
    ROLLOUT_SUITES,
)
from tui.commands import bar, load_model, say
from tui.flags import add_settings_flags, csv, settings_from


def add_train_parser(sub: Any) -> None:
    p = sub.add_parser("train", help="train a LoRA adapter on the agent's own episodes")
    p.add_argument("method", choices=["sft", "dpo", "rl"])
    p.add_argument("--suite", default="bfcl", choices=ROLLOUT_SUITES, help="task set (train split)")
    p.add_argument("--out", required=True, help="run folder: adapter, checkpoints, report")
    p.add_argument("--limit", type=int, help="at most N train-split cases")
    p.add_argument("--categories", help=CATEGORIES_HELP)
    p.add_argument("-k", type=int, default=4, help="sampled rollouts per case (plus one greedy)")
    p.add_argument("--sample-temperature", type=float, default=1.0, help="for the K rollouts")
    p.add_argument("--from-log", action="store_true", help="sft/dpo: train on the episodes "
                   "already in the log (the suite's scored rollouts and your own chat and "
                   "ask episodes, scored without a reference) instead of new rollouts")  # fmt: skip
    p.add_argument("--collect-only", action="store_true", help="roll out the suite's train "
                   "cases into the log and stop, with the model as `ask` runs it (--adapter "
                   "merged, --quant, the fast decoder); --resume skips the cases the log holds: "
                   "train on them later with --from-log (another --adapter may start from "
                   "them)")  # fmt: skip
    p.add_argument("--log", help="trajectory log (default: $EDGEAGENT_LOG or the cache)")
    p.add_argument("--min-reward", type=float, default=1.0, help="sft: keep episodes this good")
    p.add_argument("--prompts-per-step", type=int, default=4, help="rl: cases per step")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--lr", type=float, help="learning rate (default: the method's)")
    p.add_argument("--sft-weight", type=float, default=0.0, help="dpo: weight of the chosen "
                   "side's mean negative log-likelihood beside the preference loss (0: plain "
                   "DPO; keeps the chosen answers likely, see model.train.dpo)")  # fmt: skip
    p.add_argument("--anchors", action="store_true", help="dpo: for each pair that chooses a "
                   "call over a decline, one where no function fits that chooses the model's "
                   "decline over its own call, forced (see evals.anchors)")  # fmt: skip
    p.add_argument("--rank", type=int, default=16, help="LoRA rank")
    p.add_argument("--eval", default="SUITE,doomloop", help="suites scored on the test split "
                   "before and after; 'none' to skip")  # fmt: skip
    p.add_argument("--eval-limit", default="50", help="test cases per eval suite: N, or "
                   "SUITE=N,... (others get 50)")  # fmt: skip
    p.add_argument("--references", default="none", help="the reference answers of these "
                   f"train splits, KIND[=N per category],... ({', '.join(REFERENCE_KINDS)}): sft "
                   "also trains on them, dpo chooses a case's over its rollouts where none "
                   "succeeded; 'none' to skip")  # fmt: skip
    p.add_argument("--max-length", type=int, help="sft: drop reference examples longer than "
                   "this many tokens")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=8, help="sft: examples per step")
    p.add_argument("--max-steps", type=int, help="sft: stop after N optimizer steps")
    p.add_argument("--context-grad", type=int, metavar="N", help="sft: a gradient through the "
                   "prompt's last N tokens only (0: none, about 2x faster on CPU; default: "
                   "all; see model.train.sft)")  # fmt: skip
    p.add_argument("--save-steps", type=int, default=1, help="checkpoint every N steps")
    p.add_argument("--resume", action="store_true", help="go on from the latest checkpoint")
    add_settings_flags(p)
    p.set_defaults(func=cmd_train)


def add_adapter_parser(sub: Any) -> None:
    group = sub.add_parser("adapter", help="convert or average trained LoRA adapters")
    verbs = group.add_subparsers(dest="adapter_command", required=True)
    p = verbs.add_parser("bfloat16", help="a copy with bfloat16 weights (as shipped)")
    p.add_argument("source", help="adapter folder (adapter_config.json, adapter_model.*)")
    p.add_argument("--out", required=True, help="folder for the copy")
    p.set_defaults(func=cmd_adapter_bfloat16)
    p = verbs.add_parser(
        "average",
        help="one adapter whose change is the weighted sum of the given adapters' changes "
        "(runs trained from the same start)",
    )
    p.add_argument("sources", nargs="+", help="adapter folders")
    p.add_argument("--weights", help="one per adapter, comma-separated (default: equal)")
    p.add_argument("--rank", type=int, help="keep each layer's best approximation of this rank "
                   "(default: the sources' ranks summed, exact)")  # fmt: skip
    p.add_argument("--out", required=True, help="folder for the average")
    p.set_defaults(func=cmd_adapter_average)
    p = verbs.add_parser(
        "calibrate",
        help="keep the share of a step's change (0, 1/4, ... 1) with which the model declines "
        "on BFCL's dev no-fit cases about as often as --target (see evals.calibrate)",
    )
    p.add_argument("start", help="the adapter the step was trained from")
    p.add_argument("step", help="the adapter after the step (trained from START)")
    p.add_argument("--target", type=float, default=CALIBRATION_TARGET, help="decline rate to "
                   f"come near (default {CALIBRATION_TARGET}: the shipped adapter's on the same "
                   "cases)")  # fmt: skip
    p.add_argument("--dev-limit", type=int, default=150, help="dev cases per category at most")
    p.add_argument("--rank", type=int, help="as for average")
    p.add_argument("--out", required=True, help="folder for the chosen adapter, "
                   "calibration.json and the per-share runs (dev/)")  # fmt: skip
    add_settings_flags(p)
    p.set_defaults(func=cmd_adapter_calibrate)


def cmd_adapter_bfloat16(args: argparse.Namespace) -> int:
    from model.adapter import read_config, to_bfloat16

    read_config(Path(args.source))  # a wrong folder is one line, before anything is written
    say(f"edgeagent: adapter in {to_bfloat16(args.source, args.out)}")
    return 0


def cmd_adapter_average(args: argparse.Namespace) -> int:
    from model.adapter import average

    try:
        weights = [float(w) for w in csv(args.weights)] if args.weights else None
    except ValueError:
        say(f"edgeagent: error: --weights takes numbers, comma-separated; got {args.weights!r}")
        return 2
    n = len(args.sources)
    mixed = average(args.sources, weights or [1 / n] * n, args.out, args.rank)
    say(f"edgeagent: adapter in {mixed}")
    return 0


def cmd_adapter_calibrate(args: argparse.Namespace) -> int:
    from evals.calibrate import calibrate, dev_runner
    from evals.references import no_fit_dev_cases
    from model.adapter import read_config
    from model.generate import Generator

    try:  # wrong folders or a target out of range are one line, before any model loads
        for folder in (args.start, args.step):
            read_config(Path(folder))
        if not 0.0 < args.target < 1.0:
            raise ValueError(f"--target is a rate between 0 and 1; got {args.target}")
        if args.dev_limit < 1:
            raise ValueError(f"--dev-limit takes at least 1 case; got {args.dev_limit}")
    except ValueError as e:
        say(f"edgeagent: error: {e}")
        return 2
    settings = settings_from(args)

    def load(adapter: Path) -> Generator:
        model = settings.model.model_copy(update={"adapter": str(adapter)})
        return Generator(load_model(settings.model_copy(update={"model": model})))

    cases = no_fit_dev_cases(args.dev_limit)
    run = dev_runner(load, cases, settings, bar)
    got = calibrate(Path(args.start), Path(args.step), Path(args.out), run, args.target,
                    args.rank)  # fmt: skip
    for t in got.tried:
        say(f"share {t.share:.2f}: declined {t.declined} of {t.cases} "
            f"({t.declined / t.cases:.1%}, CI {t.low:.0%}-{t.high:.0%})")  # fmt: skip
    say(f"edgeagent: kept {got.chosen:.2f} of the step's change; adapter in {args.out}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from agent.log import default_log_path
    from evals import train as t
    from model.generate import Generator
    from model.train import distributed

    ts = t.TrainSettings(
        suite=args.suite,
        limit=args.limit,
        categories=args.categories,
        k=args.k,
        temperature=args.sample_temperature,
        min_reward=args.min_reward,
        prompts_per_step=args.prompts_per_step,
        epochs=args.epochs,
        learning_rate=args.lr,
        sft_weight=args.sft_weight,
        anchors=args.anchors,
        batch_size=args.batch_size,
        max_steps=args.max_steps,
        context_grad=args.context_grad,
        save_steps=args.save_steps,
    )
    if args.anchors and args.method != "dpo":
        say("edgeagent: error: --anchors pairs declines against calls: it is for dpo only")
        return 2
    settings = settings_from(args)
    out = Path(args.out)
    names = [] if args.eval == "none" else csv(args.eval.replace("SUITE", args.suite))
    try:  # a wrong suite name fails here, before the model loads
        cases = t.train_cases(ts)
        limits = eval_limits(args.eval_limit)
        wanted = reference_spec(args.references)
        evals = t.eval_cases(names, limits)
    except (FileNotFoundError, ValueError) as e:
        say(f"edgeagent: error: {e}")
        return 2
    job = t.Job(
        method=args.method,
        out=out,
        log_path=Path(args.log) if args.log else default_log_path(),
        from_log=args.from_log,
        collect_only=args.collect_only,
        resume=args.resume,
        references=wanted,
        max_length=args.max_length,
        command="edgeagent " + shlex.join(sys.argv[1:]),
    )
    out.mkdir(parents=True, exist_ok=True)
    distributed.init()  # under torchrun or accelerate launch; nothing in one process
    if job.collect_only:  # episodes only: nothing is trained, so no trainable copy is needed
        lm = load_model(settings)
    else:
        lm = load_model(t.load_settings(settings))
        t.make_trainable(lm, settings.model.adapter, args.rank)
    try:
        text = t.run_training(Generator(lm), settings, ts, job, cases, evals, _Bars())
    except t.NoData as e:
        say(f"edgeagent: error: {e}")
        return 2
    if text is None:  # not the first process, which alone evaluates and writes the report
        return 0
    print(text)
    if job.collect_only:
        say(f"edgeagent: train on them with --from-log --log {job.log_path}")
        return 0
    say(f"edgeagent: adapter in {out / 'adapter'}; report in {out / 'report.md'}")
    return 0


def reference_spec(text: str) -> dict[str, int | None]:
    """ "bfcl=60,pytools" as {suite: cases per category or None for all}; "none" is {}."""
    if text == "none":
        return {}
    out: dict[str, int | None] = {}
    for part in csv(text):
        name, _, n = part.partition("=")
        if name not in REFERENCE_KINDS or (n and not n.isdigit()):
            raise ValueError(f"--references takes KIND[=N],... of {', '.join(REFERENCE_KINDS)}; "
                             f"got {part!r}")  # fmt: skip
        out[name] = int(n) if n else None
    return out


def eval_limits(text: str) -> dict[str, int]:
    """ "40" or "bfcl=40,doomloop=6" as {suite: limit}, with the default under ""."""
    limits = {"": 50}
    for part in csv(text):
        name, _, n = part.rpartition("=")
        if not n.isdigit():
            raise ValueError(f"--eval-limit takes N or SUITE=N,...; got {part!r}")
        limits[name] = int(n)
    return limits


class _Bars:
    """tqdm bars on stderr for `evals.train.run_training` (an `evals.train.Watch`): one per
    eval suite, one over the rollouts, one over the optimizer steps; on the first process
    only."""

    def __init__(self) -> None:
        from model.train import distributed

        self.main = distributed.is_main()
        self.bar: Any = None

    def evaluating(self, label: str, suite: str, cases: list) -> Any:
        return bar(f"{label}: {suite}", cases)

    def collecting(self, cases: int) -> Any:
        from tqdm import tqdm

        bar = tqdm(total=cases, desc="rollouts", file=sys.stderr, unit="case",
                   disable=not self.main)  # fmt: skip
        if not cases:
            bar.close()

        def progress(group: Any) -> None:
            best = max(group.rewards)
            bar.set_postfix(greedy=f"{group.rewards[0]:.2f}", best=f"{best:.2f}")
            bar.update(1)
            if bar.n == cases:
                bar.close()

        return progress

    def training(self) -> Any:
        from tqdm import tqdm

        self.bar = tqdm(desc="train", file=sys.stderr, unit="step", disable=not self.main)
        return self.report

    def report(self, phase: str, stats: dict[str, Any]) -> None:
        shown = {k: f"{v:.3g}" for k, v in stats.items() if k in ("loss", "reward", "margin")}
        self.bar.set_postfix(shown)
        self.bar.update(1)

    def trained(self) -> None:
        self.bar.close()
