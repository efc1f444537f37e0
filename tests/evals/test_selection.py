"""Choosing what training learns from, on hand-made episodes: the usable ones (never a
test-split case), what SFT keeps, which pairs DPO takes from eval cases and from the user's own
episodes, and how own episodes group by prompt."""

from __future__ import annotations

from agent.trajectory import Step, Trajectory
from evals import doomloop
from evals import selection as sel
from evals.common import split_of
from evals.rewards import verifiable
from model.messages import Message


def ids_in(split: str, n: int) -> list[str]:
    return [i for i in (f"simple_python_{k}" for k in range(200)) if split_of(i) == split][:n]


def scored(case: str, total: float, outcome: str = "answer", sampled: int = 3) -> Trajectory:
    step = Step(
        index=0,
        prompt_ids=[5, 6, 7],
        completion_ids=list(range(10, 10 + sampled)),
        completion_text="",
        finish_reason="eos",
        temperature=1.0,
    )
    return Trajectory(
        task="q",
        outcome=outcome,  # type: ignore[arg-type]
        steps=[step],
        rewards={"total": total},
        meta={"suite": "bfcl", "case": case},
    )


def own(task: str, steps: list[Step], outcome: str = "answer", answer: str = "4") -> Trajectory:
    traj = Trajectory(task=task, outcome=outcome, final_answer=answer, steps=steps)  # type: ignore[arg-type]
    return traj.model_copy(update={"rewards": verifiable(traj)})


def own_step(index: int, sampled: int, finish_reason: str = "eos") -> Step:
    return Step(
        index=index,
        prompt_ids=[5, 6, 7],
        completion_ids=list(range(10, 10 + sampled)),
        completion_text="",
        finish_reason=finish_reason,
        temperature=1.0,
    )


def own_pairs(episodes: list[Trajectory]) -> list:
    return sel.preference_pairs(sel.groups_by_prompt(episodes), 0.1, sel.own_acceptable)


def test_usable_never_keeps_a_test_split_case() -> None:
    (train,), (test,) = ids_in("train", 1), ids_in("test", 1)
    episodes = [scored(train, 1.0), scored(test, 1.0), Trajectory(task="chat", outcome="answer")]
    assert [e.meta["case"] for e in sel.usable(episodes, "bfcl")] == [train]
    assert sel.usable(episodes, "searchqa") == []


def test_usable_keeps_every_arm_of_a_train_question_and_none_of_a_test_one() -> None:
    """Doom-loop cases split by their prompt, not by the `:off`/`:on` id: the train split's
    rollouts are all kept (half were once dropped as if test cases) and no test one is."""
    for split in ("train", "test"):
        cases = doomloop.load_cases(split)  # type: ignore[arg-type]
        episodes = [scored(c.id, 1.0).model_copy(update={"meta": {"suite": "doomloop",
                    "case": c.id}}) for c in cases]  # fmt: skip
        kept = sel.usable(episodes, "doomloop")
        assert len(kept) == (len(cases) if split == "train" else 0)


def test_sft_keeps_answered_episodes_that_clear_the_bar() -> None:
    episodes = [scored("a", 1.3), scored("b", 0.3), scored("c", 1.3, outcome="step_limit")]
    examples = sel.sft_examples(episodes, min_reward=1.0)
    assert len(examples) == 1 and examples[0].mask == [0, 0, 0, 1, 1, 1]


def test_sft_trains_a_reply_written_twice_once() -> None:
    same = [scored("a", 1.3), scored("a", 1.3), scored("a", 1.3, sampled=4)]
    assert [e.sampled for e in sel.sft_examples(same, min_reward=1.0)] == [3, 4]


def test_pairs_take_each_cases_best_and_worst_when_apart() -> None:
    a = [scored("a", 0.3, sampled=4), scored("a", 1.3, sampled=2), scored("a", 0.1, sampled=5)]
    b = [scored("b", 1.3), scored("b", 1.25)]  # too close to prefer one
    pairs = sel.preference_pairs(sel.groups_by_case(a + b), min_gap=0.1)
    assert len(pairs) == 1
    assert pairs[0].chosen.sampled == 2 and pairs[0].rejected.sampled == 5


def test_a_flawed_own_episode_is_never_chosen_even_when_it_scores_higher() -> None:
    clean = own("q", [own_step(0, 20)])
    noisy = own("q", [own_step(0, 40)]).model_copy(update={"rewards": {**clean.rewards}})
    noisy.rewards["total"] = 0.6  # acceptable, but low: its tokens repeat (say)
    resampled = own("q", [own_step(0, 3, "doom_loop"), own_step(1, 5)])
    empty = own("q", [own_step(0, 7)], answer="")
    assert resampled.rewards["total"] > noisy.rewards["total"]  # the shaping alone misranks
    pairs = sel.preference_pairs(
        sel.groups_by_prompt([noisy, resampled, clean]), 0.1, sel.own_acceptable
    )
    # The flawed one is rejected against the better acceptable one, whatever the gap.
    assert [(p.chosen.sampled, p.rejected.sampled) for p in pairs] == [(20, 5)]
    # Only flawed episodes: nothing to prefer. Two acceptable ones too close: no pair.
    assert (
        sel.preference_pairs(sel.groups_by_prompt([resampled, empty]), 0.1, sel.own_acceptable)
        == []
    )
    near = clean.model_copy(update={"rewards": {**clean.rewards, "total": 0.95}})
    assert own_pairs([clean, near]) == []


def test_own_episodes_group_by_the_users_side_of_the_conversation() -> None:
    def chat(*users: str, mode: str = "online") -> Trajectory:
        messages = [Message(role="system", content="s")]
        for text in users:
            messages += [Message(role="user", content=text), Message(role="assistant", content="a")]
        messages.append(Message(role="user", content="keep going"))  # the loop's follow-up
        return Trajectory(task=users[-1], messages=messages, mode=mode)  # type: ignore[arg-type]

    episodes = [chat("2+2?"), chat("2+2?"), chat("hi", "2+2?"), chat("2+2?", mode="offline")]
    assert [len(g) for g in sel.groups_by_prompt(episodes)] == [2, 1, 1]
    assert sel.prompt_of(episodes[2]) == ("online", "hi", "2+2?")
    assert sel.groups_by_prompt([scored("simple_python_1", 1.0)]) == []  # a case's, not own
