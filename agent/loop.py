"""The ReAct loop: the model proposes tool calls, the loop runs them and feeds results back.

`run_episode` is a generator of events (token text, tool started, tool finished, step done,
notice, final answer, episode done); it prints nothing, and the CLI and the TUI show the events.
Each turn: render the conversation with the tools, stream a completion, parse calls in the
model's own format, run them in order, append the results as tool messages framed as untrusted
data, repeat. It ends on an answer with no call, or at a limit (steps, tokens, wall time).

What the model gets wrong goes back to it as a readable tool result: a malformed call, an
unknown tool, bad arguments, the same call again, a page URL it guessed while it could search
(the next turn then starts a web_search call). A doom loop (the guard in `model.guard`) is
nudged and resampled once at a higher temperature, then the episode stops with a clear message.
The same call past `repeat_limit` is refused with a nudge, a second time also resamples hotter,
a third time ends the tool use. At the step limit (or that third repeat) the model answers once more
with tools withheld, so the user gets its best partial answer with a short note.

One steer, because a 0.5B model otherwise guesses from search snippets or searches again: after
a search that found pages, and before any page was read, the loop starts the next turn with
the opening of a fetch_page call, and the model picks which found URL to read: its decoding is
held to those URLs (`agent.read_after_search`). The opening is recorded as inserted
(`Step.prefill`); the URL tokens are the model's own choice. The answer then comes from the
model on just the pages read and the question (`focused`): left in the tool conversation, it
calls the tool again instead of answering. When that answer is NOT FOUND, the loop asks for a
search for the missing fact and steers the next read the same way (a second hop).

Not here: which tools exist (`agent.toolbox`), long inputs (`agent.rlm`), writing the log
(`agent.log`, called through the `log` argument).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Literal, Protocol

from pydantic import BaseModel

from agent.incar import offline_answer
from agent.settings import TOOL_NAMES, Settings
from agent.toolbox import UNTRUSTED, neutralize, special_markers
from agent.trajectory import Outcome, Step, ToolRun, Trajectory
from model.chat import ToolFormat, call_prefix, parse, render
from model.generate import Completion, Delta, Generator
from model.messages import Message, ToolCall
from tools.base import Tool, ToolResult


class Event(BaseModel):
    kind: Literal["token", "tool_start", "tool_end", "step", "notice", "final", "done"]
    step: int = 0
    text: str = ""
    call: ToolCall | None = None
    run: ToolRun | None = None
    trajectory: Trajectory | None = None


# Gathered tool output -> (final answer, the sub-episode that wrote it)
AnswerWith = Callable[[str], tuple[str, Trajectory]]


class LogSink(Protocol):
    """What the loop needs of a log: agent.log.TrajectoryLog is one."""

    def start(self, traj: Trajectory) -> None: ...
    def step(self, episode_id: str, step: Step) -> None: ...
    def end(self, traj: Trajectory) -> None: ...


# Where a call ends in each format: stopping there keeps a small model from repeating it.
CALL_ENDS = {
    # Tagged, or bare JSON lines: a second call starts after the first one's closing brace
    # (cut with it; the lenient parser closes it again), never right after "<tool_call>".
    ToolFormat.HERMES: ["</tool_call>", '}\n{"name"'],
    ToolFormat.FALLBACK: ["</tool_call>", '}\n{"name"'],
    ToolFormat.PYTHONIC: ["<|tool_call_end|>"],
}
WRAP_UP = (
    "You have used all your steps. Answer the question now from the tool results above, "
    "in a few sentences, without calling any tool."
)
LOOP_NUDGE = "Your reply kept repeating itself. Say it once, briefly, or call a tool."
FOCUSED_SYSTEM = (
    "Answer the question from the text. Reply with the answer only, copied exactly from the text."
)
NOT_FOUND = "NOT FOUND"
READ_SYSTEM = FOCUSED_SYSTEM + f" If the text does not contain the answer, reply {NOT_FOUND}."
READ_AGAIN = (
    "The pages read so far do not answer the question. Search for the fact that is still "
    "missing, using the names the pages gave."
)


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
    mode: Literal["online", "offline", "rlm", "sub"] = "online",
    meta: dict[str, Any] | None = None,
    user_message: str | None = None,
    sub_episodes: list[Trajectory] | None = None,
    answer_with: AnswerWith | None = None,
) -> Iterator[Event]:
    """One episode. `task` is what the log records as the question; `user_message`, when
    given, is what the model reads instead (RLM mode adds evidence around the question).
    Trajectories appended to `sub_episodes` while a tool runs are filed under its step.
    `answer_with`, when given, writes the final answer from the tool output gathered (RLM
    mode's focused sub-query) instead of taking the model's own last turn."""
    lm = generator.lm
    if system is None:
        system = settings.offline_system_prompt if settings.offline else settings.system_prompt
    messages = history[:] if history else [Message(role="system", content=system)]
    messages.append(Message(role="user", content=user_message or task))
    traj = Trajectory(
        task=task,
        mode=mode,
        model=lm.spec,
        adapter=lm.adapter,
        settings=settings.model_dump(mode="json"),
        meta=meta or {},
    )
    if log:
        log.start(traj)
    state = _State(generator, tools, settings, messages, traj, special_markers(lm.tokenizer))
    state.subs = sub_episodes if sub_episodes is not None else []
    state.answer_with = answer_with
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
        traj.total_s = time.perf_counter() - start
        traj.messages = state.messages
        if traj.outcome is None:  # the consumer stopped iterating
            traj.outcome = "cancelled"
        if log:
            log.end(traj)
    yield Event(kind="done", text=traj.final_answer or "", trajectory=traj)


class _State:
    def __init__(
        self,
        generator: Generator,
        tools: dict[str, Tool],
        settings: Settings,
        messages: list[Message],
        traj: Trajectory,
        markers: list[str],
    ) -> None:
        self.generator, self.tools, self.settings = generator, tools, settings
        self.messages, self.traj, self.markers = messages, traj, markers
        self.seen_calls: dict[str, int] = {}
        self.repeats = 0  # calls refused as repeats so far
        self.found: list[str] = []  # URLs the last search with hits found
        self.steered, self.fetched = False, False  # a fetch was started for it; a page was read
        self.read: set[str] = set()  # URLs read in this episode: a second hop reads others
        self.guessed = False  # a guessed URL was just refused: the next turn starts a search
        self.subs: list[Trajectory] = []
        self.answer_with: AnswerWith | None = None

    def loop(
        self, cancel: threading.Event | None, log: LogSink | None, start: float
    ) -> Iterator[Event]:
        limits = self.settings.agent
        temperature = self.settings.sampling.temperature
        resampled = False
        for index in range(limits.max_steps + 1):
            closing = self._closing(index)
            if closing == WRAP_UP and self.answer_with is not None:
                return (yield from self._finish("answer", self._gathered_answer()))
            if self._read_once():
                answer = self._read_answer()
                if NOT_FOUND not in answer.upper() or index >= limits.max_steps - 1:
                    return (yield from self._finish("answer", answer))
                yield Event(kind="notice", step=index, text="the page did not say: searching on")
                self.messages.append(Message(role="user", content=READ_AGAIN))
                self.found, self.steered, self.fetched = [], False, False
            if stop := self._limit(start):
                return (yield from self._finish(stop, self._partial(stop)))
            step = yield from self._generate(index, temperature, cancel, closing, *self._steer())
            self.traj.steps.append(step)
            ending = self._ending(step, closing, resampled)
            if ending is None and step.finish_reason != "doom_loop":
                yield from self._run_calls(step)
                final = next((r.final for r in step.tool_runs if r.final is not None), None)
                if final is not None:
                    ending = ("answer", final)
            if log:  # after the tools ran, so the logged step holds their results
                log.step(self.traj.id, step)
            yield Event(kind="step", step=index, text=step.completion_text)
            if step.note:
                yield Event(kind="notice", step=index, text=step.note)
            if ending is not None:
                return (yield from self._finish(*ending))
            if step.finish_reason == "doom_loop" or self.repeats == 2:
                resampled, temperature = True, limits.resample_temperature
        # Only a doom loop on the wrap-up turn gets here.
        yield from self._finish("doom_loop", self._loop_message())

    def _closing(self, index: int) -> str | None:
        """The instruction for a turn with tools withheld, when this turn is one: at the step
        limit or the third refused repeat."""
        if index == self.settings.agent.max_steps or self.repeats > 2:
            return WRAP_UP
        return None

    def _read_once(self) -> bool:
        """The steered read is done: the answer comes from the page it read."""
        return self.steered and self.fetched

    def _read_answer(self) -> str:
        """The model, recursively, on just the pages it read and the question: left in the
        long tool conversation, a 0.5B model calls the tool again instead of answering. Every
        page read so far goes in, newest first, so a second hop sees the first."""
        fetch = TOOL_NAMES["fetch"]
        runs = [r for s in self.traj.steps for r in s.tool_runs if r.error is None]
        pages = [r.text.removeprefix(UNTRUSTED) for r in runs if r.call.name == fetch]
        text = "\n\n".join(reversed(pages))
        answer, sub = focused(self.generator, self.traj.task, text, self.settings, READ_SYSTEM)
        self.traj.steps[-1].sub_episodes.append(sub)
        self.messages.append(Message(role="assistant", content=answer))
        return answer

    def _ending(
        self, step: Step, closing: str | None, resampled: bool
    ) -> tuple[Outcome, str] | None:
        """How this step ends the episode, if it does."""
        if step.finish_reason == "cancelled":
            return "cancelled", step.completion_text.strip()
        if step.finish_reason == "doom_loop":
            if resampled:
                return "doom_loop", self._loop_message()
            temperature = self.settings.agent.resample_temperature
            step.note = f"doom loop: nudged, resampling at temperature {temperature}"
            self.messages.append(Message(role="user", content=LOOP_NUDGE))
            return None
        if (step.calls or step.parse_errors) and closing is None:
            return None
        answer = parse(step.completion_text, self.generator.lm.tool_format).content
        self.messages.append(Message(role="assistant", content=answer))
        if self.answer_with is not None:
            return "answer", self._gathered_answer()
        if closing != WRAP_UP:
            return "answer", answer
        if self.repeats > 2:
            return "repeated_call", f"{answer}\n\n(Stopped: the same tool call again.)".strip()
        note = f"(Stopped after {self.settings.agent.max_steps} steps.)"
        return "step_limit", f"{answer}\n\n{note}".strip()

    def _steer(self) -> tuple[str, list[str]]:
        """The start of the next turn when the loop writes one, and the choices it allows next:
        once, after a search that found pages and before any page was read, the opening of a
        fetch_page call, then one of the best `read_choices` URLs found and not read yet, the
        one the model itself rates likeliest. (Left free, a 0.5B model invents URLs.) After a
        guessed URL was refused, the opening of a web_search call; the query is the model's."""
        fetch, fmt = TOOL_NAMES["fetch"], self.generator.lm.tool_format
        if self.guessed:  # told to search, a 0.5B model answers from the error instead
            self.guessed = False
            return call_prefix(fmt, TOOL_NAMES["search"], "query"), []
        if not (self.settings.agent.read_after_search and fetch in self.tools):
            return "", []
        unread = [u for u in self.found if u not in self.read][: self.settings.agent.read_choices]
        if not unread or self.steered or self.fetched:
            return "", []
        self.steered = True
        end = '")]' if fmt is ToolFormat.PYTHONIC else '"}}'
        return call_prefix(fmt, fetch, "url"), [url.replace('"', "%22") + end for url in unread]

    def _generate(
        self,
        index: int,
        temperature: float,
        cancel: threading.Event | None,
        closing: str | None,
        prefill: str = "",
        choices: list[str] | None = None,
    ) -> Iterator[Event]:
        lm = self.generator.lm
        if closing:
            self.messages.append(Message(role="user", content=closing))
        schemas = None if closing else [t.schema() for t in self.tools.values()] or None
        prefill, choices = ("", None) if closing else (prefill, choices)
        prompt_ids = self.generator.encode(
            render(lm.tokenizer, self.messages, schemas, lm.tool_format) + prefill
        )
        sampling = self.settings.sampling.model_copy(update={"temperature": temperature})
        if self.settings.agent.one_call_per_turn and schemas:
            sampling.stop = [*sampling.stop, *CALL_ENDS.get(lm.tool_format, [])]
        budget = self.settings.agent.max_tokens - self.traj.sampled_tokens
        sampling.max_new_tokens = max(1, min(sampling.max_new_tokens, budget))
        t0 = time.perf_counter()
        done: Completion | None = None
        if prefill:
            yield Event(kind="token", step=index, text=prefill)
        stream = self.generator.stream(prompt_ids, sampling, self.settings.guard, cancel, choices)
        for event in stream:
            if isinstance(event, Delta):
                yield Event(kind="token", step=index, text=event.text)
            else:
                done = event
        assert done is not None
        parsed = parse(prefill + done.text, lm.tool_format)
        return Step(
            index=index,
            prompt_ids=prompt_ids,
            completion_ids=done.token_ids,
            completion_text=prefill + done.text,
            prefill=prefill,
            finish_reason=done.finish_reason,
            temperature=temperature,
            calls=parsed.calls,
            parse_errors=parsed.errors,
            reused_tokens=done.reused_tokens,
            ttft_s=done.ttft_s,
            decode_s=done.decode_s,
            forward_s=done.forward_s,
            step_s=time.perf_counter() - t0,
        )

    def _run_calls(self, step: Step) -> Iterator[Event]:
        content = parse(step.completion_text, self.generator.lm.tool_format).content
        self.messages.append(Message(role="assistant", content=content, tool_calls=step.calls))
        for error in step.parse_errors:
            text = f"Error: could not read your tool call ({error.message}). Write it again."
            step.tool_runs.append(
                ToolRun(call=ToolCall(name="(unreadable)"), text=text, error=error.message)
            )
            self.messages.append(Message(role="tool", name="error", content=text))
        for call in step.calls:
            yield Event(kind="tool_start", step=step.index, call=call)
            run = self._run_one(call)
            step.tool_runs.append(run)
            step.sub_episodes += self.subs
            self.subs.clear()
            self.messages.append(Message(role="tool", name=call.name, content=run.text))
            yield Event(kind="tool_end", step=step.index, call=call, run=run)
        if self.settings.agent.followup:
            self.messages.append(Message(role="user", content=self.settings.agent.followup))

    def _run_one(self, call: ToolCall) -> ToolRun:
        key = call.name + json.dumps(call.arguments, sort_keys=True, default=str)
        self.seen_calls[key] = self.seen_calls.get(key, 0) + 1
        t0 = time.perf_counter()
        tool = self.tools.get(call.name)
        if self.seen_calls[key] > self.settings.agent.repeat_limit:
            self.repeats += 1
            result = ToolResult(
                error=f"you already called {call.name} with these arguments "
                "and its result is above; use it, try something else, or answer"
            )
        elif call.name == TOOL_NAMES["fetch"] and self._guessed_url(call):
            self.guessed = True
            result = ToolResult(
                error="that URL is not from the question or any search result, so it is a "
                "guess; call web_search first, then read one of the pages it finds"
            )
        elif tool is None:
            names = ", ".join(self.tools) or "none: answer from what you know"
            result = ToolResult(error=f"there is no tool named '{call.name}'; tools: {names}")
        else:
            result = tool.run(call.arguments)
        if result.error is None and result.metadata.get("hits"):
            self.found = [str(hit["url"]) for hit in result.metadata["hits"]]
        if result.error is None and call.name == TOOL_NAMES["fetch"]:
            self.fetched = True
            self.read.add(str(call.arguments.get("url", "")))
        shown = UNTRUSTED + neutralize(result.for_model(), self.markers)
        final = result.metadata.get("final")
        return ToolRun(
            final=str(final) if final is not None else None,
            call=call,
            text=shown,
            error=result.error,
            truncated=result.truncated,
            duration_s=time.perf_counter() - t0,
        )

    def _guessed_url(self, call: ToolCall) -> bool:
        """A small model asked about something it does not know often invents a plausible URL
        and answers from the error. Where it can search instead, say so (a model error)."""
        if not self.settings.agent.fetch_seen_urls_only or TOOL_NAMES["search"] not in self.tools:
            return False
        url = str(call.arguments.get("url", "")).strip()
        shown = (m.content or "" for m in self.messages if m.role in ("user", "tool"))
        return bool(url) and not any(url in text for text in shown)

    def _gathered_answer(self) -> str:
        found = "\n\n".join(
            r.text.removeprefix(UNTRUSTED)
            for s in self.traj.steps
            for r in s.tool_runs
            if r.error is None
        )
        assert self.answer_with is not None
        answer, sub = self.answer_with(found)
        if self.traj.steps:
            self.traj.steps[-1].sub_episodes.append(sub)
        return answer

    def _limit(self, start: float) -> Outcome | None:
        limits = self.settings.agent
        if self.traj.sampled_tokens >= limits.max_tokens:
            return "token_limit"
        if time.perf_counter() - start > limits.max_seconds:
            return "time_limit"
        return None

    def _partial(self, why: Outcome) -> str:
        last = next(
            (
                m.content
                for m in reversed(self.messages)
                if m.role == "assistant" and m.content.strip()
            ),
            "",
        )
        note = {"token_limit": "the token budget", "time_limit": "the time limit"}.get(why, why)
        return f"{last}\n\n(Stopped at {note}.)".strip()

    def _loop_message(self) -> str:
        return (
            "The model kept repeating itself and was stopped. Try rephrasing the question, "
            "or a larger model."
        )

    def _finish(self, outcome: Outcome, answer: str) -> Iterator[Event]:
        self.traj.outcome, self.traj.final_answer = outcome, answer
        yield Event(kind="final", text=answer)


def focused_settings(settings: Settings) -> Settings:
    """One tool-free turn of at most `rlm.sub_tokens` tokens: a focused answer's settings."""
    sub_settings = settings.model_copy(deep=True)
    sub_settings.agent.max_steps = 1
    sub_settings.sampling.max_new_tokens = settings.rlm.sub_tokens
    return sub_settings


def focused_task(question: str, text: str, settings: Settings) -> str:
    return f"Text:\n{text[: settings.rlm.inline_chars]}\n\nQuestion: {question}"


def focused(
    generator: Generator,
    question: str,
    text: str,
    settings: Settings,
    system: str = FOCUSED_SYSTEM,
) -> tuple[str, Trajectory]:
    """The model, recursively, on a short text and the question, with no tools: a sub-episode
    whose answer and trajectory come back. A small model that loses its way in a long tool
    conversation reads a short focused prompt right."""
    task = focused_task(question, text, settings)
    sub_settings = focused_settings(settings)
    events = list(run_episode(generator, task, {}, sub_settings, mode="sub", system=system))
    traj = events[-1].trajectory
    assert traj is not None
    return (traj.final_answer or "").strip(), traj
