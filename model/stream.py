"""The generator interface the agent codes against, without torch: Generator, Delta, Completion.

`Generator.stream(prompt)` yields `Delta`s (new text and the token ids that made it) and ends
with one `Completion`. Two implement it: the in-process decoder over the model's weights
(`model.generate`, torch) and the client of a running server (`model.remote`, no torch). The
agent imports only this module, so a client on a server never loads torch or transformers.

Not here: any decoding (`model.generate`), sampling settings (`model.sampling`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Literal, Protocol

from pydantic import BaseModel

from model.guard import GuardSettings
from model.loaded import LoadedModel
from model.sampling import SamplingSettings

FinishReason = Literal["eos", "stop", "length", "doom_loop", "cancelled"]


class Delta(BaseModel):
    text: str
    token_ids: list[int]


class Completion(BaseModel):
    text: str
    token_ids: list[int]  # every token the model sampled, stop tokens included
    finish_reason: FinishReason
    prompt_tokens: int
    reused_tokens: int  # prompt tokens whose KV came from the previous call
    ttft_s: float
    decode_s: float
    forward_s: float = 0.0  # of ttft_s + decode_s, the time spent inside the model's forward

    @property
    def doom_loop(self) -> bool:
        return self.finish_reason == "doom_loop"

    @property
    def tokens_per_s(self) -> float:
        n = len(self.token_ids) - 1
        return n / self.decode_s if n > 0 and self.decode_s > 0 else 0.0


class Generator(Protocol):
    """One model's generation, used from one thread at a time."""

    lm: LoadedModel

    @property
    def batchable(self) -> bool:
        """Whether `model.batch` may decode several prompts at once on this model's weights."""
        ...

    def fork(self) -> Generator:
        """Another generator on the same model with a cache of its own (for sub-calls)."""
        ...

    def reset(self) -> None:
        """Forget any cached prefix."""
        ...

    def encode(self, prompt: str) -> list[int]:
        """The prompt's token ids, as the model reads them (no special tokens added)."""
        ...

    def stream(
        self,
        prompt: str | list[int],
        sampling: SamplingSettings | None = None,
        guard: GuardSettings | None = None,
        cancel: threading.Event | None = None,
        choices: list[str] | None = None,
    ) -> Iterator[Delta | Completion]:
        """Deltas as the text grows, then the Completion. With `choices`, the completion starts
        with one of those texts, the one the model prefers; then it goes on freely."""
        ...

    def complete(
        self,
        prompt: str | list[int],
        sampling: SamplingSettings | None = None,
        guard: GuardSettings | None = None,
    ) -> Completion:
        """The whole completion at once, for callers that do not stream."""
        ...


def complete(
    generator: Generator,
    prompt: str | list[int],
    sampling: SamplingSettings | None = None,
    guard: GuardSettings | None = None,
) -> Completion:
    """Drain `generator.stream` to its Completion: `complete` for any Generator."""
    for event in generator.stream(prompt, sampling, guard):
        if isinstance(event, Completion):
            return event
    raise AssertionError("stream ended without a Completion")  # unreachable
