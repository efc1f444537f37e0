"""A plain conversation with the model and no tools: the offline (in-car) mode's whole loop.

It keeps the messages and one Generator, so each turn reuses the KV cache of the last one and
encodes only the new user message. It yields the generator's events and prints nothing. The
ReAct loop with tools is a separate module; this is what runs when tools are off. Offline, a
conversion or trip sum that the in-car pre-processor (`agent.incar`) understands is answered
by it, with no model call, as in offline episodes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from agent.incar import offline_answer
from agent.settings import Settings
from model.chat import render
from model.messages import Message
from model.stream import Completion, Delta, Generator


class Conversation:
    def __init__(
        self, generator: Generator, settings: Settings, earlier: Sequence[Message] = ()
    ) -> None:
        """`earlier`: the user and assistant messages of a conversation being resumed."""
        self.generator = generator
        self.settings = settings
        system = settings.offline_system_prompt if settings.offline else settings.system_prompt
        self.messages: list[Message] = [Message(role="system", content=system), *earlier]

    def turn(self, user_text: str) -> Iterator[Delta | Completion]:
        self.messages.append(Message(role="user", content=user_text))
        if self.settings.offline and (direct := offline_answer(user_text, self.settings)):
            self.messages.append(Message(role="assistant", content=direct))
            yield Delta(text=direct, token_ids=[])
            yield Completion(text=direct, token_ids=[], finish_reason="stop", prompt_tokens=0,
                             reused_tokens=0, ttft_s=0.0, decode_s=0.0)  # fmt: skip
            return
        lm = self.generator.lm
        prompt = render(lm.tokenizer, self.messages, None, lm.tool_format)
        for event in self.generator.stream(prompt, self.settings.sampling, self.settings.guard):
            if isinstance(event, Completion):
                self.messages.append(Message(role="assistant", content=event.text.strip()))
            yield event
