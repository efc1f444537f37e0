"""The doom-loop guard: notice, while tokens stream, that a model is repeating itself.

A small model in a doom loop emits the same span again and again and never stops. Every n-gram
of a repeating span recurs once per period, so counting n-grams catches loops of any period
longer than n: a word stuttered, a sentence, a paragraph. n-grams of length n are rare to
repeat `max_repeats` times in ordinary prose, so the guard stays quiet there.

A long n-gram also recurs in text that only looks alike: a list of tool calls to one function
with other arguments shares `"}}\n{"name": "f", "arguments": {"x": ` between every two calls.
Counting alone cut such lists at their fourth call (16 of the shipped adapter's 84 wrong
answers in BFCL's four parallel categories, 600 cases). So at `max_repeats` occurrences the
guard also asks that the text has become periodic: the last q tokens equal the q before them, q
being the distance back to an earlier occurrence. Text that varies between the occurrences (the
calls' arguments, a counter) fires only at `varied_repeats` occurrences, twice as many by
default. A greedy loop repeats exactly, so it is stopped where counting alone stopped it.

This only detects. Stopping the stream and resampling is the caller's job; the same n-gram
counts also give the trainer its repetition penalty (`repetition_ratio`). Not a judge of
content: a list the user asked for, written out with the same words eight times over, is
stopped like a loop.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from itertools import islice

from pydantic import BaseModel, Field


class GuardSettings(BaseModel):
    enabled: bool = True
    ngram: int = Field(default=12, ge=2, description="length of the repeating token span")
    max_repeats: int = Field(
        default=4,
        ge=2,
        description="occurrences that count as a loop where the text repeats exactly",
    )
    varied_repeats: int | None = Field(
        default=None,
        ge=2,
        description="occurrences that count as a loop where the text between them varies "
        "(calls with other arguments); none: twice max_repeats",
    )
    window: int = Field(default=1024, ge=16, description="only the last `window` tokens count")


class RepetitionGuard:
    """Feed tokens one by one; `push` returns True once the text has looped."""

    def __init__(self, settings: GuardSettings | None = None) -> None:
        self.settings = settings or GuardSettings()
        s = self.settings
        self._varied = s.varied_repeats or 2 * s.max_repeats
        self._tokens: deque[int] = deque()
        self._last: deque[int] = deque(maxlen=s.ngram)
        self._starts: dict[tuple[int, ...], deque[int]] = {}  # n-gram -> where it starts
        self._pushed = 0  # tokens pushed so far: positions are counted from the first
        self.fired = False

    def push(self, token: int) -> bool:
        s = self.settings
        if not s.enabled:
            return False
        self._tokens.append(token)
        self._last.append(token)
        self._pushed += 1
        if len(self._tokens) > s.window:
            # Forget the n-gram that starts at the token leaving the window: its oldest start.
            old = tuple(islice(self._tokens, s.ngram))
            self._tokens.popleft()
            if old in self._starts:  # not where the window is shorter than an n-gram
                self._starts[old].popleft()
                if not self._starts[old]:
                    del self._starts[old]
        if len(self._tokens) >= s.ngram:
            gram = tuple(self._last)
            starts = self._starts.setdefault(gram, deque())
            starts.append(self._pushed - s.ngram)
            n = len(starts)
            if n >= self._varied or (n >= s.max_repeats and self._periodic(starts)):
                self.fired = True
        return self.fired

    def _periodic(self, starts: deque[int]) -> bool:
        """Whether the last q tokens repeat the q before them, for q the distance from the
        newest occurrence back to one of the `max_repeats - 1` before it."""
        tail = list(self._tokens)
        end = len(tail)
        for earlier in list(starts)[-self.settings.max_repeats : -1]:
            q = starts[-1] - earlier
            if 2 * q <= end and tail[end - q :] == tail[end - 2 * q : end - q]:
                return True
        return False


def is_doom_loop(tokens: Sequence[int], settings: GuardSettings | None = None) -> bool:
    guard = RepetitionGuard(settings)
    return any(guard.push(t) for t in tokens)


def repetition_ratio(tokens: Sequence[int], n: int = 4) -> float:
    """Share of n-grams that repeat an earlier one: 0 for fresh text, near 1 for a loop."""
    if len(tokens) <= n:
        return 0.0
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams)
