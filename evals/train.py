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

From the log come two kinds of episode: eval rollouts, scored against their case
(`meta["case"]`, `rewards` set when collected), and the user's own chat and ask episodes, which
have no reference answer and are scored here by `evals.rewards.verifiable` (1.0 when flawless).
SFT keeps own episodes at `min_own_reward` (flawless by default); DPO pairs own episodes of the
same prompt (`prompt_of`), the best acceptable one (`evals.rewards.acceptable`: its own answer,
no loop, no repeated call) chosen and the worst rejected, so a looping, repeating or empty
episode is never chosen, and is the one rejected when the group has one.

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
from evals.common import split_of
from evals.compare import compare
from evals.rewards import acceptable, verifiable
from evals.rollouts import Group, collect
from model.generate import Generator
from model.train import distributed
from model.train.data import NOT_FOR_SFT, TrainExample, examples_from_trajectory
from model.train.dpo import DpoSettings, PreferencePair, train_dpo
from model.train.grpo import GrpoSettings, Rollout, train_grpo
from model.train.lora import Progress
from model.train.sft import SftSettings, train_sft

Method = Literal["sft", "dpo", "rl"]
# Ends that say nothing about the model's behaviour: our failure, a dead process, the user's
# Esc. Own episodes that ended so are not trained on.
NOT_BEHAVIOUR = frozenset({"error", "interrupted", "cancelled"})
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


def usable(
    trajectories: Iterable[Trajectory], suite: str | None = None, model: str | None = None
) -> list[Trajectory]:
    """Logged episodes that may be trained on: the scored rollouts of `suite`'s cases, never one
    of a test-split case, and the own episodes (no case) with their `verifiable` rewards (a
    copy). `model`: only episodes of that model spec (another tokenizer's ids are noise)."""
    out = []
    for t in trajectories:
        if model is not None and t.model != model:
            continue
        if is_own(t):
            if t.mode != "sub" and t.outcome not in NOT_BEHAVIOUR and t.steps:
                out.append(t.model_copy(update={"rewards": verifiable(t)}))
            continue
        if not t.rewards or split_of(str(t.meta["case"])) == "test":
            continue
        if suite and t.meta.get("suite") != suite:
            continue
        out.append(t)
    return out


def is_own(t: Trajectory) -> bool:
    """An ordinary chat or ask episode, not an eval case's rollout."""
    return not t.meta.get("case")


def sft_examples(
    trajectories: Iterable[Trajectory], min_reward: float, min_own_reward: float = 1.0
) -> list[TrainExample]:
    """Every sequence of every answered episode whose reward reaches `min_reward` (an own
    episode's, `min_own_reward`)."""
    out = []
    for t in trajectories:
        bar = min_own_reward if is_own(t) else min_reward
        if t.outcome == "answer" and t.rewards.get("total", 0.0) >= bar:
            out += examples_from_trajectory(t, exclude=NOT_FOR_SFT)
    return out


def count_by(examples: Iterable[TrainExample]) -> dict[str, int]:
    """Examples per suite and category ("bfcl/parallel"), for the report's data counts."""
    found: dict[str, int] = defaultdict(int)
    for e in examples:
        found[f"{e.meta.get('suite')}/{str(e.meta.get('category', '')).split(':')[0]}"] += 1
    return dict(sorted(found.items()))


def groups_by_case(trajectories: Iterable[Trajectory]) -> list[list[Trajectory]]:
    """Logged episodes of the same eval case, in the order first seen."""
    found: dict[str, list[Trajectory]] = defaultdict(list)
    for t in trajectories:
        if case := t.meta.get("case"):
            found[f"{t.meta.get('suite')}/{case}"].append(t)
    return list(found.values())


def prompt_of(t: Trajectory) -> tuple[str, ...]:
    """What makes two own episodes answers to the same prompt: the mode, then the user's
    messages up to the episode's question (one, the question, unless it continued a chat)."""
    users: list[str] = []
    for m in t.messages:
        if m.role == "user":
            users.append(m.content)
            if m.content == t.task:
                return (t.mode, *users)
    return (t.mode, t.task)  # RLM mode: the model read the question inside more text


def groups_by_prompt(trajectories: Iterable[Trajectory]) -> list[list[Trajectory]]:
    """Own episodes of the same prompt, in the order first seen."""
    found: dict[tuple[str, ...], list[Trajectory]] = defaultdict(list)
    for t in trajectories:
        if is_own(t):
            found[prompt_of(t)].append(t)
    return list(found.values())


def own_acceptable(t: Trajectory) -> bool:
    return acceptable(t.rewards)


def _last_sequence(t: Trajectory) -> TrainExample | None:
    """The episode's own last sequence (its final turns): what a preference compares. Sub-episodes
    (a focused read) are separate prompts with separate answers, left out of pairs."""
    examples = examples_from_trajectory(t, include_sub_episodes=False)
    return examples[-1] if examples else None


def preference_pairs(
    groups: Iterable[Sequence[Trajectory]],
    min_gap: float,
    eligible: Callable[[Trajectory], bool] = lambda t: True,
) -> list[PreferencePair]:
    """Per group, the best-scored eligible episode chosen and the worst rejected, ineligible ones
    ranked below every eligible one. An ineligible worst is rejected against any eligible best;
    two eligible ones need to differ by at least `min_gap`. A looping rollout scores low (no
    answer, repetition penalty), so loops are what gets rejected."""
    pairs = []
    for group in groups:
        ranked = sorted(group, key=lambda t: (eligible(t), t.rewards.get("total", 0.0)))
        worst, best = ranked[0], ranked[-1]
        gap = best.rewards.get("total", 0.0) - worst.rewards.get("total", 0.0)
        if not eligible(best) or (eligible(worst) and gap < min_gap):
            continue
        chosen, rejected = _last_sequence(best), _last_sequence(worst)
        if chosen and rejected and chosen.sampled and rejected.sampled:
            pairs.append(PreferencePair(chosen, rejected))
    return pairs


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
