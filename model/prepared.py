"""Float weights as a run uses them, kept in the cache: the adapter merged, the big projections
in the order this CPU streams faster (`model.layout`).

Both are the same at every start and both cost seconds on 2 cores: merging the default
model's adapter writes into every weight of a memory-mapped file (2 GB of copy-on-write page
faults), moving its head and MLP weights copies 1.4 GB. So the first start saves the result
and later ones memory-map it: read-only pages of the page cache, nothing copied, nothing
merged, nothing timed. A moved weight is saved as its [in, out] storage and read back as the
same transposed view. The layout decision is the file's: it was timed once, so a busy
neighbour during a later start cannot produce another one.

The key names the model's and the adapter's files (name, size, mtime), torch's version and
the CPU (`model.cpu`); a file of the same model and adapter under another key is stale and
removed when a new one is written. Not here: quantized weights (`model.quant_saved.save`, the same
idea for int8/int4), bfloat16, GPUs, models `model.lean` does not build.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from model import lean
from model.cpu import describe as describe_cpu

VERSION = 1  # of the file's layout: a change here makes every old file unreachable


def stamps(folder: Path) -> list[str]:
    """What says a folder's weights changed: each safetensors file's name, size and mtime."""
    return sorted(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}"
                  for f in folder.glob("*.safetensors"))  # fmt: skip


def path_for(folder: Path, adapter: Path | None, relayout: bool, cache: Path) -> Path:
    cpu = describe_cpu()
    parts = [f"{folder.resolve()}", *stamps(folder), torch.__version__, str(VERSION)]
    parts += [f"relayout={relayout}", cpu.vendor, cpu.model, ",".join(cpu.flags)]
    if adapter is not None:
        parts += [str(adapter.resolve()), *stamps(adapter)]
    key = hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]
    tag = adapter.name if adapter is not None else "none"
    return cache / "prepared" / f"{folder.name}-{tag}-float32-{key}.safetensors"


def save(model: lean.CausalLM, path: Path, moved: list[str]) -> None:
    """The model's weights into `path` (atomically), moved ones as their [in, out] storage;
    stale files of the same model and adapter are removed."""
    from safetensors.torch import save_file

    state, transposed = {}, []
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight" and model.config.tie_word_embeddings:
            continue  # the table's tensor: saved once
        if tensor.dim() == 2 and tensor.stride() == (1, tensor.shape[0]):
            tensor = tensor.t()
            transposed.append(name)
        state[name] = tensor.contiguous()
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"transposed": json.dumps(transposed), "moved": json.dumps(moved)}
    tmp = path.with_suffix(".partial")
    save_file(state, str(tmp), metadata=meta)
    tmp.replace(path)
    remove_stale(path)


def remove_stale(path: Path) -> None:
    """Removes the files beside `path` named as it is but for the key after the last dash: the
    same model, adapter and kind saved under an older key (new weights, torch or layout), which
    no start can reach any more. Without this the cache grew by a file per change, for good."""
    stem = path.name.rsplit("-", 1)[0]
    for old in path.parent.glob(f"{stem}-*.safetensors"):
        if old != path and old.name.rsplit("-", 1)[0] == stem:
            old.unlink(missing_ok=True)  # a process that mapped it keeps its pages


def read(folder: Path, path: Path) -> tuple[lean.CausalLM, list[str]] | None:
    """The model of `folder` with the weights of `path`, and the kinds moved; None when the
    file is missing or unreadable (the caller prepares it again)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    if not path.is_file():
        return None
    model = lean.build(folder, torch.float32, empty=True)
    if model is None:
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
        for name in json.loads(meta["transposed"]):
            state[name] = state[name].t()
        if model.config.tie_word_embeddings:
            state["lm_head.weight"] = state["model.embed_tokens.weight"]
        model.load_state_dict(state, assign=True, strict=True)
        moved = json.loads(meta["moved"])
    except Exception:  # noqa: BLE001 - torn, foreign or of another layout: prepared anew
        return None
    if model.config.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    return model.eval().requires_grad_(False), moved
