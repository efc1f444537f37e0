"""Many prompts completed at once: a few sequences decode together in slots of one KV buffer.

Decoding a small model reads every weight once per step, whether the step serves one sequence
or eight, so an eval that completes many independent prompts runs several at a time. Each
prompt is encoded alone into a free slot (no padding: a prompt's prefill is the same work as
in `model.generate`); then every busy slot takes one token per step, at its own position, with
a mask that hides the rest of the buffer. A slot whose sequence ends takes the next prompt at
once (continuous batching), so a long answer never holds the others up. Ends are decided by
`model.generate.Ending`, the same rules as the streaming loop.

Float sums come out in another order when eight rows share a product, so a greedy token can
differ from one-at-a-time decoding where two logits nearly tie; the prefill and so the first
token are exactly the one-sequence ones. Models the lean forward does not cover (LFM2,
Gemma 3) fall back to one sequence at a time.

Not here: streaming deltas, cancellation, cache reuse between calls, `choices` (the agent loop
needs all of those and runs one sequence through `model.generate`; the server's scheduler,
`model.serving`, streams and cancels on these same `Slots`, and restores kept prompt heads
into them, `model.prefix`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from model import fast
from model.generate import (
    Completion,
    Ending,
    FinishReason,
    Generator,
    SamplingSettings,
    make_rng,
    sample,
)
from model.guard import GuardSettings


class Slots:
    """`size` sequences' keys and values in one buffer per layer, each slot at its own length."""

    def __init__(self, model: object, size: int) -> None:
        self.decoder = fast.Decoder(model)  # its modules, head sizes and device; not its cache
        self.body, self.kv_heads = self.decoder.body, self.decoder.kv_heads
        self.head_dim, self.device = self.decoder.head_dim, self.decoder.device
        self.size = size
        self.lengths = torch.zeros(size, dtype=torch.long)
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []

    @torch.inference_mode()
    def prefill(self, slot: int, ids: list[int], start: int = 0) -> torch.Tensor:
        """Put the prompt `ids` into `slot` (whatever it held past `start` is dropped); the next
        logits. With `start`, the slot's first `start` positions already hold `ids[:start]`'s
        keys and values (`restore`): only the rest runs."""
        d, n = self.decoder, len(ids) - start
        if not 0 <= start < len(ids):
            raise ValueError(f"a prefill from {start} of {len(ids)} tokens runs nothing")
        h = d.body.embed_tokens(torch.tensor([ids[start:]], device=d.device))
        self._reserve(start + n + 1, h.dtype)
        positions = torch.arange(start, start + n, device=d.device).unsqueeze(0)
        cos, sin = d.body.rotary_emb(h, positions)
        mask = None if n == 1 else fast._causal_mask(start, n).to(d.device)
        end = start + n
        for i, layer in enumerate(d.body.layers):
            attn = layer.self_attn
            q, k, v = d._qkv(attn, fast._norm(layer.input_layernorm, h), cos, sin)
            self.keys[i][slot, :, start:end] = k[0]
            self.values[i][slot, :, start:end] = v[0]
            if start:  # the kept head's keys and values are in the buffer, before the new ones
                k = self.keys[i][slot : slot + 1, :, :end]
                v = self.values[i][slot : slot + 1, :, :end]
            out = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, scale=attn.scaling, enable_gqa=True
            )
            h = h + attn.o_proj(out.transpose(1, 2).reshape(1, n, -1))
            h = h + fast._mlp(layer.mlp, fast._norm(layer.post_attention_layernorm, h))
        self.lengths[slot] = end
        return d.head(fast._norm(d.body.norm, h[:, -1:]))[0, -1].float().cpu()

    @torch.inference_mode()
    def restore(self, slot: int, keys: list[torch.Tensor], values: list[torch.Tensor]) -> None:
        """Copy a kept head's keys and values (per layer [kv_heads, n, head_dim], as `held`
        gives them) into the first positions of `slot`."""
        n = keys[0].shape[1]
        self._reserve(n + 1, keys[0].dtype)
        for i in range(len(self.keys)):
            self.keys[i][slot, :, :n] = keys[i]
            self.values[i][slot, :, :n] = values[i]
        self.lengths[slot] = n

    def held(self, slot: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Views of the keys and values `slot` holds (per layer [kv_heads, length, head_dim]);
        the next prefill or step into the slot overwrites them."""
        n = int(self.lengths[slot])
        return [k[slot, :, :n] for k in self.keys], [v[slot, :, :n] for v in self.values]

    @torch.inference_mode()
    def step(self, tokens: Sequence[int], busy: Sequence[bool]) -> torch.Tensor:
        """One token for each of the first `len(tokens)` slots (idle ones get any token and
        stay where they are); the next logits, a row per slot stepped. A caller that keeps its
        busy slots at the front steps only those: the later slots' buffers are not read."""
        d, n = self.decoder, len(tokens)
        span = int(self.lengths[:n].max()) + 1
        self._reserve(span, self.keys[0].dtype)
        rows, at = torch.arange(n, device=d.device), self.lengths[:n].to(d.device)
        h = d.body.embed_tokens(torch.tensor(tokens, device=d.device).unsqueeze(1))
        cos, sin = d.body.rotary_emb(h, at.unsqueeze(1))
        # Row r sees its own positions up to the new token's, none of its neighbours' longer tail.
        mask = (torch.arange(span, device=d.device)[None, :] <= at[:, None]).view(-1, 1, 1, span)
        for i, layer in enumerate(d.body.layers):
            attn = layer.self_attn
            q, k, v = d._qkv(attn, fast._norm(layer.input_layernorm, h), cos, sin)
            self.keys[i][rows, :, at] = k[:, :, 0]
            self.values[i][rows, :, at] = v[:, :, 0]
            out = F.scaled_dot_product_attention(
                q,
                self.keys[i][:n, :, :span],
                self.values[i][:n, :, :span],
                attn_mask=mask,
                scale=attn.scaling,
                enable_gqa=True,
            )
            h = h + attn.o_proj(out.transpose(1, 2).reshape(n, 1, -1))
            h = h + fast._mlp(layer.mlp, fast._norm(layer.post_attention_layernorm, h))
        self.lengths[:n] += torch.tensor(busy, dtype=torch.long)
        return d.head(fast._norm(d.body.norm, h)).squeeze(1).float().cpu()

    def _reserve(self, needed: int, dtype: torch.dtype) -> None:
        fast.reserve(self, self.size, needed, dtype)


@dataclass
class _Running:
    index: int
    prompt_tokens: int
    ending: Ending
    started: float
    first_token_at: float = 0.0
    reason: FinishReason | None = None
    next_token: int = 0


def complete_many(
    generator: Generator,
    prompts: Sequence[list[int]],
    sampling: SamplingSettings,
    guard: GuardSettings | None = None,
    slots: int = 8,
) -> Iterator[tuple[int, Completion]]:
    """(index into `prompts`, its Completion), in the order they finish. `slots` 1, or a model
    the lean forward does not cover, or a scripted one, completes them one by one through
    `generator`; a server's generator (`concurrent`) sends `slots` requests at a time, which
    the server's own scheduler decodes together."""
    if slots > 1 and getattr(generator, "concurrent", False):  # only RemoteGenerator says so
        yield from _concurrently(generator, prompts, sampling, guard, slots)
        return
    if slots <= 1 or not generator.batchable:
        for i, ids in enumerate(prompts):
            yield i, generator.complete(ids, sampling, guard)
        return
    batch = Slots(generator.lm.model, min(slots, len(prompts)) or 1)
    rng = make_rng(sampling.seed)
    # Shortest first: slots then hold prompts of about one length, so no step attends over
    # a span much longer than its own rows need.
    pending = iter(sorted(enumerate(prompts), key=lambda item: len(item[1])))
    running: list[_Running | None] = [None] * batch.size

    def start(slot: int) -> None:
        index, ids = next(pending, (None, None))
        if index is None or ids is None:
            running[slot] = None
            return
        if not ids:
            raise ValueError(f"prompt {index} is empty")
        run = _Running(index, len(ids), Ending(generator.lm, sampling, guard), time.perf_counter())
        run.next_token = _take(run, sample(batch.prefill(slot, list(ids)), sampling, rng))
        running[slot] = run

    for slot in range(batch.size):
        start(slot)
    while any(running):
        for slot in range(batch.size):
            # A refilled slot can end on its first token (a one-token limit, an end token).
            while (run := running[slot]) is not None and run.reason is not None:
                yield run.index, _completion(run)
                start(slot)
        busy = [run is not None for run in running]
        if not any(busy):
            break
        logits = batch.step([run.next_token if run else 0 for run in running], busy)
        for slot, run in enumerate(running):
            if run is not None:
                run.next_token = _take(run, sample(logits[slot], sampling, rng))


def _concurrently(
    generator: Generator,
    prompts: Sequence[list[int]],
    sampling: SamplingSettings,
    guard: GuardSettings | None,
    slots: int,
) -> Iterator[tuple[int, Completion]]:
    """(index, Completion) as they finish, `slots` requests in flight, each on a fork (one
    connection each). Leaving early cancels the requests not yet sent."""
    pool = ThreadPoolExecutor(slots)
    try:
        jobs = {pool.submit(generator.fork().complete, list(ids), sampling, guard): i
                for i, ids in enumerate(prompts)}  # fmt: skip
        for job in as_completed(jobs):
            yield jobs[job], job.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _take(run: _Running, token: int) -> int:
    run.first_token_at = run.first_token_at or time.perf_counter()
    _, run.reason = run.ending.push(token)
    return token


def _completion(run: _Running) -> Completion:
    run.ending.text.flush()
    end = time.perf_counter()
    return Completion(
        text=run.ending.text.text,
        token_ids=run.ending.tokens,
        finish_reason=run.reason or "length",
        prompt_tokens=run.prompt_tokens,
        reused_tokens=0,
        ttft_s=run.first_token_at - run.started,
        decode_s=end - run.first_token_at,
    )
