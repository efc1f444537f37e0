"""`edgeagent bench`: our decoder against llama.cpp and transformers on one prompt, the agent
loop's overhead, and `ask`'s time to first token, printed as tables (or JSON).

The measuring lives in `model.bench` (engines in worker processes), `evals.overhead` and
`evals.firsttoken`; this module only turns flags into their calls and prints. Not a timed
test: figures move with the machine, so every table is a ratio against a reference measured
in the same run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from agent.settings import Settings
from model.cpu import describe as describe_cpu
from tui.commands import say
from tui.flags import settings_from


def cmd_bench(args: argparse.Namespace) -> int:
    from model import bench

    settings = settings_from(args)
    threads = settings.model.threads or 2
    tables = []  # (model, rows, reference, prompt tokens)
    try:
        for spec in bench_models(args, settings):
            one = settings.model_copy(
                update={"model": settings.model.model_copy(update={"spec": spec})}
            )
            rows, reference, prompt_tokens = engine_rows(args, one, threads)
            if rows:
                tables.append((spec, rows, reference, prompt_tokens))
    except ValueError as e:
        say(f"edgeagent: error: {e}")
        return 2
    overhead = None
    if args.agent_episodes:
        from evals import overhead as agent_overhead

        say("bench: agent overhead, real episodes with the python tool")
        overhead = agent_overhead.measure(settings, args.agent_episodes, threads)
    first = None
    if args.ask_rounds:
        from evals import firsttoken

        say("bench: `ask` from process start to first token, through a server and in-process")
        flags = model_flags(args, settings, threads)
        first = firsttoken.measure(flags, args.ask_rounds, args.ask_server,
                                   progress=lambda m: say(f"bench: {m}"))  # fmt: skip
    cpu = describe_cpu()
    if args.json:
        parts: dict[str, Any] = {"cpu": cpu, "agent": overhead, "first_token": first}
        extra = {k: v.model_dump() for k, v in parts.items() if v is not None}
        models = [{"model": spec, "prompt_tokens": n, "rows": json.loads(bench.as_json(rows))}
                  for spec, rows, _, n in tables]  # fmt: skip
        print(json.dumps({"models": models, **extra}, indent=2))
        return 0
    print(f"CPU: {cpu.line}")
    for spec, rows, reference, prompt_tokens in tables:
        print(f"{spec}, {threads} threads, {prompt_tokens}-token prompt, "
              f"{args.tokens} tokens decoded, median of {args.rounds} rounds")  # fmt: skip
        print(bench.table(rows, reference))
    if overhead is not None:
        print()
        print(agent_overhead.table(overhead))
    if first is not None:
        print()
        print(firsttoken.table(first))
    return 0


def bench_models(args: argparse.Namespace, settings: Settings) -> list[str]:
    """The model named by --model or the settings, else every embedded model (both)."""
    from model import embedded

    if getattr(args, "model.spec", None) is None and settings.model.spec == "embedded":
        return list(embedded.EMBEDDED)
    return [settings.model.spec]


def engine_rows(
    args: argparse.Namespace, settings: Settings, threads: int
) -> tuple[list[Any], str | None, int]:
    """The engine table's rows (none with `--variants none --reference none`), its reference
    engine and the prompt's length."""
    from model import bench

    variants = bench.parse_variants(args.variants)
    if not variants and args.reference == "none":
        return [], None, 0
    gguf, prompt_ids = bench_inputs(settings.model.spec)
    refs, notes = bench.references(args.reference, gguf)
    for note in notes:
        say(f"edgeagent: {note}")
    rows = bench.run(settings.model.spec, variants + refs, gguf, prompt_ids, args.rounds,
                     args.tokens, threads, progress=lambda m: say(f"bench: {m}"),
                     relayout=settings.model.relayout, lean=settings.model.lean)  # fmt: skip
    return list(rows), refs[0].label if refs else None, len(prompt_ids)


def model_flags(args: argparse.Namespace, settings: Settings, threads: int) -> list[str]:
    """The flags that make a child process (`serve`, `ask`) run the model the bench runs."""
    m = settings.model
    flags = ["--model", m.spec, "--dtype", m.dtype, "--quant", m.quant, "--device", m.device,
             "--threads", str(threads)]  # fmt: skip
    if m.adapter is not None:
        flags += ["--adapter", m.adapter]
    if args.config is not None:
        flags += ["--config", str(args.config)]
    return flags


def bench_inputs(spec: str) -> tuple[Path | None, list[int]]:
    """The model's GGUF file (for llama.cpp), if it has one, and the prompt's token ids."""
    from transformers import AutoTokenizer

    from model import bench, embedded
    from model.loader import resolve

    folder, hub_id = resolve(spec, online=False, progress=lambda m: say(f"edgeagent: {m}"))
    known = embedded.lookup(spec)
    gguf = embedded.gguf_path(known) if known else None
    if Path(spec).suffix == ".gguf":
        gguf = Path(spec)
    tokenizer = AutoTokenizer.from_pretrained(folder or hub_id, local_files_only=True)
    messages = [{"role": "user", "content": bench.PROMPT}]
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return gguf, tokenizer(text, add_special_tokens=False)["input_ids"]
