"""`edgeagent bench`: our generation path against a reference engine, on the same prompt.

Each engine runs in a worker process of its own (`model.bench_worker`): our path in each asked
variant (dtype, optional weight-only quantization), llama.cpp on the same GGUF when
`llama-cpp-python` is installed, and plain `transformers.generate` on the same weights. The
rounds alternate between engines, so a busy neighbour slows all of them alike, and each figure
is the median over rounds. Per engine:
- warm start: a fresh process, imports included, until the model is ready; the second of two
  starts, so the files are in the page cache (what a user waits for at every start);
- TTFT on a fixed ~250-token prompt with an empty cache, after one warm-up request;
- decode tokens/s over a fixed count of greedy tokens (end of turn ignored);
- peak RSS of the process;
- for our path, the share of a generation spent outside the model's forward (sampling,
  detokenizing, stop strings, the guard);
- the memory-bandwidth floor: bytes of weights a decode step reads, divided by the bandwidth
  this process measures reading a 1 GiB buffer on the same threads; `% floor` is how close
  decoding comes to it.
A benchmark prints figures; it asserts nothing and is not a test.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from model.loaded import DTYPES, QUANTS

KINDS = [q for q in QUANTS if q not in ("auto", "none")]  # a variant names its quantization

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


class Variant(BaseModel):
    engine: str  # ours | transformers | llama.cpp
    dtype: str = "float32"
    quant: str = "none"

    @property
    def label(self) -> str:
        if self.engine != "ours":
            return self.engine
        return "ours " + self.dtype + ("" if self.quant == "none" else f"+{self.quant}")


class BenchRow(BaseModel):
    model: str
    engine: str
    warm_start_s: float
    peak_rss_mb: float
    prompt_tokens: int
    ttft_s: float
    decode_tokens: int
    decode_tok_s: float
    floor_tok_s: float  # bandwidth / weight bytes per token
    weight_mb_per_token: float
    outside_forward: float | None = None  # our path: share of a generation outside forward


def parse_variants(text: str) -> list[Variant]:
    """`float32,bfloat16,int8,bfloat16+int4`: our path's variants (quant alone = float32+);
    `none` for none."""
    if text.strip() == "none":
        return []
    out = []
    for item in filter(None, (x.strip() for x in text.split(","))):
        dtype, _, quant = item.partition("+")
        if dtype in ("int8", "int4"):
            dtype, quant = "float32", dtype
        if dtype not in DTYPES or dtype == "auto" or quant not in ("", *KINDS):
            raise ValueError(f"unknown variant '{item}': use DTYPE[+int8|+int4], e.g. float32+int8")
        out.append(Variant(engine="ours", dtype=dtype, quant=quant or "none"))
    return out


def references(which: str, gguf: Path | None) -> tuple[list[Variant], list[str]]:
    """The reference engines to run, and a note for each one that cannot run here."""
    notes, out = [], []
    if which == "none":
        return out, notes
    names = ["llama.cpp", "transformers"] if which == "auto" else which.split(",")
    for name in names:
        if name == "llama.cpp":
            if gguf is None:
                notes.append("llama.cpp: this model has no GGUF file; give --model a .gguf")
                continue
            try:
                import llama_cpp  # noqa: F401
            except ImportError:
                notes.append("llama.cpp: not installed (pip install 'edgeagent[bench]')")
                continue
        elif name != "transformers":
            raise ValueError(
                f"unknown reference '{name}': use llama.cpp, transformers, auto or none"
            )
        out.append(Variant(engine=name))
    return out, notes


class Worker:
    """A bench_worker process: started, timed to ready, then asked for timings."""

    def __init__(self, variant: Variant, config: dict[str, Any]) -> None:
        self.variant = variant
        self.config = {**config, "engine": variant.engine, "dtype": variant.dtype,
                       "quant": variant.quant}  # fmt: skip
        self.start_s, self.ready = self._start()

    def _start(self) -> tuple[float, dict[str, Any]]:
        t = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "model.bench_worker", json.dumps(self.config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": str(self.config["threads"])},
        )
        ready = self._read()
        return time.perf_counter() - t, ready

    def restart(self) -> float:
        """Seconds from a fresh start to ready (the page cache now warm)."""
        self.close()
        self.start_s, self.ready = self._start()
        return self.start_s

    def ask(self, ids: list[int], tokens: int) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"prompt_ids": ids, "tokens": tokens}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("BENCH "):
                return json.loads(line[6:])
        raise RuntimeError(f"the {self.variant.label} worker exited (code {self.proc.wait()})")

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait()


def bandwidth_gbs(threads: int) -> float:
    """Read bandwidth on `threads` threads: the best of five passes over a 1 GiB buffer, read
    as a sum and as a matrix-vector product (a decode step's own access pattern); the faster
    one counts, since each can fall short of what the memory gives."""
    import torch

    torch.set_num_threads(threads)
    buf = torch.ones(2**14, 2**14)
    vec = torch.ones(2**14)
    best = float("inf")
    for _ in range(5):
        for read in (buf.sum, lambda: torch.mv(buf, vec)):
            t = time.perf_counter()
            read()
            best = min(best, time.perf_counter() - t)
    return 2**30 / best / 1e9


def gguf_bytes(path: Path) -> int:
    """Bytes a llama.cpp decode step reads: the token table in full only when it is the output."""
    from gguf import GGUFReader

    sizes = {t.name: int(t.n_bytes) for t in GGUFReader(str(path)).tensors}
    total = sum(sizes.values())
    if "output.weight" in sizes:
        total -= sizes.get("token_embd.weight", 0)
    return total


def run(
    spec: str,
    variants: list[Variant],
    gguf: Path | None,
    prompt_ids: list[int],
    rounds: int = 3,
    tokens: int = 64,
    threads: int = 2,
    progress: Callable[[str], None] = lambda _: None,
    relayout: bool = True,
    lean: bool = True,
) -> Iterator[BenchRow]:
    """`relayout` and `lean` are our path's (the transformers reference keeps torch's weight
    order and transformers' model classes)."""
    config = {"spec": spec, "gguf": str(gguf) if gguf else None, "threads": threads,
              "relayout": relayout, "lean": lean}  # fmt: skip
    bandwidth = bandwidth_gbs(threads)
    file_bytes = gguf_bytes(gguf) if gguf else 0
    progress(f"memory bandwidth on {threads} threads: {bandwidth:.1f} GB/s")
    workers = []
    for v in variants:
        progress(f"starting {v.label}")
        w = Worker(v, config)
        w.restart()  # the first start warmed the page cache; time the second
        w.ask(prompt_ids[:16], 4)  # the first forward builds kernel plans: not timed
        workers.append(w)
    runs: dict[str, list[dict[str, Any]]] = {w.variant.label: [] for w in workers}
    for r in range(rounds):
        for w in workers:
            progress(f"round {r + 1}/{rounds}: {w.variant.label}")
            runs[w.variant.label].append(w.ask(prompt_ids, tokens))
    for w in workers:
        w.close()
        got = runs[w.variant.label]
        weight = w.ready["bytes_per_token"] or file_bytes
        yield BenchRow(
            model=spec,
            engine=w.variant.label,
            warm_start_s=w.start_s,
            peak_rss_mb=max(g["rss_mb"] for g in got),
            prompt_tokens=len(prompt_ids),
            ttft_s=statistics.median(g["ttft_s"] for g in got),
            decode_tokens=got[0]["decode_tokens"],
            decode_tok_s=statistics.median(g["decode_tok_s"] for g in got),
            floor_tok_s=bandwidth * 1e9 / weight,
            weight_mb_per_token=weight / 1e6,
            outside_forward=_median_or_none([g.get("outside_forward") for g in got]),
        )


def _median_or_none(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def table(rows: list[BenchRow], reference: str | None) -> str:
    """Markdown; the ratio columns are ours / reference (decode: higher is better)."""
    ref = next((r for r in rows if r.engine == reference), None)
    head = (
        "| engine | warm start | peak RSS | TTFT | decode | floor | % floor | weights/token "
        "| outside forward "
        f"| decode / {reference or 'ref'} (up) | TTFT / {reference or 'ref'} (down) |\n"
        + "|---" * 11
        + "|"
    )
    lines = []
    for r in rows:
        ratio = f"{r.decode_tok_s / ref.decode_tok_s:.2f}x" if ref else "-"
        ttft = f"{r.ttft_s / ref.ttft_s:.2f}x" if ref else "-"
        outside = "-" if r.outside_forward is None else f"{100 * r.outside_forward:.1f}%"
        lines.append(
            f"| {r.engine} | {r.warm_start_s:.1f} s | {r.peak_rss_mb / 1024:.2f} GB | "
            f"{r.ttft_s:.2f} s | {r.decode_tok_s:.1f} tok/s | {r.floor_tok_s:.0f} tok/s | "
            f"{100 * r.decode_tok_s / r.floor_tok_s:.0f}% | {r.weight_mb_per_token:.0f} MB | "
            f"{outside} | {ratio} | {ttft} |"
        )
    return "\n".join([head, *lines])


def as_json(rows: list[BenchRow]) -> str:
    return json.dumps([r.model_dump() for r in rows], indent=2)
