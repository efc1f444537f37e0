"""The doom-loop guard: notice, while tokens stream, that a model is repeating itself.

A small model in a doom loop emits the same span again and again and never stops. Every n-gram
of a repeating span recurs once per period, so counting n-grams catches loops of any period
longer than n: a word stuttered, a sentence, a paragraph. n-grams of length n are rare to
repeat `max_repeats` times in ordinary prose, so the guard stays quiet there.

This only detects. Stopping the stream and resampling is the caller's job; the same n-gram
counts also give the trainer its repetition penalty (`repetition_ratio`).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Sequence

from pydantic import BaseModel, Field


class GuardSettings(BaseModel):
    enabled: bool = True
    ngram: int = Field(default=12, ge=2, description="length of the repeating token span")
    max_repeats: int = Field(default=4, ge=2, description="occurrences that count as a loop")
    window: int = Field(default=1024, ge=16, description="only the last `window` tokens count")


class RepetitionGuard:
    """Feed tokens one by one; `push` returns True once some n-gram has recurred too often."""

    def __init__(self, settings: GuardSettings | None = None) -> None:
        self.settings = settings or GuardSettings()
        self._tokens: deque[int] = deque()
        self._counts: Counter[tuple[int, ...]] = Counter()
        self.fired = False

    def push(self, token: int) -> bool:
        s = self.settings
        if not s.enabled:
            return False
        self._tokens.append(token)
        if len(self._tokens) > s.window:
            # Forget the n-gram that starts at the token leaving the window.
            old = tuple(list(self._tokens)[: s.ngram])
            self._tokens.popleft()
            self._counts[old] -= 1
        if len(self._tokens) >= s.ngram:
            gram = tuple(list(self._tokens)[-s.ngram :])
            self._counts[gram] += 1
            if self._counts[gram] >= s.max_repeats:
                self.fired = True
        return self.fired


def is_doom_loop(tokens: Sequence[int], settings: GuardSettings | None = None) -> bool:
    guard = RepetitionGuard(settings)
    return any(guard.push(t) for t in tokens)


def repetition_ratio(tokens: Sequence[int], n: int = 4) -> float:
    """Share of n-grams that repeat an earlier one: 0 for fresh text, near 1 for a loop."""
    if len(tokens) <= n:
        return 0.0
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams)
