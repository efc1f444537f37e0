"""Anchors for DPO on a model's own BFCL rollouts: pairs that hold the line between calling a
function and declining where none fits, while the on-policy pairs move it.

A model that already declines well rarely calls where no function fits, even sampled (the
rerun's eighth declined 198 of 200 such rollouts at temperature 1.2), so its on-policy pairs
(a case's best rollout against its worst, `evals.selection.preference_pairs`) mostly choose a
call over a decline, and trained on alone they shift the whole line towards calling
(evals/TRAINING.md, "A tenth step tried on the rerun"). So for each pair that chooses a call
over a decline, one anchor: a case where no function fits and every rollout declined, that
decline chosen against the model's own call there, made by starting its reply the way its
calls start (`{"name": "` for the default model) and decoding greedily from there. The anchors
are taken from the no-fit categories in turn (irrelevance, live_irrelevance, ...), each in the
log's order.

Measured, not assumed: with anchors the step still moves the line by about as much on runs
that start in different places (it does not sharpen it), which is why the recipe keeps only a
share of it, sized on the dev set (`evals.calibrate`).

Not here: the other pairs (`evals.selection`), the loss (`model.train.dpo`), the run
(`evals.train`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import chain, zip_longest

import torch

from agent.trajectory import Trajectory
from evals.ast_check import NO_CALL_CATEGORIES
from evals.selection import last_sequence, paired_ends
from evals.turns import call_text, encode, end_id
from model.loader import LoadedModel
from model.messages import ToolCall
from model.train.data import TrainExample
from model.train.dpo import PreferencePair

# A forced call is a call's length; one that runs on past this is cut and ended (still a call).
CALL_TOKENS = 128
_MARK = "anchor_function_name"  # a name no template writes on its own, to find where it goes


def calls(t: Trajectory) -> bool:
    """Whether the episode's first reply calls a tool."""
    return bool(t.steps and t.steps[0].calls)


def calls_chosen(groups: Iterable[Sequence[Trajectory]], min_gap: float) -> int:
    """How many of the groups' on-policy pairs choose a call over a decline."""
    ends = [paired_ends(g, min_gap) for g in groups if len(g) > 1]
    return sum(1 for e in ends if e and calls(e[0]) and not calls(e[1]))


def anchor_groups(groups: Iterable[Sequence[Trajectory]], n: int) -> list[Sequence[Trajectory]]:
    """Up to `n` groups of no-fit cases in which every rollout declined and was right, taken
    from the no-fit categories in turn (sorted by name), each in the order given."""
    pools: dict[str, list[Sequence[Trajectory]]] = {}
    for g in groups:
        category = str(g[0].meta.get("category", ""))
        declined = all(t.rewards.get("task", 0.0) >= 1.0 and not calls(t) for t in g)
        if category.endswith(NO_CALL_CATEGORIES) and declined:
            pools.setdefault(category, []).append(g)
    turns = zip_longest(*(pools[c] for c in sorted(pools)))
    return [g for g in chain.from_iterable(turns) if g is not None][:n]


def call_start(lm: LoadedModel) -> list[int]:
    """The tokens every call of this model starts with, up to the function's name."""
    text = call_text(lm, ToolCall(name=_MARK, arguments={}))
    return encode(lm, text[: text.index(_MARK)])


def forced_call(lm: LoadedModel, decline: TrainExample, start: list[int]) -> TrainExample:
    """`decline`'s prompt answered with a call: `start`, then the model's greedy tokens."""
    prompt = decline.input_ids[: decline.mask.index(1)]
    end = end_id(lm)
    ids = torch.tensor([prompt + start])
    model = lm.model
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                             max_new_tokens=CALL_TOKENS, do_sample=False, eos_token_id=end,
                             pad_token_id=end)  # fmt: skip
    model.train(was_training)
    reply = start + out[0, ids.shape[1] :].tolist()
    if reply[-1] != end:
        reply.append(end)
    meta = dict(decline.meta, source="forced call")
    return TrainExample(prompt + reply, [0] * len(prompt) + [1] * len(reply), meta)


def anchor_pairs(
    lm: LoadedModel, groups: Sequence[Sequence[Trajectory]], min_gap: float
) -> list[PreferencePair]:
    """As many anchors as the groups' pairs that choose a call over a decline: each a no-fit
    case's decline chosen against the model's own forced call."""
    start = call_start(lm)
    pairs = []
    for g in anchor_groups(groups, calls_chosen(groups, min_gap)):
        decline = last_sequence(g[0])
        if decline is not None and decline.sampled:
            pairs.append(PreferencePair(decline, forced_call(lm, decline, start)))
    return pairs
