"""One model turn: render the conversation, stream a completion, parse it into a `Step`.

Yields the turn's text as `Token` events and returns the step. The loop decides everything
around it (which messages, whether tools are offered, the inserted opening and the choices).

Not here: running the calls the step makes (`agent.calls`), or ending the episode.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator as Gen
from dataclasses import dataclass

from agent.events import Token
from agent.settings import Settings
from agent.trajectory import Step
from model.chat import ToolFormat, parse, render
from model.messages import Message
from model.stream import Completion, Delta, Generator
from tools.base import Tool

# Where a call ends in each format: stopping there keeps a small model from repeating it.
CALL_ENDS = {
    # Tagged, or bare JSON lines: a second call starts after the first one's closing brace
    # (cut with it; the lenient parser closes it again), never right after "<tool_call>".
    ToolFormat.HERMES: ["</tool_call>", '}\n{"name"'],
    ToolFormat.FALLBACK: ["</tool_call>", '}\n{"name"'],
    ToolFormat.PYTHONIC: ["<|tool_call_end|>"],
}


@dataclass(frozen=True)
class TurnSpec:
    index: int
    temperature: float
    tools: dict[str, Tool] | None  # None: withheld this turn
    prefill: str = ""  # inserted by the loop to start the turn
    choices: list[str] | None = None  # what the decoding is held to next
    sampled_so_far: int = 0  # tokens of the episode: its budget is what is left


def generate(
    generator: Generator,
    messages: list[Message],
    settings: Settings,
    spec: TurnSpec,
    cancel: threading.Event | None = None,
) -> Gen[Token, None, Step]:
    lm = generator.lm
    schemas = [t.schema() for t in spec.tools.values()] if spec.tools else None
    prompt_ids = generator.encode(
        render(lm.tokenizer, messages, schemas, lm.tool_format) + spec.prefill
    )
    sampling = settings.sampling.model_copy(update={"temperature": spec.temperature})
    if settings.agent.one_call_per_turn and schemas:
        sampling.stop = [*sampling.stop, *CALL_ENDS.get(lm.tool_format, [])]
    budget = settings.agent.max_tokens - spec.sampled_so_far
    sampling.max_new_tokens = max(1, min(sampling.max_new_tokens, budget))
    t0, done = time.perf_counter(), None
    if spec.prefill:
        yield Token(spec.index, spec.prefill)
    stream = generator.stream(prompt_ids, sampling, settings.guard, cancel, spec.choices or None)
    for event in stream:
        if isinstance(event, Delta):
            yield Token(spec.index, event.text)
        else:
            done = event
    assert isinstance(done, Completion)
    text = spec.prefill + done.text
    parsed = parse(text, lm.tool_format)
    return Step(
        index=spec.index,
        prompt_ids=prompt_ids,
        completion_ids=done.token_ids,
        completion_text=text,
        prefill=spec.prefill,
        finish_reason=done.finish_reason,
        temperature=spec.temperature,
        calls=parsed.calls,
        parse_errors=parsed.errors,
        reused_tokens=done.reused_tokens,
        ttft_s=done.ttft_s,
        decode_s=done.decode_s,
        forward_s=done.forward_s,
        step_s=time.perf_counter() - t0,
    )
