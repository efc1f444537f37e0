"""`edgeagent train sft|dpo|rl`: flags in, progress bars and the report out.

The run itself is `evals.train`'s; this module only parses, shows progress and prints.
Not here: any training logic.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from tui.flags import add_settings_flags, csv, settings_from

NO_START = (None, "none", "default")


def add_train_parser(sub: Any) -> None:
    p = sub.add_parser("train", help="train a LoRA adapter on the agent's own episodes")
    p.add_argument("method", choices=["sft", "dpo", "rl"])
    p.add_argument("--suite", default="bfcl", help="task set: bfcl or searchqa (its train split)")
    p.add_argument("--out", required=True, help="run folder: adapter, checkpoints, report")
    p.add_argument("--limit", type=int, help="at most N train-split cases")
    p.add_argument("-k", type=int, default=4, help="sampled rollouts per case (plus one greedy)")
    p.add_argument("--sample-temperature", type=float, default=1.0, help="for the K rollouts")
    p.add_argument("--from-log", action="store_true", help="sft/dpo: train on the episodes "
                   "already in the log (the suite's scored rollouts and your own chat and "
                   "ask episodes, scored without a reference) instead of new rollouts")  # fmt: skip
    p.add_argument("--log", help="trajectory log (default: $EDGEAGENT_LOG or the cache)")
    p.add_argument("--min-reward", type=float, default=1.0, help="sft: keep episodes this good")
    p.add_argument("--prompts-per-step", type=int, default=4, help="rl: cases per step")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--lr", type=float, help="learning rate (default: the method's)")
    p.add_argument("--rank", type=int, default=16, help="LoRA rank")
    p.add_argument("--eval", default="SUITE,doomloop", help="suites scored on the test split "
                   "before and after; 'none' to skip")  # fmt: skip
    p.add_argument("--eval-limit", default="50", help="test cases per eval suite: N, or "
                   "SUITE=N,... (others get 50)")  # fmt: skip
    p.add_argument("--references", default="none", help="sft: also the reference answers of "
                   "these suites' train splits, SUITE[=N per category],... (bfcl, doomloop, "
                   "pytools); 'none' to skip")  # fmt: skip
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


def cmd_train(args: argparse.Namespace) -> int:
    from agent.log import TrajectoryLog, default_log_path
    from evals import references, runner, selection
    from evals import train as t
    from evals.rollouts import ROLLOUT_SUITES
    from model.generate import Generator
    from model.train import distributed
    from model.train.lora import LoraSettings, attach, load_trainable
    from tui.commands import load_model, say

    if args.suite not in ROLLOUT_SUITES:
        say(f"edgeagent: error: no training on {args.suite!r}; choose {', '.join(ROLLOUT_SUITES)}")
        return 2
    ts = t.TrainSettings(
        suite=args.suite,
        limit=args.limit,
        k=args.k,
        temperature=args.sample_temperature,
        min_reward=args.min_reward,
        prompts_per_step=args.prompts_per_step,
        epochs=args.epochs,
        learning_rate=args.lr,
        batch_size=args.batch_size,
        max_steps=args.max_steps,
        context_grad=args.context_grad,
        save_steps=args.save_steps,
    )
    settings = settings_from(args)
    out = Path(args.out)
    names = [] if args.eval == "none" else csv(args.eval.replace("SUITE", args.suite))
    try:  # a wrong suite name fails here, before the model loads
        cases = t.train_cases(ts)
        limits = eval_limits(args.eval_limit)
        wanted = reference_spec(args.references)
        evals = {
            n: runner.load_suite_cases(n, "test", limits.get(n, limits[""]), None) for n in names
        }
    except (FileNotFoundError, ValueError) as e:
        say(f"edgeagent: error: {e}")
        return 2
    out.mkdir(parents=True, exist_ok=True)
    distributed.init()  # under torchrun or accelerate launch; nothing in one process
    log_path = Path(args.log) if args.log else default_log_path()
    # LoRA trains on float weights: a quantized layer has none, so training never quantizes.
    lm = load_model(settings.model_copy(update={"model": settings.model.model_copy(
        update={"adapter": None, "quant": "none"})}))  # fmt: skip
    # Training starts from the base model (the shipped adapter is what a run reproduces), or
    # goes on from an adapter folder named with --adapter. A fresh adapter changes nothing
    # until trained, so "before" is the model as given.
    start = settings.model.adapter if settings.model.adapter not in NO_START else None
    lm.model = (
        load_trainable(lm.model, start) if start else attach(lm.model, LoraSettings(rank=args.rank))
    )
    generator = Generator(lm)
    before = _evaluate(generator, settings, evals, out / "eval-before", "before")
    bar = _Bar()
    if args.method == "rl":
        log = TrajectoryLog(log_path)
        t.train_rl(generator, cases, settings, ts, out, log, args.resume, bar.report)
        data = {"cases": len(cases), "rollouts per case": ts.k + 1}
    else:
        episodes = _episodes(args, generator, cases, settings, ts, log_path, out)
        extra = [e for suite, n in wanted.items()
                 for e in references.examples(lm, suite, settings, n, args.max_length)]  # fmt: skip
        own = sum(selection.is_own(e) for e in episodes)
        data = {"episodes": len(episodes), "own episodes": own, "source": str(log_path),
                **{f"reference {k}": v for k, v in selection.count_by(extra).items()}}  # fmt: skip
        try:
            t.train_offline(args.method, generator, episodes, ts, out, args.resume,
                            bar.report, extra)  # fmt: skip
        except ValueError as e:
            say(f"edgeagent: error: {e}")
            return 2
    bar.close()
    if not distributed.is_main():  # the first process evaluates and writes the report
        return 0
    adapter = str(out / "adapter")
    lm.adapter = adapter
    after_settings = settings.model_copy(
        update={"model": settings.model.model_copy(update={"adapter": adapter})}
    )
    after = _evaluate(generator, after_settings, evals, out / "eval-after", "after", fresh=True)
    t.plot_curve(t.read_history(out), args.method, out / "curve.png")
    command = "edgeagent " + shlex.join(sys.argv[1:])
    folders = (out / "eval-before", out / "eval-after") if before and after else (None, None)
    text = t.report_markdown(args.method, ts, command, data, *folders)
    (out / "report.md").write_text(text)
    print(text)
    say(f"edgeagent: adapter in {adapter}; report in {out / 'report.md'}")
    return 0


def _episodes(
    args: argparse.Namespace,
    generator: Any,
    cases: list,
    settings: Any,
    ts: Any,
    log_path: Path,
    out: Path,
) -> list:
    """What SFT or DPO trains on: the log's episodes of this model (scored rollouts and own
    episodes), the rollouts a stopped run already collected, or fresh rollouts."""
    from agent.log import TrajectoryLog, read_trajectories
    from evals import selection
    from evals import train as t

    if args.from_log:
        return selection.usable(read_trajectories(log_path), ts.suite, generator.lm.spec)
    if args.resume and (out / "rollouts.jsonl").is_file():
        ids = {i for line in (out / "rollouts.jsonl").open() for i in json.loads(line)["ids"]}
        return [e for e in read_trajectories(log_path) if e.id in ids]
    groups = _rollouts(generator, cases, settings, ts, TrajectoryLog(log_path), out)
    return t.episodes_of(groups)


def reference_spec(text: str) -> dict[str, int | None]:
    """ "bfcl=60,pytools" as {suite: cases per category or None for all}; "none" is {}."""
    from evals.references import BUILDERS

    if text == "none":
        return {}
    out: dict[str, int | None] = {}
    for part in csv(text):
        name, _, n = part.partition("=")
        if name not in BUILDERS or (n and not n.isdigit()):
            raise ValueError(f"--references takes SUITE[=N],... of {', '.join(BUILDERS)}; "
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


def _rollouts(generator: Any, cases: list, settings: Any, ts: Any, log: Any, out: Path) -> list:
    from tqdm import tqdm

    from evals.rollouts import collect
    from model.train import distributed

    cases = distributed.shard(cases)  # each process its share; all train on every group
    bar = tqdm(total=len(cases), desc="rollouts", file=sys.stderr, unit="case",
               disable=not distributed.is_main())  # fmt: skip

    def progress(group: Any) -> None:
        best = max(group.rewards)
        bar.set_postfix(greedy=f"{group.rewards[0]:.2f}", best=f"{best:.2f}")
        bar.update(1)

    groups = collect(generator, cases, settings, ts.k, ts.temperature, log, ts.seed, progress)
    bar.close()
    groups = distributed.gather(groups)
    if not distributed.is_main():
        return groups
    with (out / "rollouts.jsonl").open("w") as f:  # which episodes this run trained on
        for g in groups:
            row = {"case": g.case.id, "ids": [r.id for r in g.rollouts], "rewards": g.rewards}
            f.write(json.dumps(row) + "\n")
    return groups


def _evaluate(
    generator: Any, settings: Any, evals: dict, out: Path, label: str, fresh: bool = False
) -> dict[str, Any] | None:
    """Run the eval suites into `out`, or read them back from an earlier run of this command."""
    from evals import runner
    from model.train import distributed

    if not evals or not distributed.is_main():
        return None
    if not fresh and (out / "run.json").is_file():
        return runner.read_run(out)
    from tui.commands import bar

    generator.reset()
    limits = ",".join(f"{name}={len(cases)}" for name, cases in evals.items())
    meta = runner.run_meta(settings, "test", limits, None)
    return runner.run_all(
        generator, settings, evals, out, meta, lambda name, cases: bar(f"{label}: {name}", cases)
    )


class _Bar:
    """One tqdm bar over optimizer steps, showing the latest figures."""

    def __init__(self) -> None:
        from tqdm import tqdm

        from model.train import distributed

        main = distributed.is_main()
        self.bar = tqdm(desc="train", file=sys.stderr, unit="step", disable=not main)

    def report(self, phase: str, stats: dict[str, Any]) -> None:
        shown = {k: f"{v:.3g}" for k, v in stats.items() if k in ("loss", "reward", "margin")}
        self.bar.set_postfix(shown)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()
