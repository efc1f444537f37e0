"""Training examples from recorded steps: token ids plus a mask that is 1 exactly on sampled tokens.

A step's `prompt_ids` are inserted (system, user, tool output, a loop prefill: never trained on)
and its `completion_ids` were sampled by the model (trained on). In a multi-turn episode each
prompt starts with the previous prompt and completion, so a run of steps folds into one sequence:
the last step's prompt + completion, with every earlier completion found at its own position
(step k's completion starts at len(step k's prompt)). A step whose prompt does not start with the
sequence so far (the chat template re-rendered an earlier turn into different tokens) starts a new
sequence, so an episode gives one example when its turns line up and one per step when none do.

Steps are duck-typed: `agent.trajectory.Step` objects or the dicts of `Trajectory.model_dump()`,
anything with `prompt_ids` and `completion_ids` (and, for trajectories, `steps` and optionally
`sub_episodes`). `model/` never imports `agent`.

Not here: choosing which episodes to train on (a reward threshold, pairs, groups: the caller),
scoring, or the losses (`model.train.sft`, `model.train.dpo`, `model.train.grpo`).
"""

from __future__ import annotations

import random
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch

T = TypeVar("T")
IGNORE = -100  # the label of a token that is not trained on (what transformers' loss skips)
NOT_FOR_SFT = frozenset({"doom_loop", "cancelled"})  # finish reasons not worth imitating


@dataclass
class TrainExample:
    input_ids: list[int]
    mask: list[int]  # 1 where the token was sampled by the model: the only tokens trained on
    meta: dict[str, Any] = field(default_factory=dict)  # where it came from: trajectory id, steps

    def __post_init__(self) -> None:
        if len(self.input_ids) != len(self.mask):
            raise ValueError(f"{len(self.input_ids)} ids but {len(self.mask)} mask values")

    @property
    def labels(self) -> list[int]:
        return [t if m else IGNORE for t, m in zip(self.input_ids, self.mask, strict=True)]

    @property
    def sampled(self) -> int:
        return sum(self.mask)


@dataclass
class Batch:
    input_ids: torch.Tensor  # [B, T], right-padded
    attention_mask: torch.Tensor  # [B, T], 0 on padding
    mask: torch.Tensor  # [B, T], 1 on sampled tokens

    def to(self, device: torch.device | str) -> Batch:
        return Batch(
            self.input_ids.to(device), self.attention_mask.to(device), self.mask.to(device)
        )


def _get(obj: Any, name: str, default: Any = None) -> Any:
    return obj.get(name, default) if isinstance(obj, dict) else getattr(obj, name, default)


def examples_from_steps(
    steps: Sequence[Any], meta: dict[str, Any] | None = None, exclude: Collection[str] = ()
) -> list[TrainExample]:
    """The fewest sequences that hold every step's completion at the position it was sampled in.
    Completions whose `finish_reason` is in `exclude` stay context but are not trained on (SFT
    passes `NOT_FOR_SFT`: a doom loop the loop resampled is no behaviour to imitate)."""
    chains: list[list[Any]] = []
    sequence: list[int] = []
    for step in steps:
        prompt, completion = list(_get(step, "prompt_ids")), list(_get(step, "completion_ids"))
        if not chains or prompt[: len(sequence)] != sequence:
            chains.append([])
        chains[-1].append(step)
        sequence = prompt + completion
    out = [_fold(chain, exclude) for chain in chains]
    return [TrainExample(e.input_ids, e.mask, {**(meta or {}), **e.meta}) for e in out if e.sampled]


def _fold(chain: list[Any], exclude: Collection[str]) -> TrainExample:
    """One sequence from steps that each extend the one before, cut after its last trained token
    (what follows it cannot change the loss)."""
    last = chain[-1]
    ids = list(_get(last, "prompt_ids")) + list(_get(last, "completion_ids"))
    mask = [0] * len(ids)
    trained = [s for s in chain if _get(s, "finish_reason") not in exclude]
    for step in trained:
        start = len(_get(step, "prompt_ids"))
        n = len(_get(step, "completion_ids"))
        mask[start : start + n] = [1] * n
    mask[:1] = [0]  # the first token has no context to be predicted from
    end = max((i + 1 for i, m in enumerate(mask) if m), default=0)
    return TrainExample(ids[:end], mask[:end], {"steps": [_get(s, "index") for s in trained]})


def examples_from_trajectory(
    trajectory: Any, include_sub_episodes: bool = True, exclude: Collection[str] = ()
) -> list[TrainExample]:
    """Examples of an episode (and, by default, of the sub-episodes nested in its steps)."""
    out: list[TrainExample] = []
    for episode in walk(trajectory) if include_sub_episodes else [trajectory]:
        meta = {"trajectory": _get(episode, "id")}
        out += examples_from_steps(_get(episode, "steps", []), meta, exclude)
    return out


def walk(trajectory: Any) -> Iterator[Any]:
    """The episode, then every sub-episode under its steps, depth first."""
    yield trajectory
    for step in _get(trajectory, "steps", []):
        for sub in _get(step, "sub_episodes", []) or []:
            yield from walk(sub)


def collate(examples: Sequence[TrainExample], pad_id: int = 0) -> Batch:
    """Right-pad to the longest example. Padding is neither attended to nor trained on, so any
    token id will do for `pad_id`."""
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(examples), width), dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids)
        attention[row, :n] = 1
        mask[row, :n] = torch.tensor(e.mask)
    return Batch(ids, attention, mask)


def batches(items: Sequence[T], size: int, epochs: int = 1, seed: int = 0) -> list[list[T]]:
    """Every epoch's items in a fresh seeded order, cut into batches of `size` (the last of an
    epoch may be shorter): the same list on every call, so a resumed run skips what was done."""
    rng = random.Random(seed)
    out: list[list[T]] = []
    for _ in range(epochs):
        order = list(items)
        rng.shuffle(order)
        out += [order[i : i + size] for i in range(0, len(order), size)]
    return out
