"""`edgeagent bench`: load time, time to first token and decode speed for one model.

For each dtype: the cold load is a fresh Python process loading the model from the cache (what
a user waits for when starting edgeagent, imports included); the warm load is a second load in
this process, files already in the page cache. TTFT is measured on a fixed ~250-token prompt
with an empty KV cache, after one short warm-up generation (the first forward in a process
also builds the CPU kernels' plans); decode speed on greedy tokens with end-of-turn ignored, so
decodes the same count. A benchmark prints figures; it asserts nothing and is not a test.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from collections.abc import Iterator

from pydantic import BaseModel

from model.generate import Completion, Generator, SamplingSettings
from model.loader import Dtype, load

PROMPT = (
    "Here are notes from a road trip. Day one: we left Lyon at dawn, drove through the Beaujolais "
    "hills, stopped for coffee in Mâcon and reached Dijon by noon, where the mustard shop was "
    "closed for a holiday. Day two: Dijon to Besançon, a detour to a salt works at Arc-et-Senans "
    "that took three hours longer than planned because of a flat tyre near Dole. Day three: "
    "rain the whole way to Strasbourg; the car's wipers started squeaking and the navigation "
    "app sent us down a farm track. Day four: a rest day with the cathedral, a boat tour and "
    "far too much tarte flambée. Day five: the long drive home through the Vosges, where the "
    "engine warning light came on twice and went off again after a stop at a garage in Épinal. "
    "Write a detailed summary of this trip, day by day, then a list of the car problems met, "
    "then advice for the next trip, in plain sentences."
)


class BenchRow(BaseModel):
    model: str
    dtype: str
    cold_load_s: float
    warm_load_s: float
    prompt_tokens: int
    ttft_s: float
    decode_tokens: int
    decode_tok_s: float


def cold_load_seconds(spec: str, dtype: Dtype) -> float:
    """Start-to-loaded time of a fresh interpreter, imports included."""
    code = (
        "import time; t = time.perf_counter(); from model.loader import load; "
        f"load({spec!r}, dtype={dtype!r}); print(time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def run(spec: str, dtypes: list[Dtype], new_tokens: int = 64) -> Iterator[BenchRow]:
    load(spec)  # converts on first use, so the cold figure below is a start, not a conversion
    for dtype in dtypes:
        cold = cold_load_seconds(spec, dtype)
        t = time.perf_counter()
        lm = load(spec, dtype=dtype)
        warm = time.perf_counter() - t
        lm = dataclasses.replace(lm, stop_token_ids=set())  # decode a fixed number of tokens
        gen = Generator(lm)
        prompt = lm.tokenizer.apply_chat_template(
            [{"role": "user", "content": PROMPT}], add_generation_prompt=True, tokenize=False
        )
        sampling = SamplingSettings(max_new_tokens=new_tokens, temperature=0.0)
        # The first forward in a process builds the CPU kernels' plans; time the steady state.
        _last(gen.stream("Hello", SamplingSettings(max_new_tokens=4)))
        gen.reset()
        done = _last(gen.stream(prompt, sampling))
        yield BenchRow(
            model=spec,
            dtype=dtype,
            cold_load_s=cold,
            warm_load_s=warm,
            prompt_tokens=done.prompt_tokens,
            ttft_s=done.ttft_s,
            decode_tokens=len(done.token_ids),
            decode_tok_s=done.tokens_per_s,
        )


def _last(events: Iterator[object]) -> Completion:
    *_, last = events
    assert isinstance(last, Completion)
    return last


def table(rows: list[BenchRow]) -> str:
    head = "| model | dtype | cold load | warm load | prompt | TTFT | decode |\n" + "|---" * 7 + "|"
    lines = [
        f"| {r.model} | {r.dtype} | {r.cold_load_s:.1f} s | {r.warm_load_s:.1f} s | "
        f"{r.prompt_tokens} tok | {r.ttft_s:.2f} s | {r.decode_tok_s:.1f} tok/s |"
        for r in rows
    ]
    return "\n".join([head, *lines])


def as_json(rows: list[BenchRow]) -> str:
    return json.dumps([r.model_dump() for r in rows], indent=2)
