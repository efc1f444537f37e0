"""The training flow on a tiny random model: episodes from scripted rollouts through the real
agent loop, one online GRPO step, resume, DPO; the whole run from fresh rollouts to the report
and its resume; and `--from-log` on a log that mixes eval rollouts with the user's own chat
episodes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from pydantic import BaseModel

from agent.log import TrajectoryLog, read_trajectories
from agent.loop import run
from agent.settings import Settings
from evals import selection as sel
from evals import train as t
from evals.references import bfcl_example
from evals.rollouts import collect
from evals.train_report import read_history
from model.scripted import ScriptedGenerator
from model.tiny import tiny_model
from model.train.lora import attach, latest_checkpoint, trainable_parameters
from tests.evals.test_rollouts import add_case, call
from tests.evals.test_selection import ids_in
from tools.base import Tool, ToolResult
from tui.cli import main
from tui.training import eval_limits

pytestmark = pytest.mark.usefixtures("one_thread")
RIGHT, WRONG, NONE = call({"a": 2, "b": 3}), call({"a": 2, "b": 4}), "I cannot."


def test_one_online_rl_step_moves_the_adapter_and_resumes(tmp_path: Path) -> None:
    lm = tiny_model()  # its own copy: the adapter goes into the model in place
    lm.model = attach(lm.model)
    before = [p.detach().clone() for p in trainable_parameters(lm.model)]
    cases = [add_case(i) for i in ids_in("train", 2)]
    gen = ScriptedGenerator(lm, [RIGHT, WRONG, NONE] * 2)
    ts = t.TrainSettings(k=2, prompts_per_step=2, learning_rate=1e-2)
    history = t.train_rl(gen, cases, Settings(), ts, tmp_path)
    assert len(history) == 1 and history[0]["tokens"] > 0 and history[0]["greedy_reward"] > 1
    after = trainable_parameters(lm.model)
    assert any(not torch.equal(b, a) for b, a in zip(before, after, strict=True))
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    assert latest_checkpoint(tmp_path) is not None
    # Resumed with the step done, nothing is sampled again: the script is empty.
    assert t.train_rl(ScriptedGenerator(lm, []), cases, Settings(), ts, tmp_path, resume=True) == []
    assert read_history(tmp_path) == history  # written as the step ended, kept for the curve


def test_dpo_from_rollouts_trains(tmp_path: Path) -> None:
    lm = tiny_model()
    lm.model = attach(lm.model)
    gen = ScriptedGenerator(lm, [RIGHT, WRONG, NONE])
    groups = collect(gen, [add_case()], Settings(), k=2, temperature=1.0)
    ts = t.TrainSettings(learning_rate=1e-3, save_steps=0)
    history = t.train_offline("dpo", gen, t.episodes_of(groups), ts, tmp_path)
    assert len(history) == 1 and abs(history[0]["loss"] - 0.6931) < 1e-3  # log 2 at the start
    assert read_history(tmp_path) == history


def test_dpo_with_references_chooses_the_answer_no_rollout_found(tmp_path: Path) -> None:
    """Every rollout of the case wrong: without references there is no pair; with the case's
    reference answer it is the chosen side, and OUT/pairs.json counts it apart."""
    lm = tiny_model()
    lm.model = attach(lm.model)
    gen = ScriptedGenerator(lm, [WRONG, NONE])
    episodes = t.episodes_of(collect(gen, [add_case()], Settings(), k=1, temperature=1.0))
    ts = t.TrainSettings(learning_rate=1e-3, save_steps=0)
    with pytest.raises(t.NoData):
        t.train_offline("dpo", gen, episodes, ts, tmp_path / "alone")
    reference = bfcl_example(lm, add_case())
    assert reference is not None
    history = t.train_offline("dpo", gen, episodes, ts, tmp_path / "ref", extra=[reference])
    assert len(history) == 1 and abs(history[0]["loss"] - 0.6931) < 1e-3
    counts = json.loads((tmp_path / "ref" / "pairs.json").read_text())
    assert counts == {"pairs": 1, "reference chosen": 1}


class Seen:
    """A `Watch` that records what the run told it, in order."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def evaluating(self, label: str, suite: str, cases: list) -> None:
        self.events.append(f"eval {label} {suite}")

    def collecting(self, cases: int) -> Callable[[Any], None]:
        self.events.append(f"collect {cases}")
        return lambda group: self.events.append(f"group {len(group.rollouts)}")

    def training(self) -> Callable[[str, dict], None]:
        self.events.append("training")
        return lambda phase, stats: self.events.append(f"{phase} {stats['step']:.0f}")

    def trained(self) -> None:
        self.events.append("trained")


def test_the_whole_run_from_fresh_rollouts_to_the_report_then_resumed(tmp_path: Path) -> None:
    lm = tiny_model()
    t.make_trainable(lm, "default", rank=4)  # "default" is the shipped adapter: not a start
    assert trainable_parameters(lm.model)
    job = t.Job(method="dpo", out=tmp_path / "run", log_path=tmp_path / "log.jsonl",
                command="edgeagent train dpo")  # fmt: skip
    job.out.mkdir()
    ts = t.TrainSettings(k=2, learning_rate=1e-3)
    cases = [add_case(i) for i in ids_in("train", 1)]
    seen = Seen()
    gen = ScriptedGenerator(lm, [RIGHT, WRONG, NONE])
    text = t.run_training(gen, Settings(), ts, job, cases, {}, seen)
    assert seen.events == ["training", "collect 1", "group 3", "train 1", "trained"]
    assert text == (job.out / "report.md").read_text()
    assert "Data: episodes 3, own episodes 0" in text and "Test split" not in text  # no evals
    assert "pairs (dpo) 1, reference chosen (dpo) 0" in text
    (row,) = [json.loads(line) for line in (job.out / "rollouts.jsonl").open()]
    assert row["case"] == cases[0].id and len(row["ids"]) == 3
    assert {e.id for e in read_trajectories(job.log_path)} == set(row["ids"])
    assert (job.out / "curve.png").is_file() and lm.adapter == str(job.out / "adapter")
    assert len(read_history(job.out)) == 1

    # Resumed: the listed episodes come back from the log (the script is empty: nothing is
    # sampled) and the step done is not taken again.
    resumed = job.model_copy(update={"resume": True})
    again = t.run_training(ScriptedGenerator(lm, []), Settings(), ts, resumed, cases, {})
    assert again is not None and "Data: episodes 3," in again
    assert len(read_history(job.out)) == 1

    # From the log, with a bar no episode clears: nothing to train on, said in one line.
    sft = job.model_copy(update={"method": "sft", "from_log": True, "out": tmp_path / "sft"})
    with pytest.raises(t.NoData, match="nothing to imitate"):
        t.run_training(gen, Settings(), ts.model_copy(update={"min_reward": 9.0}), sft, [], {})


def test_collect_only_logs_the_rollouts_and_trains_nothing(tmp_path: Path) -> None:
    lm = tiny_model()
    t.make_trainable(lm, None, rank=4)
    job = t.Job(method="sft", out=tmp_path / "run", log_path=tmp_path / "log.jsonl",
                collect_only=True)  # fmt: skip
    job.out.mkdir()
    cases = [add_case(i) for i in ids_in("train", 2)]
    gen = ScriptedGenerator(lm, [RIGHT, WRONG] * 2)
    text = t.run_training(gen, Settings(), t.TrainSettings(k=1), job, cases, {})
    assert text is not None and text.startswith("4 episodes of 2 cases")
    logged = read_trajectories(job.log_path)
    assert sorted(e.rewards["task"] for e in logged) == [0.0, 0.0, 1.0, 1.0]
    assert not (job.out / "adapter").exists() and not read_history(job.out)
    # Resumed, a case the log holds k + 1 rollouts of is not rolled out again (the script is
    # empty: any episode would fail); one more case is.
    resumed = job.model_copy(update={"resume": True})
    text = t.run_training(ScriptedGenerator(lm, []), Settings(), t.TrainSettings(k=1), resumed,
                          cases, {})  # fmt: skip
    assert text is not None and "0 episodes of 0 cases" in text and "2 cases were there" in text
    more = [*cases, add_case(ids_in("train", 3)[2])]
    text = t.run_training(ScriptedGenerator(lm, [RIGHT, RIGHT]), Settings(),
                          t.TrainSettings(k=1), resumed, more, {})  # fmt: skip
    assert text is not None and text.startswith("2 episodes of 1 cases")
    assert len(read_trajectories(job.log_path)) == 6
    # The next piece trains on them from the log.
    sft = job.model_copy(update={"collect_only": False, "from_log": True})
    report = t.run_training(gen, Settings(), t.TrainSettings(), sft, [], {})
    assert report is not None and "Data: episodes 6" in report


def test_an_eval_already_run_is_read_back_not_run_again(tmp_path: Path) -> None:
    run = {"model": "tiny", "summary": {"bfcl": {"accuracy": 0.5}}}
    (tmp_path / "run.json").write_text(json.dumps(run))
    gen = ScriptedGenerator(tiny_model(), [])  # an empty script: any eval would fail
    evals = {"bfcl": [add_case()]}
    assert t.evaluate(gen, Settings(), evals, tmp_path, "before", Seen()) == run
    assert t.evaluate(gen, Settings(), {}, tmp_path, "before", Seen()) is None  # no suites


def test_train_cli_refuses_bad_input_in_one_line(capsys, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["train", "dpo", "--suite", "latency", "--out", str(tmp_path)])
    assert stop.value.code == 2 and "invalid choice: 'latency'" in capsys.readouterr().err
    assert eval_limits("bfcl=40,doomloop=6") == {"": 50, "bfcl": 40, "doomloop": 6}
    assert eval_limits("8") == {"": 8}
    args = ["train", "sft", "--out", str(tmp_path), "--eval-limit", "bfcl=x"]
    assert main(args) == 2
    assert "--eval-limit takes N" in capsys.readouterr().err
    assert main(["train", "dpo", "--out", str(tmp_path), "--categories", "nonsense"]) == 2
    assert "nonsense" in capsys.readouterr().err
    assert main(["train", "sft", "--out", str(tmp_path), "--anchors"]) == 2
    err = capsys.readouterr().err
    assert "--anchors" in err and "dpo only" in err and err.count("\n") == 1
    assert not json.dumps(list(tmp_path.iterdir()))[2:]  # nothing written on bad input


class LookupArgs(BaseModel):
    q: str


LOOKUP = Tool(
    name="lookup",
    description="Look a fact up.",
    args=LookupArgs,
    fn=lambda a: ToolResult(text=f"{a.q}: 4"),
)


def lookup(q: str) -> str:
    return f"<tool_call>{json.dumps({'name': 'lookup', 'arguments': {'q': q}})}</tool_call>"


def test_from_log_trains_on_the_right_own_and_eval_episodes(tmp_path: Path) -> None:
    """Own episodes through the real loop and rollouts of a train- and a test-split case, all
    in one log: read back, what SFT keeps and what DPO pairs."""
    lm = tiny_model()
    lm.model = attach(lm.model)
    log = TrajectoryLog(tmp_path / "log.jsonl")
    settings, tools = Settings(), {"lookup": LOOKUP}
    scripts = {
        "good": [lookup("2+2"), "It is 4."],
        "repeated": [lookup("2+2"), lookup("2+2"), "It is 4."],
        "empty": [""],
        "looping": [None, None],
        "other": [lookup("3+3"), "It is 6."],  # alone with its prompt: in SFT, in no pair
    }
    ids = {}
    for name, script in scripts.items():
        task = "What is 3+3?" if name == "other" else "What is 2+2?"
        ids[name] = run(ScriptedGenerator(lm, script), task, tools, settings, log=log).id
    (train,), (test,) = ids_in("train", 1), ids_in("test", 1)
    gen = ScriptedGenerator(lm, [RIGHT, WRONG, RIGHT, WRONG])
    collect(gen, [add_case(train), add_case(test)], settings, k=1, temperature=1.0, log=log)
    logged = read_trajectories(tmp_path / "log.jsonl")
    assert len(logged) == 9

    episodes = sel.usable(logged, "bfcl", lm.spec)
    assert sel.usable(logged, "bfcl", "another-model") == []  # another tokenizer's ids
    assert all(e.meta.get("case") != test for e in episodes)
    names = {v: k for k, v in ids.items()}
    own = {names[e.id]: e.rewards for e in episodes if sel.is_own(e)}
    assert sorted(own) == sorted(scripts)
    assert own["good"]["total"] == own["other"]["total"] == 1.0
    assert all(own[k]["total"] < 1.0 for k in ("repeated", "empty", "looping"))
    assert [sel.is_own(e) for e in episodes].count(False) == 2  # the train case's two rollouts

    kept = {e.meta["trajectory"] for e in sel.sft_examples(episodes, min_reward=1.0)}
    assert kept == {ids["good"], ids["other"]} | {e.id for e in episodes if not sel.is_own(e)
                                                   and e.rewards["task"] == 1.0}  # fmt: skip
    groups = sel.groups_by_prompt(episodes)
    (pair,) = sel.preference_pairs(groups, 0.1, sel.own_acceptable)
    assert pair.chosen.meta["trajectory"] == ids["good"]
    assert pair.rejected.meta["trajectory"] == ids["looping"]

    ts = t.TrainSettings(learning_rate=1e-3, save_steps=0)
    (tmp_path / "dpo").mkdir()
    history = t.train_offline("dpo", ScriptedGenerator(lm, []), episodes, ts, tmp_path / "dpo")
    assert len(history) == 1  # one own pair, one case pair: one batch
    assert (tmp_path / "dpo" / "adapter" / "adapter_config.json").is_file()
