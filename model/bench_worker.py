"""One engine of `edgeagent bench`, in a process of its own, so that its start time and its peak
memory are its own and two engines never share a thread pool.

`python -m model.bench_worker CONFIG_JSON` loads the engine, writes a `ready` line, then
answers each JSON request on stdin (`{"prompt_ids": [...], "tokens": N}`) with one timing line;
protocol lines start with `BENCH ` so a library's stray output cannot be mistaken for one.
Engines:
- `ours`: `model.loader.load` + `model.generate.Generator`, the path the assistant uses;
- `transformers`: the same weights through plain `model.generate` (the framework baseline);
- `llama.cpp`: the GGUF file through `llama-cpp-python` (optional: `pip install
  'edgeagent[bench]'`), the engine a user would otherwise pick.
Every engine decodes exactly N greedy tokens (end of turn ignored) from the same token ids.
Imports are lazy: the llama.cpp worker never loads torch.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from typing import Any, NamedTuple


class Timing(NamedTuple):
    ttft_s: float
    decode_tok_s: float
    tokens: int
    outside_forward: float | None = None  # only our path knows its forward time


class Ours:
    def __init__(self, c: dict[str, Any]) -> None:
        import dataclasses

        import torch

        from model.generate import Generator
        from model.loader import load

        torch.set_num_threads(c["threads"])
        lm = load(c["spec"], dtype=c["dtype"], quant=c["quant"], relayout=c["relayout"],
                  lean=c["lean"])  # fmt: skip
        lm = dataclasses.replace(lm, stop_token_ids=set())  # decode a fixed number of tokens
        self.generator = Generator(lm)
        self.bytes_per_token = weight_bytes(lm.model)

    def time(self, ids: list[int], n: int) -> Timing:
        from model.generate import SamplingSettings

        self.generator.reset()
        done = self.generator.complete(ids, SamplingSettings(max_new_tokens=n, temperature=0))
        # The share of the whole call spent outside the model's forward: sampling,
        # detokenizing, stop strings, the guard (the per-token Python the forward does not need).
        outside = 1 - done.forward_s / (done.ttft_s + done.decode_s)
        return Timing(done.ttft_s, done.tokens_per_s, len(done.token_ids), outside)


class Transformers:
    def __init__(self, c: dict[str, Any]) -> None:
        import torch

        from model.loader import load

        torch.set_num_threads(c["threads"])
        self.lm = load(c["spec"], dtype=c["dtype"])
        self.bytes_per_token = weight_bytes(self.lm.model)

    def time(self, ids: list[int], n: int) -> Timing:
        import torch

        stamps: list[float] = []

        class Clock:  # transformers' streamer protocol: put(prompt), put(token)..., end()
            def put(self, value: Any) -> None:
                stamps.append(time.perf_counter())

            def end(self) -> None:
                stamps.append(time.perf_counter())

        start = time.perf_counter()
        self.lm.model.generate(
            input_ids=torch.tensor([ids]),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            max_new_tokens=n,
            min_new_tokens=n,
            do_sample=False,
            streamer=Clock(),
            pad_token_id=self.lm.tokenizer.pad_token_id or 0,
        )
        first, end = stamps[1], stamps[-1]
        return Timing(first - start, (n - 1) / (end - first), n)


class LlamaCpp:
    def __init__(self, c: dict[str, Any]) -> None:
        from llama_cpp import Llama

        self.llm = Llama(model_path=c["gguf"], n_threads=c["threads"], n_ctx=4096, verbose=False)
        self.bytes_per_token = 0  # the parent reads it from the GGUF (no numpy in this start)

    def time(self, ids: list[int], n: int) -> Timing:
        self.llm.reset()
        start = time.perf_counter()
        self.llm.eval(ids)
        token = self.llm.sample(temp=0.0)
        first = time.perf_counter()
        for _ in range(n - 1):
            self.llm.eval([token])
            token = self.llm.sample(temp=0.0)
        return Timing(first - start, (n - 1) / (time.perf_counter() - first), n)


ENGINES = {"ours": Ours, "transformers": Transformers, "llama.cpp": LlamaCpp}


def weight_bytes(model: Any) -> int:
    """Bytes a decode step reads: every weight once, but of the embedding table one row."""
    import itertools

    sizes = {
        t.data_ptr(): t.numel() * t.element_size()
        for t in itertools.chain(model.parameters(), model.buffers())
    }
    table = [*model.get_input_embeddings().parameters(), *model.get_input_embeddings().buffers()]
    head = model.get_output_embeddings()
    head_ptrs = {t.data_ptr() for t in [*head.parameters(), *head.buffers()]}
    total = sum(sizes.values())
    if not head_ptrs & {t.data_ptr() for t in table}:  # a table that is not also the head
        total -= sum(t.numel() * t.element_size() for t in table)
    return total


def peak_rss_mb() -> float:
    """This process's peak resident memory. Not getrusage: its maxrss survives exec, so a
    worker would report its parent's peak when that was higher."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: best effort


def _say(data: dict[str, Any]) -> None:
    print("BENCH " + json.dumps(data), flush=True)


def main() -> None:
    config = json.loads(sys.argv[1])
    engine = ENGINES[config["engine"]](config)
    _say({"ready": True, "bytes_per_token": engine.bytes_per_token, "rss_mb": peak_rss_mb()})
    for line in sys.stdin:
        request = json.loads(line)
        t = engine.time(request["prompt_ids"], request["tokens"])
        _say({"ttft_s": t.ttft_s, "decode_tok_s": t.decode_tok_s, "decode_tokens": t.tokens,
              "outside_forward": t.outside_forward, "rss_mb": peak_rss_mb()})  # fmt: skip


if __name__ == "__main__":
    main()
