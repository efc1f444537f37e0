"""Streaming generation: one decode loop with prefix reuse, stop strings, sampling and the guard.

`Generator.stream(prompt)` yields `Delta`s (new text and the token ids that made it) and ends
with one `Completion`. It keeps the KV cache of the last call: the ReAct loop only ever appends
to its conversation, so the next prompt shares a prefix with what the cache holds, and only
the new tokens are encoded. A cache that cannot be cut back (recurrent or sliding-window
layers) is reused only when the new prompt extends it exactly; otherwise it starts over.
Llama-family models run through the lean forward of `model.fast` (its own growable KV
buffer); other architectures through transformers' forward with a `DynamicCache`.

Our own loop rather than `model.generate` because we need the cache between calls, per-token
cancellation from another thread, stop strings that never leak into the stream, and the
doom-loop guard, all in one place. One sequence at a time: evals that complete many independent
prompts use `model.batch`. The interface and its stream types are `model.stream`'s (torch-free,
what the agent imports); they are re-exported here for the in-process callers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import torch

from model import fast
from model.guard import GuardSettings, RepetitionGuard
from model.loaded import LoadedModel
from model.sampling import SamplingSettings
from model.stream import Completion, Delta, FinishReason, complete


class Generator:
    """Owns one model's KV cache between calls; use from one thread at a time. The in-process
    implementation of `model.stream.Generator`."""

    def __init__(self, lm: LoadedModel, lean: bool = True) -> None:
        """`lean=False` keeps transformers' forward even where `model.fast` applies (the
        benchmark's baseline, and a way around a suspected bug in the lean path)."""
        self.lm = lm
        self.lean = lean
        self._fast = fast.Decoder(lm.model) if lean and fast.supports(lm.model) else None
        self._cache: Any = None
        self._cached: list[int] = []  # token ids whose KV the cache holds
        self.forward_s = 0.0  # time inside the model's forward, over this generator's life

    @property
    def batchable(self) -> bool:
        """Whether `model.batch` may decode several prompts at once on this model's weights."""
        return self._fast is not None

    def fork(self) -> Generator:
        """Another generator on the same weights with a cache of its own (for sub-calls)."""
        return Generator(self.lm, self.lean)

    def reset(self) -> None:
        self._cache, self._cached = None, []
        if self._fast is not None:
            self._fast.crop(0)

    def encode(self, prompt: str) -> list[int]:
        # Chat templates already write their own BOS and markers.
        return self.lm.tokenizer(prompt, add_special_tokens=False)["input_ids"]

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
        sampling = sampling or SamplingSettings()
        ids = self.encode(prompt) if isinstance(prompt, str) else list(prompt)
        if not ids:
            raise ValueError("empty prompt")
        start, forward_before = time.perf_counter(), self.forward_s
        options = [self.encode(c) for c in choices or []]
        reused, tokens = self._token_source(ids, sampling, options)
        first_token_at = 0.0
        ending = Ending(self.lm, sampling, guard)
        reason: FinishReason | None = None
        while reason is None:
            if cancel is not None and cancel.is_set():
                reason = "cancelled"
                break
            token = next(tokens, None)
            if token is None:
                reason = "length"
                break
            first_token_at = first_token_at or time.perf_counter()
            delta, reason = ending.push(token)
            if delta:
                yield Delta(text=delta, token_ids=[token])
        if tail := ending.text.flush():
            yield Delta(text=tail, token_ids=[])
        end = time.perf_counter()
        first_token_at = first_token_at or end
        yield Completion(
            text=ending.text.text,
            token_ids=ending.tokens,
            finish_reason=reason,
            prompt_tokens=len(ids),
            reused_tokens=reused,
            ttft_s=first_token_at - start,
            decode_s=end - first_token_at,
            forward_s=self.forward_s - forward_before,
        )

    def complete(
        self,
        prompt: str | list[int],
        sampling: SamplingSettings | None = None,
        guard: GuardSettings | None = None,
    ) -> Completion:
        """The whole completion at once, for callers that do not stream."""
        return complete(self, prompt, sampling, guard)

    def _token_source(
        self, ids: list[int], sampling: SamplingSettings, options: list[list[int]]
    ) -> tuple[int, Iterator[int]]:
        """(prompt tokens reused from the cache, the sampled tokens one by one). The model runs
        only when the next token is asked for, so a caller that stops pulling costs nothing.
        While `options` (token sequences) remain, only their next tokens may be sampled."""
        reused = self._reuse(ids)

        def tokens() -> Iterator[int]:
            rng = make_rng(sampling.seed)
            logits = self._forward(ids[reused:])
            live, at = [o for o in options if o], 0
            while True:
                if live:
                    allowed = torch.tensor(sorted({o[at] for o in live}))
                    masked = torch.full_like(logits, float("-inf"))
                    masked[allowed] = logits[allowed]
                    logits = masked
                token = sample(logits, sampling, rng)
                live = [o for o in live if o[at] == token and len(o) > at + 1]
                at += 1
                yield token
                logits = self._forward([token])

        return reused, tokens()

    def _reuse(self, ids: list[int]) -> int:
        """How many leading prompt tokens keep their cached KV; cuts the cache to that."""
        common = 0
        for a, b in zip(self._cached, ids, strict=False):
            if a != b:
                break
            common += 1
        common = min(common, len(ids) - 1)  # the last prompt token must run to give logits
        fresh = self._fast is not None and self._fast.fresh_pays(common, len(ids) - common)
        if not self._cached or common == 0 or fresh:
            self.reset()
            return 0
        drop = len(self._cached) - common
        if self._fast is not None:
            self._fast.crop(common)
        elif drop and not _can_roll_back(self._cache):
            self.reset()
            return 0
        elif drop:
            self._cache.crop(-drop)  # transformers 5: a negative count removes tokens
        del self._cached[common:]
        return common

    def _forward(self, new_ids: list[int]) -> torch.Tensor:
        start = time.perf_counter()
        if self._fast is not None:
            logits = self._fast.forward(new_ids)
        else:
            logits = self._transformers_forward(new_ids)
        self._cached.extend(new_ids)
        self.forward_s += time.perf_counter() - start
        return logits

    @torch.inference_mode()
    def _transformers_forward(self, new_ids: list[int]) -> torch.Tensor:
        from transformers import DynamicCache

        if self._cache is None:
            self._cache = DynamicCache(config=self.lm.model.config)
        out = self.lm.model(
            input_ids=torch.tensor([new_ids], device=_device_of(self.lm.model)),
            past_key_values=self._cache,
            use_cache=True,
            logits_to_keep=1,  # skip the vocabulary projection for every prompt token but one
        )
        return out.logits[0, -1].float().cpu()  # sampling runs on the CPU, a GPU model or not


def _device_of(model: Any) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def _can_roll_back(cache: Any) -> bool:
    """Only plain attention layers keep every past state; recurrent (LFM2's convolutions) and
    sliding-window layers hold a summary that cannot be cut back to an earlier token."""
    return not any(getattr(cache, "is_linear", [])) and not any(getattr(cache, "is_sliding", []))


def make_rng(seed: int | None) -> torch.Generator:
    rng = torch.Generator()
    if seed is not None:
        rng.manual_seed(seed)
    else:
        rng.seed()
    return rng


def sample(logits: torch.Tensor, s: SamplingSettings, rng: torch.Generator) -> int:
    if s.temperature <= 0:
        return int(torch.argmax(logits))
    logits = logits / s.temperature
    if s.top_k > 0:
        kth = torch.topk(logits, min(s.top_k, logits.numel())).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if s.top_p < 1.0:
        sorted_p, order = torch.sort(probs, descending=True)
        # Keep the smallest set whose mass reaches top_p (always at least the top token).
        drop = torch.cumsum(sorted_p, dim=-1) - sorted_p >= s.top_p
        sorted_p[drop] = 0.0
        probs = torch.zeros_like(probs).scatter_(0, order, sorted_p)
    return int(torch.multinomial(probs, 1, generator=rng))


class Ending:
    """When one sequence is done, token by token: an end token, a stop string, a doom loop or
    the token limit. Shared by the streaming loop and the batched one (`model.batch`)."""

    def __init__(self, lm: LoadedModel, sampling: SamplingSettings, guard: GuardSettings | None):
        self.stop_ids = lm.stop_token_ids
        self.limit = sampling.max_new_tokens
        self.text = Detokenizer(lm.tokenizer, sampling.stop)
        self.guard = RepetitionGuard(guard)
        self.tokens: list[int] = []

    def push(self, token: int) -> tuple[str, FinishReason | None]:
        """The text this token adds to the stream, and why the sequence ends here, if it does."""
        self.tokens.append(token)
        if token in self.stop_ids:
            return "", "eos"
        delta = self.text.push(token)
        if self.text.stopped:
            return delta, "stop"
        if self.guard.push(token):
            return delta, "doom_loop"
        return delta, "length" if len(self.tokens) >= self.limit else None


class Detokenizer:
    """Turns tokens into text deltas: waits out half a UTF-8 character, and holds back any tail
    that could be the start of a stop string, so a stop string never reaches the stream."""

    def __init__(self, tokenizer: Any, stop: list[str]) -> None:
        self.tokenizer = tokenizer
        self.stop = [s for s in stop if s]
        self.ids: list[int] = []
        self.text = ""  # the final text, cut at a stop string
        self.emitted = 0
        self.stopped = False

    def push(self, token: int) -> str:
        self.ids.append(token)
        full = self.tokenizer.decode(self.ids, skip_special_tokens=False)
        if full.endswith("\ufffd"):
            return ""  # a multi-byte character is not complete yet
        self.text = full
        hit = min(
            (i for s in self.stop if (i := full.find(s, max(0, self.emitted - len(s)))) >= 0),
            default=-1,
        )
        if hit >= 0:
            self.text, self.stopped = full[:hit], True
            return self._emit(hit)
        return self._emit(len(full) - self._held(full))

    def flush(self) -> str:
        return "" if self.stopped else self._emit(len(self.text))

    def _held(self, full: str) -> int:
        """Length of the longest tail of `full` that begins some stop string."""
        for n in range(min(len(full), max((len(s) for s in self.stop), default=0)), 0, -1):
            if any(s.startswith(full[-n:]) for s in self.stop):
                return n
        return 0

    def _emit(self, upto: int) -> str:
        if upto <= self.emitted:
            return ""
        delta = self.text[self.emitted : upto]
        self.emitted = upto
        return delta
