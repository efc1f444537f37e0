"""The ReAct loop: the model proposes tool calls, the loop runs them and feeds results back.

`run_episode` yields events (`agent.events`) and prints nothing; `run` drains them into the
finished trajectory. Each turn: render the conversation with the tools, stream a completion,
parse calls in the model's own format, run them in order, append the results as tool messages
framed as untrusted data (`agent.frame`), repeat. It ends on an answer with no call, or at a
limit (steps, tokens, wall time); an empty answer is built from what was found
(`agent.fallback`).

What the model gets wrong goes back to it as a readable tool result with a typed kind: a
malformed call, an unknown tool, bad arguments, the same call again. A doom loop (the guard in
`model.guard`) is nudged and resampled once hotter, then the episode stops with a clear
message. The same call past `repeat_limit` is answered from its earlier result when that
succeeded; otherwise refused with a nudge, at `repeat_limit` refusals also resampled hotter,
past it the tools are withheld. At the step limit the model answers once more without tools.

What a mode adds (web research steered for a small model, the long-document answer) is a
policy (`agent.policy`); `agent.research` is the default. Not here: which tools exist
(`agent.toolbox`), long inputs (`agent.attach`), writing the log (through `log`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, Literal

from agent.calls import Calls, unreadable
from agent.events import Done, Event, Final, Notice, StepDone, ToolEnd, ToolStart, drain
from agent.fallback import episode_answer, partial
from agent.frame import framed, neutralize, special_markers
from agent.incar import offline_answer
from agent.policy import Policy, View
from agent.research import FOCUSED_SYSTEM, Research
from agent.settings import Settings
from agent.trajectory import LogSink, Outcome, Step, Trajectory
from agent.turn import TurnSpec, generate
from model.chat import parse
from model.messages import Message
from model.stream import Generator
from tools.base import Tool

WRAP_UP = (
    "You have used all your steps. Answer the question now from the tool results above, "
    "in a few sentences, without calling any tool."
)
LOOP_NUDGE = "Your reply kept repeating itself. Say it once, briefly, or call a tool."
LOOPED = (
    "The model kept repeating itself and was stopped. Try rephrasing the question, "
    "or a larger model."
)
Mode = Literal["online", "offline", "rlm", "sub"]


def run_episode(
    generator: Generator,
    task: str,
    tools: dict[str, Tool],
    settings: Settings,
    *,
    history: list[Message] | None = None,
    system: str | None = None,
    log: LogSink | None = None,
    cancel: threading.Event | None = None,
    mode: Mode = "online",
    meta: dict[str, Any] | None = None,
    user_message: str | None = None,
    policy: Policy | None = None,
) -> Iterator[Event]:
    """One episode. `task` is what the log records as the question; `user_message`, when
    given, is what the model reads instead (RLM mode adds evidence around the question)."""
    lm = generator.lm
    if system is None:
        system = settings.offline_system_prompt if settings.offline else settings.system_prompt
    messages = history[:] if history else [Message(role="system", content=system)]
    messages.append(Message(role="user", content=user_message or task))
    traj = Trajectory(
        task=task, mode=mode, model=lm.spec, adapter=lm.adapter,
        settings=settings.model_dump(mode="json"), meta=meta or {},
    )  # fmt: skip
    if log:
        log.start(traj)
    markers = special_markers(lm.tokenizer)
    if policy is None:
        policy = Research(tools, settings, lm.tool_format)
    state = _Episode(generator, tools, settings, messages, traj, markers, policy)
    start = time.perf_counter()
    try:
        direct = offline_answer(task, settings) if mode == "offline" else None
        if direct is None:
            yield from state.loop(cancel, log, start)
        else:  # the in-car pre-processor computed it exactly: no model turn (agent.incar)
            traj.meta["answered_by"] = "incar"
            state.messages.append(Message(role="assistant", content=direct))
            yield from state._finish("answer", direct)
    except Exception as e:  # our bug: record it so the log stays whole, then re-raise
        traj.outcome, traj.error = "error", f"{type(e).__name__}: {e}"
        raise
    finally:
        traj.total_s, traj.messages = time.perf_counter() - start, state.messages
        if traj.outcome is None:  # the consumer stopped iterating
            traj.outcome = "cancelled"
        if log:
            log.end(traj)
    yield Done(traj)


def run(
    generator: Generator, task: str, tools: dict[str, Tool], settings: Settings, **kw: Any
) -> Trajectory:
    """`run_episode` to its end: the finished trajectory."""
    return drain(run_episode(generator, task, tools, settings, **kw))


class _Episode:
    def __init__(
        self, generator: Generator, tools: dict[str, Tool], settings: Settings,
        messages: list[Message], traj: Trajectory, markers: list[str], policy: Policy,
    ) -> None:  # fmt: skip
        self.generator, self.tools, self.settings = generator, tools, settings
        self.messages, self.traj, self.markers, self.policy = messages, traj, markers, policy
        self.calls = Calls(tools, settings.agent.repeat_limit, policy)

    def loop(
        self, cancel: threading.Event | None, log: LogSink | None, start: float
    ) -> Iterator[Event]:
        limits = self.settings.agent
        temperature, resampled = self.settings.sampling.temperature, False
        for index in range(limits.max_steps + 1):
            closing = index == limits.max_steps or self.calls.repeats > limits.repeat_limit
            turn = self.policy.before_turn(self._view(index, closing))
            if turn.answer is not None:
                return (yield from self._finish("answer", turn.answer))
            if turn.notice:
                yield Notice(index, turn.notice)
            if stop := self._limit(start):
                return (yield from self._finish(stop, self._partial(stop)))
            if closing:
                self.messages.append(Message(role="user", content=WRAP_UP))
            spec = TurnSpec(
                index, temperature, None if closing else self.tools,
                "" if closing else turn.prefill, None if closing else turn.choices,
                self.traj.sampled_tokens,
            )  # fmt: skip
            step = yield from generate(self.generator, self.messages, self.settings, spec, cancel)
            self.traj.steps.append(step)
            ending = self._ending(step, closing, resampled)
            if ending is None and step.finish_reason != "doom_loop":
                yield from self._run_calls(step)
                final = next((r.final for r in step.tool_runs if r.final is not None), None)
                if final is not None:
                    ending = ("answer", final)
                elif self.calls.repeat_answer is not None:
                    self.traj.meta["answered_by"] = "fallback"
                    ending = ("repeated_call", self.calls.repeat_answer)
            if log:  # after the tools ran, so the logged step holds their results
                log.step(self.traj.id, step)
            yield StepDone(index, step.completion_text)
            if step.note:
                yield Notice(index, step.note)
            if ending is not None:
                return (yield from self._finish(*ending))
            if step.finish_reason == "doom_loop" or self.calls.repeats == limits.repeat_limit:
                resampled, temperature = True, limits.resample_temperature
        # Only a doom loop on the wrap-up turn gets here.
        yield from self._finish("doom_loop", LOOPED)

    def _view(self, index: int, last: bool) -> View:
        def ask(question: str, text: str, system: str) -> tuple[str, Trajectory]:
            return focused(self.generator, question, text, self.settings, system)

        def chat(task: str, system: str, turns: list[Message]) -> tuple[str, Trajectory]:
            sub = sub_episode(self.generator, task, self.settings, system, turns)
            return (sub.final_answer or "").strip(), sub

        return View(index, last, self.traj, self.messages, ask, chat)

    def _ending(self, step: Step, closing: bool, resampled: bool) -> tuple[Outcome, str] | None:
        """How this step ends the episode, if it does."""
        if step.finish_reason == "cancelled":
            return "cancelled", step.completion_text.strip()
        if step.finish_reason == "doom_loop":
            if resampled:
                return "doom_loop", LOOPED
            temperature = self.settings.agent.resample_temperature
            step.note = f"doom loop: nudged, resampling at temperature {temperature}"
            self.messages.append(Message(role="user", content=LOOP_NUDGE))
            return None
        if (step.calls or step.parse_errors) and not closing:
            return None
        answer = parse(step.completion_text, self.generator.lm.tool_format).content
        self.messages.append(Message(role="assistant", content=answer))
        answer = self.policy.final(self._view(step.index, closing), answer)
        answer = episode_answer(self.traj, answer)
        if not closing:
            return "answer", answer
        if self.calls.repeats > self.settings.agent.repeat_limit:
            return "repeated_call", f"{answer}\n\n(Stopped: the same tool call again.)"
        return "step_limit", f"{answer}\n\n(Stopped after {self.settings.agent.max_steps} steps.)"

    def _run_calls(self, step: Step) -> Iterator[Event]:
        content = parse(step.completion_text, self.generator.lm.tool_format).content
        self.messages.append(Message(role="assistant", content=content, tool_calls=step.calls))
        for error in step.parse_errors:
            step.tool_runs.append(run := unreadable(error))
            self.messages.append(Message(role="tool", name="error", content=run.text))
        for call in step.calls:
            yield ToolStart(step.index, call)
            step.tool_runs.append(run := self.calls.run(call, self.messages))
            step.sub_episodes += self.policy.sub_episodes()
            content = framed(run.text, self.markers)
            self.messages.append(Message(role="tool", name=call.name, content=content))
            yield ToolEnd(step.index, call, run)
        if self.settings.agent.followup:
            self.messages.append(Message(role="user", content=self.settings.agent.followup))

    def _limit(self, start: float) -> Outcome | None:
        limits = self.settings.agent
        if self.traj.sampled_tokens >= limits.max_tokens:
            return "token_limit"
        if time.perf_counter() - start > limits.max_seconds:
            return "time_limit"
        return None

    def _partial(self, why: Outcome) -> str:
        said = (m.content for m in reversed(self.messages) if m.role == "assistant")
        return partial(self.traj, said, why)

    def _finish(self, outcome: Outcome, answer: str) -> Iterator[Event]:
        if outcome == "answer":
            answer = episode_answer(self.traj, answer)
        self.traj.outcome, self.traj.final_answer = outcome, answer.strip()
        yield Final(self.traj.final_answer)


def focused_settings(settings: Settings) -> Settings:
    """One tool-free turn of at most `rlm.sub_tokens` tokens: a focused answer's settings."""
    sub_settings = settings.model_copy(deep=True)
    sub_settings.agent.max_steps = 1
    sub_settings.sampling.max_new_tokens = settings.rlm.sub_tokens
    return sub_settings


def sub_episode(
    generator: Generator, task: str, settings: Settings, system: str, turns: Sequence[Message] = ()
) -> Trajectory:  # fmt: skip
    """The model, recursively, on `task` with no tools, in one short turn (after `turns`,
    worked examples, when given): a trajectory of its own (the caller files it under a step).
    Every sub-call of every mode is this."""
    history = [Message(role="system", content=system), *turns]
    return run(generator, task, {}, focused_settings(settings), mode="sub", history=history)


def focused_task(question: str, text: str, settings: Settings) -> str:
    return f"Text:\n{text[: settings.rlm.inline_chars]}\n\nQuestion: {question}"


def focused(
    generator: Generator, question: str, text: str, settings: Settings,
    system: str = FOCUSED_SYSTEM,
) -> tuple[str, Trajectory]:  # fmt: skip
    """The model on a short text and the question: a small model that loses its way in a
    long tool conversation reads a short focused prompt right."""
    text = neutralize(text, special_markers(generator.lm.tokenizer))  # tool output is data
    traj = sub_episode(generator, focused_task(question, text, settings), settings, system)
    return (traj.final_answer or "").strip(), traj
