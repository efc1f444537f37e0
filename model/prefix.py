"""Prompts' keys and values kept between requests, so a prompt that begins as an earlier one did
is prefilled only from where the two part.

Every `ask` through a server starts with the same system prompt (and tool list), and each turn
of a conversation or an agent episode repeats everything before it; on a CPU, prefilling those
tokens again is most of the wait for a first token. The server's scheduler (`model.serving`)
keeps here what a slot holds after a prefill and when a request ends, with the token ids it
belongs to; a new request copies the longest matching head into its slot and prefills only
the rest. Keys and values at position p depend on tokens 0..p only (causal attention), so any
common head of two sequences has the same keys and values: reused, they equal a fresh
prefill's up to float summation order (a prefill of another length blocks its products
differently), the caveat `Generator`'s own reuse of its last call has too.

Kept as whole sequences, least recently used first out, under a budget in tokens: a sequence
that extends a kept one replaces it, one that a kept one already covers is not kept twice.
Two prompts that share only their system prompt are kept whole, each, so that head is held
twice: a radix tree (SGLang) or hashed blocks (vLLM) would share it, which pays with many
clients and long common heads, not with a handful on one machine.

Not here: the slots and their buffers (`model.batch`), when to look up and keep
(`model.serving`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from pydantic import BaseModel


@dataclass(eq=False)
class Kept:
    """One sequence's token ids and, per layer, its keys and values ([kv_heads, n, head_dim])."""

    ids: torch.Tensor  # int64, on the CPU
    keys: list[torch.Tensor]
    values: list[torch.Tensor]

    def __len__(self) -> int:
        return int(self.ids.numel())


class PrefixStats(BaseModel):
    """What the health endpoint shows of the cache."""

    budget_tokens: int
    kept: int  # sequences
    kept_tokens: int
    lookups: int  # prompts looked up
    hits: int  # prompts that reused at least one token
    reused_tokens: int  # prompt tokens not prefilled, over the cache's life
    looked_up_tokens: int  # prompt tokens looked up, over the cache's life


class PrefixCache:
    """Kept sequences under `budget` tokens in all. Used from one thread (the decode thread);
    `stats` may be read from another."""

    def __init__(self, budget: int) -> None:
        if budget < 1:
            raise ValueError("a prefix cache needs a budget of at least one token")
        self.budget = budget
        self._kept: list[Kept] = []  # least recently used first
        self.lookups = self.hits = self.reused_tokens = self.looked_up_tokens = 0

    @property
    def tokens(self) -> int:
        return sum(len(k) for k in self._kept)

    def match(self, ids: Sequence[int]) -> tuple[Kept | None, int]:
        """The kept sequence that shares the longest head with `ids`, and that head's length,
        at most `len(ids) - 1`: the last prompt token must run to give the next logits."""
        self.lookups += 1
        self.looked_up_tokens += len(ids)
        want = torch.tensor(list(ids), dtype=torch.long)
        best, common = None, 0
        for kept in self._kept:
            n = _common(kept.ids, want)
            if n > common:
                best, common = kept, n
        common = min(common, len(ids) - 1)
        if best is None or common < 1:
            return None, 0
        self._touch(best)
        self.hits += 1
        self.reused_tokens += common
        return best, common

    def keep(
        self, ids: Sequence[int], keys: Sequence[torch.Tensor], values: Sequence[torch.Tensor]
    ) -> None:
        """Keep `ids` with their keys and values (views are fine: what is kept is copied).
        A sequence longer than the budget is kept up to the budget."""
        n = min(len(ids), self.budget)
        if n < 1:
            return
        want = torch.tensor(list(ids[:n]), dtype=torch.long)
        for kept in self._kept:
            if len(kept) >= n and _common(kept.ids, want) == n:
                self._touch(kept)  # already covered: nothing new to hold
                return
        # A kept sequence that this one extends is now redundant.
        self._kept = [k for k in self._kept if _common(k.ids, want) < len(k)]
        self._kept.append(
            Kept(
                ids=want,
                keys=[k[:, :n].clone() for k in keys],
                values=[v[:, :n].clone() for v in values],
            )
        )
        while self.tokens > self.budget:
            self._kept.pop(0)

    def clear(self) -> None:
        self._kept = []

    def stats(self) -> PrefixStats:
        kept = list(self._kept)  # a snapshot: the decode thread may change the list meanwhile
        return PrefixStats(
            budget_tokens=self.budget,
            kept=len(kept),
            kept_tokens=sum(len(k) for k in kept),
            lookups=self.lookups,
            hits=self.hits,
            reused_tokens=self.reused_tokens,
            looked_up_tokens=self.looked_up_tokens,
        )

    def _touch(self, kept: Kept) -> None:
        self._kept.remove(kept)
        self._kept.append(kept)


def _common(a: torch.Tensor, b: torch.Tensor) -> int:
    """The length of the longest common head of two id vectors."""
    n = min(a.numel(), b.numel())
    differ = (a[:n] != b[:n]).nonzero()
    return int(differ[0, 0]) if differ.numel() else n
