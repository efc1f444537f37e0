"""Training runs on the agent's own episodes: SFT on the good ones, DPO on each case's best and
worst, GRPO online over fresh groups; with an eval before and after, and a report.

The flow of `edgeagent train sft|dpo|rl`: evaluate the base model on the test split (skipped
when `OUT/eval-before` holds a finished run, so a resumed run does not redo it), attach a LoRA
adapter, get episodes (fresh rollouts on the train split through the real agent loop, or the
episodes already in the trajectory log), train, evaluate again, write `OUT/report.md`,
`OUT/curve.png` and `OUT/history.jsonl`. The adapter is `OUT/adapter/`, loadable everywhere
with `--adapter`.

It lives in `evals/` rather than `model/` because it runs the agent loop and the scorers,
which `model/` may not import; the losses, adapters and checkpoints are `model/`'s. Test-split
cases never reach training: rollouts draw from the train split only, and logged episodes of a
test-split case are dropped.

Not here: the losses (`model.train.sft`, `model.train.dpo`, `model.train.grpo`), the CLI and
progress bars (`tui`).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from agent.settings import Settings
from agent.trajectory import LogSink, Trajectory
from evals import runner
from evals.compare import compare
from evals.rollouts import Group, collect
from evals.selection import (
    groups_by_case,
    groups_by_prompt,
    own_acceptable,
    preference_pairs,
    sft_examples,
)
from model.generate import Generator
from model.train import distributed
from model.train.data import TrainExample, examples_from_trajectory
from model.train.dpo import DpoSettings, train_dpo
from model.train.grpo import GrpoSettings, Rollout, train_grpo
from model.train.lora import Progress
from model.train.sft import SftSettings, train_sft

Method = Literal["sft", "dpo", "rl"]
Report = Callable[[str, dict[str, Any]], None]  # (phase, figures) as training goes


class TrainSettings(BaseModel):
    suite: str = "bfcl"
    limit: int | None = Field(default=None, description="train-split cases to use")
    k: int = Field(default=4, ge=0, description="sampled rollouts per case, plus one greedy")
    temperature: float = Field(default=1.0, gt=0)
    min_reward: float = Field(default=1.0, description="SFT keeps episodes scoring this much")
    min_own_reward: float = Field(
        default=1.0, description="SFT: own (chat, ask) episodes scoring this much; 1.0: flawless"
    )
    min_gap: float = Field(default=0.1, ge=0, description="DPO: best minus worst at least this")
    prompts_per_step: int = Field(default=4, ge=1, description="RL: cases per optimizer step")
    epochs: int = Field(default=1, ge=1)
    learning_rate: float | None = Field(default=None, gt=0, description="None: the method's")
    save_steps: int = Field(default=1, ge=0)
    batch_size: int = Field(default=8, ge=1, description="SFT: examples per optimizer step")
    max_steps: int | None = Field(default=None, ge=1, description="SFT: stop after N steps")
    context_grad: int | None = Field(
        default=None, ge=0, description="SFT: prompt tokens with a gradient; None: all (exact)"
    )
    seed: int = 0


def train_cases(ts: TrainSettings) -> list:
    return runner.load_suite_cases(ts.suite, "train", ts.limit, None)


def rollout_groups(groups: Iterable[Group]) -> list[list[Rollout]]:
    """Each group's episodes as GRPO's rollouts; `collect` samples a group's first greedily."""
    return [
        [
            Rollout(examples_from_trajectory(t), t.rewards.get("total", 0.0), greedy=i == 0)
            for i, t in enumerate(g.rollouts)
        ]
        for g in groups
    ]


def train_rl(
    generator: Generator,
    cases: list,
    settings: Settings,
    ts: TrainSettings,
    out: Path,
    log: LogSink | None = None,
    resume: bool = False,
    report: Report | None = None,
) -> list[dict[str, float]]:
    """Online GRPO (`model.train.grpo.train_grpo`): each step samples fresh groups of rollouts
    of its cases with the current adapter, through the agent loop, and takes one optimizer step
    on them. Returns the per-step figures."""
    history, progress = _recorder(out, report)

    def sample(share: list, step: int) -> list[list[Rollout]]:
        generator.reset()  # the cached keys and values came from the weights before the step
        groups = collect(generator, share, settings, ts.k, ts.temperature, log, ts.seed + step)
        return rollout_groups(groups)

    gs = GrpoSettings(
        learning_rate=ts.learning_rate or GrpoSettings().learning_rate,
        prompts_per_step=ts.prompts_per_step,
        epochs=ts.epochs,
        save_steps=ts.save_steps,
        seed=ts.seed,
    )
    train_grpo(generator.lm.model, cases, sample, out, gs, resume, progress)
    generator.reset()
    return history


def train_offline(
    method: Literal["sft", "dpo"],
    generator: Generator,
    episodes: list[Trajectory],
    ts: TrainSettings,
    out: Path,
    resume: bool = False,
    report: Report | None = None,
    extra: Sequence[TrainExample] = (),
) -> list[dict[str, float]]:
    """SFT or DPO on scored episodes (fresh rollouts or the log's); SFT also on `extra`
    examples (the data sets' reference answers). Returns per-step figures."""
    history, progress = _recorder(out, report)
    lm = generator.lm
    if method == "sft":
        examples = sft_examples(episodes, ts.min_reward, ts.min_own_reward) + list(extra)
        if not examples:
            raise ValueError(f"no episode scored {ts.min_reward} or more: nothing to imitate")
        s = SftSettings(
            learning_rate=ts.learning_rate or SftSettings().learning_rate,
            epochs=ts.epochs,
            batch_size=min(ts.batch_size, len(examples)),
            context_grad=ts.context_grad,
            max_steps=ts.max_steps,
            save_steps=ts.save_steps,
            seed=ts.seed,
        )
        train_sft(lm.model, examples, out, s, resume, progress)
    else:
        pairs = preference_pairs(groups_by_case(episodes), ts.min_gap) + preference_pairs(
            groups_by_prompt(episodes), ts.min_gap, own_acceptable
        )
        if not pairs:
            raise ValueError("no case or prompt had a best and a worst episode apart: no pairs")
        s = DpoSettings(
            learning_rate=ts.learning_rate or DpoSettings().learning_rate,
            epochs=ts.epochs,
            save_steps=ts.save_steps,
            length_normalized=True,
            seed=ts.seed,
        )
        train_dpo(lm.model, pairs, out, s, resume, progress)
    generator.reset()
    return history


def _recorder(out: Path, report: Report | None) -> tuple[list[dict[str, float]], Progress]:
    """The figures of every step as they come, and the progress callback that records them:
    kept in memory, appended to OUT/history.jsonl, passed on to `report`."""
    history: list[dict[str, float]] = []

    def progress(stats: dict[str, float]) -> None:
        history.append(dict(stats))
        write_history(out, [stats])
        if report:
            report("train", stats)

    return history, progress


def episodes_of(groups: Iterable[Group]) -> list[Trajectory]:
    return [t for g in groups for t in g.rollouts]


def write_history(out: Path, history: list[dict[str, float]]) -> None:
    """Append figures to OUT/history.jsonl as each step ends, so a stopped run keeps them and
    its resumed run's curve shows every step (the first process only)."""
    if not distributed.is_main():
        return
    with (out / "history.jsonl").open("a") as f:
        for row in history:
            f.write(json.dumps(row) + "\n")


def read_history(out: Path) -> list[dict[str, float]]:
    path = out / "history.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_curve(history: list[dict[str, float]], method: Method, path: Path) -> bool:
    """Reward per step (RL) or loss and margin per step (SFT, DPO); False with nothing to plot."""
    keys = {"rl": ["reward", "greedy_reward"], "dpo": ["loss", "margin"], "sft": ["loss"]}[method]
    rows = [r for r in history if "step" in r]
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for key in keys:
        points = [(r["step"], r[key]) for r in rows if key in r]
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", label=key)
    ax.set_xlabel("optimizer step")
    ax.set_title(f"{method}: " + ", ".join(keys))
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def loop_ratios(run: dict[str, Any]) -> dict[str, float]:
    """The doom-loop ratio of an eval run's doomloop suite per guard setting (its categories are
    FAMILY:off and FAMILY:on), over all families."""
    rows = run.get("summary", {}).get("doomloop", {}).get("categories", {})
    looped: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for category, row in rows.items():
        if "loop_ratio" in row:
            guard = category.rpartition(":")[2]
            looped[guard][0] += row["loop_ratio"] * row["cases"]
            looped[guard][1] += row["cases"]
    return {guard: n / cases for guard, (n, cases) in looped.items() if cases}


def report_markdown(
    method: Method,
    ts: TrainSettings,
    commands: str,
    data: dict[str, Any],
    before: Path | None,
    after: Path | None,
) -> str:
    """The report; `before` and `after` are eval run folders, compared case by case."""
    lines = [
        f"# Training report: {method} on {ts.suite} (train split)",
        "",
        f"Command: `{commands}`",
        "",
        "Settings: `" + ts.model_dump_json() + "`",
        "",
        "Data: " + ", ".join(f"{k} {v}" for k, v in data.items()),
        "",
        "![curve](curve.png)",
        "",
    ]
    if before and after:
        lines += ["## Test split, before and after", "", compare(before, after), ""]
        off_on = (loop_ratios(runner.read_run(before)), loop_ratios(runner.read_run(after)))
        if off_on[0] or off_on[1]:
            lines += ["## Doom-loop ratio", "", "| guard | before | after |", "|---|---|---|"]
            for c in sorted(set(off_on[0]) | set(off_on[1])):
                b, a = (f"{x[c]:.1%}" if c in x else "–" for x in off_on)
                lines.append(f"| {c} | {b} | {a} |")
            lines.append("")
    return "\n".join(lines)
