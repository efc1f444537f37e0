"""Agent overhead: the share of a ReAct episode spent outside the model's forward pass.

Runs a few real episodes (the configured model, the Python sandbox as the only tool, a
trajectory log on disk) and splits their wall time three ways: the model's forward (each
step's `forward_s`), tool runs (the sandbox executing the model's code, sub-episodes
included), and the rest: rendering prompts, tokenizing, sampling, detokenizing, the guard,
parsing and validating calls, dispatching them and writing the log. The share reported is
rest / (forward + rest): what the loop adds to the model's own time, tool execution aside.
It also counts the prompt tokens each step took from the KV cache of the step before (the
prefix reuse of `model.generate`).

A measurement that prints figures, not a test, and not a quality check: whether the model
answers right does not matter here, only where the time goes.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from pydantic import BaseModel

from agent.log import TrajectoryLog
from agent.loop import run
from agent.settings import Settings
from agent.toolbox import toolbox
from agent.trajectory import Trajectory
from model.generate import Generator, SamplingSettings
from model.loader import load

TASKS = [
    "Use the python tool to compute the sum of the squares of the integers from 1 to 50.",
    "Use the python tool to count the prime numbers below 1000.",
    "Use the python tool to compute 2 to the power 64.",
    "Use the python tool to reverse the string 'edgeagent' and tell me the result.",
]


class Overhead(BaseModel):
    episodes: int
    steps: int
    sampled_tokens: int
    prompt_tokens: int
    reused_tokens: int  # prompt tokens whose keys and values came from the previous step
    wall_s: float
    forward_s: float
    tool_s: float
    other_s: float

    @property
    def share(self) -> float:
        model_and_loop = self.forward_s + self.other_s
        return self.other_s / model_and_loop if model_and_loop > 0 else 0.0


def split(trajectories: list[Trajectory]) -> Overhead:
    steps = [s for t in trajectories for s in t.steps]
    wall = sum(t.total_s for t in trajectories)
    forward = sum(s.forward_s for s in steps)
    tools = sum(r.duration_s for s in steps for r in s.tool_runs)
    return Overhead(
        episodes=len(trajectories),
        steps=len(steps),
        sampled_tokens=sum(len(s.completion_ids) for s in steps),
        prompt_tokens=sum(len(s.prompt_ids) for s in steps),
        reused_tokens=sum(s.reused_tokens for s in steps),
        wall_s=wall,
        forward_s=forward,
        tool_s=tools,
        other_s=max(0.0, wall - forward - tools),
    )


def measure(settings: Settings, episodes: int, threads: int) -> Overhead:
    import torch

    torch.set_num_threads(threads)
    m = settings.model
    settings = settings.model_copy(
        update={"offline": False, "agent": settings.agent.model_copy(update={"tools": ["python"]})}
    )
    lm = load(m.spec, adapter=m.adapter, dtype=m.dtype, quant=m.quant, device=m.device)
    generator = Generator(lm)
    generator.complete("Hello", SamplingSettings(max_new_tokens=4))  # kernel plans, not timed
    done: list[Trajectory] = []
    with tempfile.TemporaryDirectory() as tmp:
        log = TrajectoryLog(Path(tmp) / "trajectories.jsonl")
        for task in (TASKS * episodes)[:episodes]:
            generator.reset()
            with toolbox(settings, question=task) as tools:
                done.append(run(generator, task, tools, settings, log=log))
    return split(done)


def table(o: Overhead) -> str:
    head = (
        "| episodes | steps | sampled | prompt tokens from cache | wall | model forward | tools "
        "| agent overhead | share |"
    )
    reused = f"{o.reused_tokens}/{o.prompt_tokens}"
    return "\n".join(
        [
            head,
            "|---" * 9 + "|",
            f"| {o.episodes} | {o.steps} | {o.sampled_tokens} | {reused} | {o.wall_s:.1f} s | "
            f"{o.forward_s:.1f} s | {o.tool_s:.1f} s | {o.other_s:.2f} s | {100 * o.share:.1f}% |",
        ]
    )
