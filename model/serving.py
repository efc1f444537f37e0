"""The server's scheduler: one decode thread owns the model and serves every request from it.

Requests that arrive together decode together in the slots of `model.batch.Slots`: a request
waits in a bounded queue until a slot is free, is prefilled alone into that slot, and from then
on takes one token per step beside every other busy slot (continuous batching). A request that
ends (end token, stop string, guard, limit) or is cancelled (its client went away) leaves its
slot at once, and the next queued request takes it on the next step. Busy slots are kept at the
front of the buffer, so a step computes only as many rows as the highest busy slot needs.

Each request samples with its own settings and its own seeded generator, so a seeded request
repeats whatever else is decoding beside it (greedy ones up to the float-order caveat of
`model.batch`). Events (`Delta`s, then one `Completion`, or the exception that broke decoding)
go to the request's sink, called on the decode thread: the caller hands them to its own event
loop. Models the lean forward does not cover, and scripted generators, are served one request
at a time through `Generator.stream`, which keeps its prefix cache between requests.

A prompt that begins as an earlier request's prompt or reply did (the same system prompt, the
conversation so far) is prefilled only from where they part: the scheduler keeps what a slot
holds after each prefill and when each request ends in a `model.prefix.PrefixCache`, and
copies the longest matching head into a new request's slot (`Completion.reused_tokens`).

Not here: HTTP, prompts and chat formats (`server/`).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from model.batch import Slots
from model.generate import (
    Completion,
    Delta,
    Ending,
    FinishReason,
    Generator,
    make_rng,
    sample,
)
from model.guard import GuardSettings
from model.prefix import PrefixCache
from model.sampling import SamplingSettings

Event = Delta | Completion | Exception
Sink = Callable[[Event], None]
# Tokens of prompts and replies kept for reuse. The default model (Qwen2.5-0.5B: 24 layers,
# 2 key-value heads of 64) holds 24 KiB a token in float32, so 8192 tokens are 192 MiB.
PREFIX_TOKENS = 8192


class QueueFull(Exception):
    """Every slot is busy and the queue holds as many requests as it may."""


class SchedulerClosed(Exception):
    """The scheduler was shut down; it takes no more requests."""


@dataclass(eq=False)
class Ticket:
    """One request: its prompt, how to sample it, where its events go, and its cancel flag."""

    ids: list[int]
    sampling: SamplingSettings
    guard: GuardSettings | None
    sink: Sink
    choices: list[str] = field(default_factory=list)  # the reply starts with one of these
    submitted: float = field(default_factory=time.perf_counter)
    cancelled: threading.Event = field(default_factory=threading.Event)


@dataclass(eq=False)
class _Live:
    """A ticket in a slot: its ending rules, its own random generator, its next token."""

    ticket: Ticket
    ending: Ending
    rng: torch.Generator
    options: list[list[int]] = field(default_factory=list)  # choices still open, as tokens
    at: int = 0  # tokens sampled so far, the position within each option
    first_token_at: float = 0.0
    next_token: int = 0
    reason: FinishReason | None = None
    reused: int = 0  # prompt tokens restored from the prefix cache

    def pick(self, logits: torch.Tensor, greedy: int | None = None) -> int:
        """The next token: held to the open choices' next tokens while any remain (as in
        `Generator.stream`), else sampled; `greedy` is the argmax when it is already known."""
        s = self.ticket.sampling
        if self.options:
            allowed = torch.tensor(sorted({o[self.at] for o in self.options}))
            masked = torch.full_like(logits, float("-inf"))
            masked[allowed] = logits[allowed]
            logits, greedy = masked, None
        token = greedy if greedy is not None and s.temperature <= 0 else sample(logits, s, self.rng)
        self.options = [o for o in self.options if o[self.at] == token and len(o) > self.at + 1]
        self.at += 1
        return token


class Scheduler:
    """Runs requests on one generator's weights, `slots` at a time, at most `max_queue` waiting,
    keeping up to `prefix_tokens` tokens' keys and values for later prompts (0: none).
    Thread-safe: `submit` and `cancel` may be called from any thread."""

    def __init__(
        self,
        generator: Generator,
        slots: int = 8,
        max_queue: int = 16,
        prefix_tokens: int = PREFIX_TOKENS,
    ) -> None:
        self.generator = generator
        batched = slots > 1 and generator.batchable
        self.batch = Slots(generator.lm.model, slots) if batched else None
        self.slots = self.batch.size if self.batch is not None else 1
        # One at a time, `Generator.stream` reuses its own last call instead.
        self.prefixes = PrefixCache(prefix_tokens) if batched and prefix_tokens > 0 else None
        self.max_queue = max_queue
        self.tokens_decoded = 0  # over the scheduler's life, for the health endpoint
        self._pending: deque[Ticket] = deque()
        self._live: list[_Live | None] = [None] * self.slots
        self._serving_one: Ticket | None = None
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="edgeagent-decode", daemon=True)
        self._thread.start()

    @property
    def busy(self) -> int:
        return sum(live is not None for live in self._live) + (self._serving_one is not None)

    @property
    def queued(self) -> int:
        return len(self._pending)

    def submit(
        self,
        ids: list[int],
        sampling: SamplingSettings,
        guard: GuardSettings | None,
        sink: Sink,
        choices: list[str] | None = None,
    ) -> Ticket:
        """Queue a request; its events go to `sink` from the decode thread. Raises QueueFull
        when the queue is at its bound (the caller answers 429), SchedulerClosed after close.
        With `choices`, the reply starts with one of those texts (`Generator.stream`'s rule)."""
        if not ids:
            raise ValueError("empty prompt")
        ticket = Ticket(list(ids), sampling, guard, sink, list(choices or []))
        with self._cond:
            if self._closed:
                raise SchedulerClosed("the server is shutting down")
            # Counted against slots plus queue, not the queue alone: a burst that arrives
            # faster than the decode thread admits it is not refused while slots are free.
            busy, waiting = self.busy, len(self._pending)
            if busy + waiting >= self.slots + self.max_queue:
                raise QueueFull(f"{busy} requests decoding and {waiting} waiting")
            self._pending.append(ticket)
            self._cond.notify()
        return ticket

    def cancel(self, ticket: Ticket) -> None:
        """Stop a request: a queued one leaves the queue now, a decoding one frees its slot
        before the next step. Its sink gets nothing more."""
        ticket.cancelled.set()
        with self._cond:
            if ticket in self._pending:
                self._pending.remove(ticket)
            self._cond.notify()

    def close(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not self._pending and self.busy == 0:
                    self._cond.wait()
                if self._closed:
                    break
            try:
                if self.batch is None:
                    self._serve_one()
                else:
                    self._admit()
                    self._step()
            except Exception as e:  # a broken step must not kill the server: fail its requests
                self._fail_all(e)
        self._fail_all(SchedulerClosed("the server is shutting down"))

    def _next_ticket(self) -> Ticket | None:
        with self._cond:
            while self._pending:
                ticket = self._pending.popleft()
                if not ticket.cancelled.is_set():
                    return ticket
        return None

    def _serve_one(self) -> None:
        """One request through `Generator.stream` (no slots): cancellable between tokens."""
        ticket = self._next_ticket()
        if ticket is None:
            return
        self._serving_one = ticket
        try:
            stream = self.generator.stream(
                ticket.ids, ticket.sampling, ticket.guard, ticket.cancelled, ticket.choices or None
            )
            for event in stream:
                if isinstance(event, Completion):
                    self.tokens_decoded += len(event.token_ids)
                    event.ttft_s += _waited(ticket, event)
                if not ticket.cancelled.is_set():
                    _deliver(ticket, event)
        except Exception as e:  # this request's failure, not the server's
            _deliver(ticket, e)
        finally:
            self._serving_one = None

    def _admit(self) -> None:
        """Fill free slots (lowest first, so busy ones stay at the front) from the queue."""
        assert self.batch is not None
        for slot in range(self.slots):
            if self._live[slot] is not None:
                continue
            ticket = self._next_ticket()
            if ticket is None:
                return
            ending = Ending(self.generator.lm, ticket.sampling, ticket.guard)
            live = _Live(ticket, ending, make_rng(ticket.sampling.seed))
            live.options = [o for c in ticket.choices if (o := self.generator.encode(c))]
            self._live[slot] = live
            live.reused = self._restore(slot, ticket.ids)
            logits = self.batch.prefill(slot, ticket.ids, live.reused)
            self._keep(slot, ticket.ids)  # for requests admitted beside it, before it ends
            self._take(slot, live.pick(logits))

    def _restore(self, slot: int, ids: list[int]) -> int:
        """Copy the longest kept head of `ids` into `slot`; how many tokens it covers."""
        if self.prefixes is None or self.batch is None:
            return 0
        kept, n = self.prefixes.match(ids)
        if kept is None:
            return 0
        self.batch.restore(slot, [k[:, :n] for k in kept.keys], [v[:, :n] for v in kept.values])
        return n

    def _keep(self, slot: int, ids: list[int]) -> None:
        """Keep what `slot` holds, the keys and values of `ids` up to the slot's length."""
        if self.prefixes is None or self.batch is None:
            return
        keys, values = self.batch.held(slot)
        self.prefixes.keep(ids[: keys[0].shape[1]], keys, values)

    def _step(self) -> None:
        assert self.batch is not None
        for slot, live in enumerate(self._live):
            if live is not None and live.ticket.cancelled.is_set():
                self._finish(slot, "cancelled")
        rows = max((i + 1 for i, live in enumerate(self._live) if live is not None), default=0)
        if rows == 0:
            return
        live_rows = self._live[:rows]
        tokens = [live.next_token if live else 0 for live in live_rows]
        logits = self.batch.step(tokens, [live is not None for live in live_rows])
        greedy = logits.argmax(dim=-1).tolist()  # one call for every greedy row
        for slot, live in enumerate(live_rows):
            if live is not None:
                self._take(slot, live.pick(logits[slot], greedy[slot]))

    def _take(self, slot: int, token: int) -> None:
        live = self._live[slot]
        assert live is not None
        live.first_token_at = live.first_token_at or time.perf_counter()
        live.next_token = token
        self.tokens_decoded += 1
        text, live.reason = live.ending.push(token)
        if text:
            _deliver(live.ticket, Delta(text=text, token_ids=[token]))
        if live.reason is not None:
            self._finish(slot, live.reason)

    def _finish(self, slot: int, reason: FinishReason) -> None:
        live = self._live[slot]
        assert live is not None and self.batch is not None
        # The slot holds the prompt and every sampled token but the last (never fed back).
        self._keep(slot, live.ticket.ids + live.ending.tokens)
        self._live[slot] = None
        self.batch.lengths[slot] = 0  # a free slot must not widen the span of later steps
        if reason == "cancelled":
            return
        if tail := live.ending.text.flush():
            _deliver(live.ticket, Delta(text=tail, token_ids=[]))
        end = time.perf_counter()
        _deliver(
            live.ticket,
            Completion(
                text=live.ending.text.text,
                token_ids=live.ending.tokens,
                finish_reason=reason,
                prompt_tokens=len(live.ticket.ids),
                reused_tokens=live.reused,
                ttft_s=live.first_token_at - live.ticket.submitted,
                decode_s=end - live.first_token_at,
            ),
        )

    def _fail_all(self, error: Exception) -> None:
        """Every request in a slot or the queue gets `error`; the slots are emptied."""
        with self._cond:
            waiting = list(self._pending)
            self._pending.clear()
        failed = [live.ticket for live in self._live if live is not None] + waiting
        self._live = [None] * self.slots
        if self.batch is not None:
            self.batch.lengths.zero_()
        for ticket in failed:
            _deliver(ticket, error)


def _waited(ticket: Ticket, completion: Completion) -> float:
    """Seconds the request spent queued before `Generator.stream` started timing it."""
    return max(
        0.0, time.perf_counter() - ticket.submitted - completion.ttft_s - completion.decode_s
    )


def _deliver(ticket: Ticket, event: Event) -> None:
    """Hand an event to the ticket's sink; a sink that fails (its client is gone) cancels it."""
    try:
        ticket.sink(event)
    except Exception:
        ticket.cancelled.set()
