"""Which episodes a training run learns from: the usable ones of the log, what SFT keeps, how
DPO pairs them.

From the log come two kinds of episode: eval rollouts, scored against their case
(`meta["case"]`, `rewards` set when collected), and the user's own chat and ask episodes, which
have no reference answer and are scored here by `evals.rewards.verifiable` (1.0 when flawless).
Test-split cases never reach training: logged episodes of a test-split case are dropped.
SFT keeps own episodes at `min_own_reward` (flawless by default); DPO pairs own episodes of the
same prompt (`prompt_of`), the best acceptable one (`evals.rewards.acceptable`: its own answer,
no loop, no repeated call) chosen and the worst rejected, so a looping, repeating or empty
episode is never chosen, and is the one rejected when the group has one. Where none of a case's
rollouts succeeded, the data set's reference answer of that case (`evals.references`, when the
run asks for them) is the chosen side against the worst rollout (`reference_pairs`): the model's
own mistakes, each met by the right answer, and (with `masked` references) each "call it" by
its twin "not without its function".

Not here: collecting fresh rollouts (`evals.rollouts`), reference answers (`evals.references`),
turning episodes into token examples (`model.train.data`), the run itself (`evals.train`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence

from agent.trajectory import Trajectory
from evals.common import split_of_case
from evals.rewards import acceptable, verifiable
from model.train.data import NOT_FOR_SFT, TrainExample, examples_from_trajectory
from model.train.dpo import PreferencePair

# Ends that say nothing about the model's behaviour: our failure, a dead process, the user's
# Esc. Own episodes that ended so are not trained on.
NOT_BEHAVIOUR = frozenset({"error", "interrupted", "cancelled"})


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
        if not t.rewards or split_of_case(str(t.meta["case"])) == "test":
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
    episode's, `min_own_reward`), each distinct sequence once: a greedy and a sampled rollout
    that wrote the same reply would otherwise weigh an easy case double."""
    out, seen = [], set()
    for t in trajectories:
        bar = min_own_reward if is_own(t) else min_reward
        if t.outcome == "answer" and t.rewards.get("total", 0.0) >= bar:
            for e in examples_from_trajectory(t, exclude=NOT_FOR_SFT):
                key = (tuple(e.input_ids), tuple(e.mask))
                if key not in seen:
                    seen.add(key)
                    out.append(e)
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


def last_sequence(t: Trajectory) -> TrainExample | None:
    """The episode's own last sequence (its final turns): what a preference compares. Sub-episodes
    (a focused read) are separate prompts with separate answers, left out of pairs."""
    examples = examples_from_trajectory(t, include_sub_episodes=False)
    return examples[-1] if examples else None


def succeeded(t: Trajectory) -> bool:
    """A rollout that got its case right, cleanly: the task's full reward, ended within budget
    with no repeated call (what `evals.rewards` requires of a chosen side)."""
    r = t.rewards
    clean = r.get("within_budget", 0.0) == 1.0 and r.get("no_repeats", 1.0) == 1.0
    return r.get("task", 0.0) >= 1.0 and clean


def reference_pairs(
    groups: Iterable[Sequence[Trajectory]], references: Iterable[TrainExample]
) -> list[PreferencePair]:
    """Per case none of whose rollouts succeeded, its reference answer chosen and its worst
    rollout's last sequence rejected. Both start from the eval's own prompt (the reference is
    built from it, `evals.references`), so they differ in the reply only. Where the reference
    is a call and `references` hold the case's `masked` twin (the same request with the needed
    function taken out), the twin pair comes too: declining chosen, that very call rejected.
    Without twins, a model that errs mostly by declining gets pairs that all say "call", and
    learns to call everywhere (dev irrelevance 40 -> 2 of 42 in one run); twins meet each
    "call it" with "not without its function", which halved that swing in the one run made
    (23 of 42), not stopped it: pairs from both sides in proportion are still wanted
    (evals/TRAINING.md). The chosen sides keep `meta["source"] == "reference"`."""
    by_case = {_key(e.meta.get("suite"), e.meta.get("case")): e for e in references}
    pairs = []
    for group in groups:
        if not group or any(succeeded(t) for t in group):
            continue
        suite, case = group[0].meta.get("suite"), group[0].meta.get("case")
        chosen = by_case.get(_key(suite, case))
        worst = min(group, key=lambda t: t.rewards.get("total", 0.0))
        rejected = last_sequence(worst)
        if not (chosen and rejected and rejected.sampled):
            continue
        pairs.append(PreferencePair(chosen, rejected))
        if (masked := by_case.get(_key(suite, f"{case}:masked"))) is not None:
            pairs.append(PreferencePair(masked, _with_reply_of(masked, chosen)))
    return pairs


def _key(suite: object, case: object) -> tuple[str, str]:
    return str(suite), str(case)


def _with_reply_of(example: TrainExample, other: TrainExample) -> TrainExample:
    """`example`'s prompt followed by `other`'s reply (its trained tokens)."""
    start = example.mask.index(1)
    reply = [t for t, m in zip(other.input_ids, other.mask, strict=True) if m]
    ids = example.input_ids[:start] + reply
    return TrainExample(ids, [0] * start + [1] * len(reply), dict(example.meta))


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
        if not (ends := paired_ends(group, min_gap, eligible)):
            continue
        chosen, rejected = last_sequence(ends[0]), last_sequence(ends[1])
        if chosen and rejected and chosen.sampled and rejected.sampled:
            pairs.append(PreferencePair(chosen, rejected))
    return pairs


def paired_ends(
    group: Sequence[Trajectory],
    min_gap: float,
    eligible: Callable[[Trajectory], bool] = lambda t: True,
) -> tuple[Trajectory, Trajectory] | None:
    """The group's (best, worst) episodes as `preference_pairs` pairs them, or None where it
    pairs none."""
    ranked = sorted(group, key=lambda t: (eligible(t), t.rewards.get("total", 0.0)))
    worst, best = ranked[0], ranked[-1]
    gap = best.rewards.get("total", 0.0) - worst.rewards.get("total", 0.0)
    if not eligible(best) or (eligible(worst) and gap < min_gap):
        return None
    return best, worst
