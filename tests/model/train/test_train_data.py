"""Training examples from steps: sampled tokens unmasked, prompt and tool tokens masked."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from agent.trajectory import Step, Trajectory
from model.train.data import (
    IGNORE,
    NOT_FOR_SFT,
    TrainExample,
    batches,
    collate,
    examples_from_steps,
    examples_from_trajectory,
)

SYSTEM_USER = [1, 2, 3]
CALL = [4, 5]  # sampled: a tool call
TOOL = [6, 7]  # inserted: the tool's output
PREFILL = [8]  # inserted by the loop at the start of the second turn
ANSWER = [9, 10]  # sampled


def two_steps(second_prompt: list[int] | None = None) -> list[SimpleNamespace]:
    first = SimpleNamespace(index=0, prompt_ids=SYSTEM_USER, completion_ids=CALL)
    prompt = second_prompt or SYSTEM_USER + CALL + TOOL + PREFILL
    return [first, SimpleNamespace(index=1, prompt_ids=prompt, completion_ids=ANSWER)]


def test_aligned_steps_fold_into_one_sequence_with_only_sampled_tokens_trained() -> None:
    [example] = examples_from_steps(two_steps())
    assert example.input_ids == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert example.mask == [0, 0, 0, 1, 1, 0, 0, 0, 1, 1]
    assert example.labels == [IGNORE] * 3 + [4, 5] + [IGNORE] * 3 + [9, 10]
    assert example.sampled == 4 and example.meta["steps"] == [0, 1]


def test_a_re_tokenized_prompt_falls_back_to_one_sequence_per_step() -> None:
    # The template re-rendered the first call differently ([4, 50] instead of [4, 5]).
    first, second = examples_from_steps(two_steps(SYSTEM_USER + [4, 50] + TOOL + PREFILL))
    assert first.input_ids == [1, 2, 3, 4, 5] and first.mask == [0, 0, 0, 1, 1]
    assert second.input_ids == [1, 2, 3, 4, 50, 6, 7, 8, 9, 10]
    assert second.mask == [0] * 8 + [1, 1]  # the re-rendered call is context now, not trained


def test_trajectory_objects_and_dumped_dicts_give_the_same_examples() -> None:
    sub = Trajectory(
        task="sub",
        mode="sub",
        steps=[_step(0, [11, 12], [13, 14])],
    )
    steps = [_step(s.index, s.prompt_ids, s.completion_ids) for s in two_steps()]
    steps[1].sub_episodes.append(sub)
    traj = Trajectory(task="t", steps=steps)
    from_objects = examples_from_trajectory(traj)
    from_dicts = examples_from_trajectory(traj.model_dump())
    assert [e.input_ids for e in from_objects] == [e.input_ids for e in from_dicts]
    assert [e.mask for e in from_objects] == [e.mask for e in from_dicts]
    assert [e.input_ids for e in from_objects] == [list(range(1, 11)), [11, 12, 13, 14]]
    assert from_objects[1].meta["trajectory"] == sub.id
    assert len(examples_from_trajectory(traj, include_sub_episodes=False)) == 1


def test_excluded_completions_stay_context_and_a_trailing_one_is_cut() -> None:
    looped, answered = two_steps()
    looped.finish_reason = "doom_loop"
    [example] = examples_from_steps([looped, answered], exclude=NOT_FOR_SFT)
    assert example.mask == [0] * 8 + [1, 1] and example.meta["steps"] == [1]
    call, answer = two_steps()
    answer.finish_reason = "cancelled"
    [example] = examples_from_steps([call, answer], exclude=NOT_FOR_SFT)
    assert example.input_ids == [1, 2, 3, 4, 5] and example.mask == [0, 0, 0, 1, 1]
    assert examples_from_steps([answer], exclude=NOT_FOR_SFT) == []


def test_steps_without_sampled_tokens_give_no_example() -> None:
    assert (
        examples_from_steps([SimpleNamespace(index=0, prompt_ids=[1, 2], completion_ids=[])]) == []
    )


def test_collate_pads_right_and_masks_the_padding() -> None:
    batch = collate([TrainExample([1, 2, 3], [0, 1, 1]), TrainExample([4, 5], [0, 1])], pad_id=0)
    assert batch.input_ids.tolist() == [[1, 2, 3], [4, 5, 0]]
    assert batch.attention_mask.tolist() == [[1, 1, 1], [1, 1, 0]]
    assert torch.equal(batch.mask, torch.tensor([[0, 1, 1], [0, 1, 0]]))


def test_batches_are_seeded_and_cover_every_epoch() -> None:
    once = batches(list(range(5)), size=2, epochs=2, seed=3)
    assert once == batches(list(range(5)), size=2, epochs=2, seed=3)
    assert [len(b) for b in once] == [2, 2, 1, 2, 2, 1]
    assert sorted(x for b in once[:3] for x in b) == list(range(5))


def _step(index: int, prompt: list[int], completion: list[int]) -> Step:
    return Step(
        index=index,
        prompt_ids=prompt,
        completion_ids=completion,
        completion_text="",
        finish_reason="stop",
        temperature=0.7,
    )
