"""Training runs on the agent's own episodes: SFT on the good ones, DPO on each case's best and
worst, GRPO online over fresh groups; with an eval before and after, and a report. The whole
of `edgeagent train` but the flags and the progress bars.

The flow of `edgeagent train sft|dpo|rl` (`run_training`, once the model is loaded with a
trainable adapter, `make_trainable`): evaluate the model on the test split (skipped when
`OUT/eval-before` holds a finished run, so a resumed run does not redo it), get episodes (fresh
rollouts on the train split through the real agent loop, listed in `OUT/rollouts.jsonl`, or the
episodes already in the trajectory log), train, evaluate again, write `OUT/report.md`,
`OUT/curve.png` and `OUT/history.jsonl` (`evals.train_report`). The adapter is
`OUT/adapter/`, loadable everywhere with `--adapter`.

It lives in `evals/` rather than `model/` because it runs the agent loop and the scorers,
which `model/` may not import; the losses, the loop, adapters and checkpoints are
`model.train`'s, and online RL hands its rollout collector to `model.train.grpo.train_grpo` as
a callable. Test-split cases never reach training: rollouts draw from the train split only,
and logged episodes of a test-split case are dropped (`evals.selection`).

Not here: the losses (`model.train.sft`, `model.train.dpo`, `model.train.grpo`), choosing
episodes (`evals.selection`) and anchors (`evals.anchors`), sizing a step
(`evals.calibrate`), rollouts and references (`evals.rollouts`, `evals.references`), the
report (`evals.train_report`), the CLI and progress bars (`tui.training`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

from agent.log import TrajectoryLog, read_trajectories
from agent.settings import Settings
from agent.trajectory import LogSink, Trajectory
from evals import references, runner
from evals.anchors import anchor_pairs
from evals.rollouts import Group, collect
from evals.selection import (
    count_by,
    groups_by_case,
    groups_by_prompt,
    is_own,
    own_acceptable,
    preference_pairs,
    reference_pairs,
    sft_examples,
    usable,
)
from evals.train_report import Method, plot_curve, read_history, report_markdown, write_history
from model.generate import Generator
from model.loader import LoadedModel
from model.train import distributed
from model.train.data import TrainExample, examples_from_trajectory
from model.train.dpo import DpoSettings, train_dpo
from model.train.grpo import GrpoSettings, Rollout, train_grpo
from model.train.lora import LoraSettings, Progress, attach, load_trainable
from model.train.sft import SftSettings, train_sft

Report = Callable[[str, dict[str, Any]], None]  # (phase, figures) as training goes
NO_START = (None, "none", "default")  # adapter settings that mean: train from the base model


class NoData(ValueError):
    """Nothing to train on (no episode good enough, no pair apart); one line for the user."""


class TrainSettings(BaseModel):
    suite: str = "bfcl"
    limit: int | None = Field(default=None, description="train-split cases to use")
    categories: str | None = Field(
        default=None, description="the suite's categories to use (in ROLLOUT_ARMS' arm)"
    )
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
    sft_weight: float = Field(default=0.0, ge=0, description="DPO: chosen side's NLL weight")
    anchors: bool = Field(
        default=False, description="DPO: a forced-call anchor per pair choosing a call"
    )
    save_steps: int = Field(default=1, ge=0)
    batch_size: int = Field(default=8, ge=1, description="SFT: examples per optimizer step")
    max_steps: int | None = Field(default=None, ge=1, description="SFT: stop after N steps")
    context_grad: int | None = Field(
        default=None, ge=0, description="SFT: prompt tokens with a gradient; None: all (exact)"
    )
    seed: int = 0


class Job(BaseModel):
    """What one `edgeagent train` was asked for besides the training settings."""

    method: Method
    out: Path = Field(description="run folder: adapter, checkpoints, evals, report")
    log_path: Path = Field(description="the trajectory log rollouts go to and --from-log reads")
    from_log: bool = Field(default=False, description="SFT/DPO on the log's episodes")
    collect_only: bool = Field(
        default=False, description="roll out into the log and stop; train later --from-log"
    )
    resume: bool = Field(default=False, description="go on from the latest checkpoint")
    references: dict[str, int | None] = Field(
        default_factory=dict,
        description="suite -> reference cases per category (all); SFT trains on them, DPO "
        "chooses them over failed rollouts",
    )
    max_length: int | None = Field(default=None, description="longest reference example")
    command: str = Field(default="", description="the command line, for the report")


class Watch(Protocol):
    """What a run shows as it goes; the CLI draws progress bars (`tui.training`)."""

    def evaluating(self, label: str, suite: str, cases: list) -> runner.Progress | None:
        """A callback for each finished case of `suite` in the eval `label` ("before")."""

    def collecting(self, cases: int) -> Callable[[Group], None] | None:
        """A callback for each case's group of rollouts, `cases` of them on this process."""

    def training(self) -> Report | None:
        """Training is about to start; a callback for each optimizer step's figures."""

    def trained(self) -> None:
        """Training is over (the eval after it comes next)."""


class Quiet:
    """A `Watch` that shows nothing."""

    def evaluating(self, label: str, suite: str, cases: list) -> runner.Progress | None:
        return None

    def collecting(self, cases: int) -> Callable[[Group], None] | None:
        return None

    def training(self) -> Report | None:
        return None

    def trained(self) -> None:
        return None


# Rollouts of the doom-loop suite are its guard-off arm: the loops training must make rarer.
ROLLOUT_ARMS = {"doomloop": "off"}


def train_cases(ts: TrainSettings) -> list:
    arm = ROLLOUT_ARMS.get(ts.suite)
    if not (arm and ts.categories):
        return runner.load_suite_cases(ts.suite, "train", ts.limit, None, ts.categories or arm)
    # Picked families of a suite with a rollout arm: still that arm's cases only.
    armed = {c.id for c in runner.load_suite_cases(ts.suite, "train", None, None, arm)}
    picked = runner.load_suite_cases(ts.suite, "train", None, None, ts.categories)
    return [c for c in picked if c.id in armed][: ts.limit]


def eval_cases(names: Iterable[str], limits: dict[str, int]) -> dict[str, list]:
    """The test-split cases of each eval suite; `limits` per suite, the default under ""."""
    return {n: runner.load_suite_cases(n, "test", limits.get(n, limits[""]), None) for n in names}


def load_settings(settings: Settings) -> Settings:
    """The settings to load the model to train with: no adapter merged in, never quantized
    (LoRA trains on float weights, and a quantized layer has none), weights in torch's own
    order (the backward pass multiplies by them the other way round: `model.layout`), and
    transformers' model classes (peft and TRL wrap those, not `model.lean`'s)."""
    update = {"adapter": None, "quant": "none", "relayout": False, "lean": False}
    model = settings.model.model_copy(update=update)
    return settings.model_copy(update={"model": model})


def make_trainable(lm: LoadedModel, start: str | None, rank: int) -> None:
    """Give `lm` its trainable adapter, in place: training starts from the base model (the
    shipped adapter is what a run reproduces) with a fresh adapter of `rank`, or goes on from
    the adapter folder `start`. A fresh adapter changes nothing until trained, so "before" is
    the model as given."""
    folder = start if start not in NO_START else None
    lm.model = (
        load_trainable(lm.model, folder) if folder else attach(lm.model, LoraSettings(rank=rank))
    )


def run_training(
    generator: Generator,
    settings: Settings,
    ts: TrainSettings,
    job: Job,
    cases: list,
    evals: dict[str, list],
    watch: Watch | None = None,
) -> str | None:
    """`edgeagent train` on a model with its trainable adapter: the eval before, the episodes,
    training, the eval after, the curve and the report. Returns the report; None on every
    process but the first, which alone evaluates and writes. Raises `NoData` with nothing to
    train on."""
    w, out = watch or Quiet(), job.out
    if job.collect_only:  # a piece of a longer run, or episodes of one model to train another on
        todo = not_collected(cases, job.log_path, generator.lm, ts.k) if job.resume else cases
        log = TrajectoryLog(job.log_path)
        episodes = episodes_of(collect_rollouts(generator, todo, settings, ts, log, job.out, w))
        held = len(cases) - len(todo)
        return (f"{len(episodes)} episodes of {len(todo)} cases in {job.log_path}"
                + (f" ({held} cases were there already)" if held else "") + "\n")  # fmt: skip
    before = evaluate(generator, settings, evals, out / "eval-before", "before", w)
    report = w.training()
    if job.method == "rl":
        log = TrajectoryLog(job.log_path)
        train_rl(generator, cases, settings, ts, out, log, job.resume, report)
        data: dict[str, Any] = {"cases": len(cases), "rollouts per case": ts.k + 1}
    else:
        episodes = episodes_for(generator, cases, settings, ts, job, w)
        extra = reference_examples(generator.lm, settings, job)
        own = sum(is_own(e) for e in episodes)
        data = {"episodes": len(episodes), "own episodes": own, "source": str(job.log_path),
                **{f"reference {k}": v for k, v in count_by(extra).items()}}  # fmt: skip
        train_offline(job.method, generator, episodes, ts, out, job.resume, report, extra)
        if (counted := out / "pairs.json").is_file():  # DPO's pairs, those with a reference
            data.update({f"{k} (dpo)": v for k, v in json.loads(counted.read_text()).items()})
    w.trained()
    if not distributed.is_main():
        return None
    adapter = str(out / "adapter")
    generator.lm.adapter = adapter
    model = settings.model.model_copy(update={"adapter": adapter})
    after_settings = settings.model_copy(update={"model": model})
    after = evaluate(generator, after_settings, evals, out / "eval-after", "after", w, fresh=True)
    plot_curve(read_history(out), job.method, out / "curve.png")
    folders = (out / "eval-before", out / "eval-after") if before and after else (None, None)
    text = report_markdown(job.method, ts.suite, ts, job.command, data, *folders)
    (out / "report.md").write_text(text)
    return text


def evaluate(
    generator: Generator,
    settings: Settings,
    evals: dict[str, list],
    out: Path,
    label: str,
    watch: Watch,
    fresh: bool = False,
) -> dict[str, Any] | None:
    """Run the eval suites into `out`, or read them back from an earlier run of this job (not
    when `fresh`); None with no suites, and on every process but the first."""
    if not evals or not distributed.is_main():
        return None
    if not fresh and (out / "run.json").is_file():
        return runner.read_run(out)
    generator.reset()
    limits = ",".join(f"{name}={len(cases)}" for name, cases in evals.items())
    meta = runner.run_meta(settings, "test", limits, None)
    bars = lambda name, cases: watch.evaluating(label, name, cases)  # noqa: E731
    return runner.run_all(generator, settings, evals, out, meta, bars)


def episodes_for(
    generator: Generator,
    cases: list,
    settings: Settings,
    ts: TrainSettings,
    job: Job,
    watch: Watch,
) -> list[Trajectory]:
    """What SFT or DPO trains on: the log's episodes of this model (scored rollouts and own
    episodes), the rollouts a stopped run already collected, or fresh rollouts."""
    if job.from_log:
        return usable(read_trajectories(job.log_path), ts.suite, generator.lm.spec)
    listed = job.out / "rollouts.jsonl"
    if job.resume and listed.is_file():
        ids = {i for line in listed.open() for i in json.loads(line)["ids"]}
        return [e for e in read_trajectories(job.log_path) if e.id in ids]
    log = TrajectoryLog(job.log_path)
    return episodes_of(collect_rollouts(generator, cases, settings, ts, log, job.out, watch))


def not_collected(cases: list, log_path: Path, lm: LoadedModel, k: int) -> list:
    """The cases of which the log holds fewer than k + 1 rollouts by this model and adapter: what
    a stopped `--collect-only --resume` has left to do (a group cut short is rolled out again,
    with the same seeds, so the same samples)."""
    if not log_path.is_file():
        return cases
    held: dict[str, int] = {}
    for t in read_trajectories(log_path):
        if t.model == lm.spec and t.adapter == lm.adapter and "rollout" in t.meta:
            key = f"{t.meta.get('suite')}/{t.meta.get('case')}"
            held[key] = held.get(key, 0) + 1
    return [c for c in cases if held.get(f"{c.suite}/{c.id}", 0) < k + 1]


def reference_examples(lm: LoadedModel, settings: Settings, job: Job) -> list[TrainExample]:
    """The data sets' reference answers SFT also trains on (`evals.references`), each
    distinct sequence once (`bfcl` and `abstain` can take the same irrelevance case)."""
    seen: set[tuple[int, ...]] = set()
    out = []
    for suite, n in job.references.items():
        for e in references.examples(lm, suite, settings, n, job.max_length):
            if (key := tuple(e.input_ids)) not in seen:
                seen.add(key)
                out.append(e)
    return out


def collect_rollouts(
    generator: Generator,
    cases: list,
    settings: Settings,
    ts: TrainSettings,
    log: LogSink,
    out: Path,
    watch: Watch,
) -> list[Group]:
    """Fresh groups of rollouts of `cases`, listed in OUT/rollouts.jsonl (which episodes this
    run trains on, for `--resume`). Each process collects its share; all get every group."""
    mine = distributed.shard(cases)
    progress = watch.collecting(len(mine))
    groups = collect(generator, mine, settings, ts.k, ts.temperature, log, ts.seed, progress)
    groups = distributed.gather(groups)
    if not distributed.is_main():
        return groups
    with (out / "rollouts.jsonl").open("w") as f:
        for g in groups:
            row = {"case": g.case.id, "ids": [r.id for r in g.rollouts], "rewards": g.rewards}
            f.write(json.dumps(row) + "\n")
    return groups


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
    """SFT or DPO on scored episodes (fresh rollouts or the log's) and `extra` examples (the
    data sets' reference answers): SFT trains on them too, DPO chooses a case's reference where
    none of its rollouts succeeded (`evals.selection.reference_pairs`) and, with `ts.anchors`,
    adds the model's declines over its forced calls (`evals.anchors`); counts in
    OUT/pairs.json. Returns per-step figures."""
    history, progress = _recorder(out, report)
    lm = generator.lm
    if method == "sft":
        examples = sft_examples(episodes, ts.min_reward, ts.min_own_reward) + list(extra)
        if not examples:
            raise NoData(f"no episode scored {ts.min_reward} or more: nothing to imitate")
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
        by_case = groups_by_case(episodes)
        pairs = preference_pairs(by_case, ts.min_gap) + preference_pairs(
            groups_by_prompt(episodes), ts.min_gap, own_acceptable
        )
        chosen_references = reference_pairs(by_case, extra)
        pairs += chosen_references
        counts = {"pairs": len(pairs), "reference chosen": len(chosen_references)}
        if ts.anchors:  # appended last: the other pairs keep their places in the list
            anchors = anchor_pairs(lm, by_case, ts.min_gap)
            pairs += anchors
            counts |= {"pairs": len(pairs), "anchors": len(anchors)}
        out.mkdir(parents=True, exist_ok=True)
        (out / "pairs.json").write_text(json.dumps(counts) + "\n")
        if not pairs:
            raise NoData("no case or prompt had a best and a worst episode apart: no pairs")
        s = DpoSettings(
            learning_rate=ts.learning_rate or DpoSettings().learning_rate,
            epochs=ts.epochs,
            save_steps=ts.save_steps,
            length_normalized=True,
            sft_weight=ts.sft_weight,
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
