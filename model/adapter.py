"""LoRA adapters at inference: which one a model gets, and merging it into the weights.

An embedded model may ship with an adapter trained by `edgeagent train` (in
`model/adapters/<embedded name>/`, the files peft writes: `adapter_config.json` and
`adapter_model.safetensors`). The model setting `adapter` chooses:
- "default": the shipped adapter of this embedded model if there is one, else none;
- "none": no adapter;
- a folder: that adapter.

Merging adds `scale * B @ A` to each adapted linear layer's weight, in float32 then cast back,
so inference costs what it costs without an adapter, and no peft import is needed (peft is
only the trainer's). Not supported here, and refused with a one-line error: adapters that
are not plain LoRA on linear layers (DoRA, rank patterns per layer, bias training).

Not here: training an adapter or attaching a trainable one (`model.train.lora`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from model.embedded import lookup

SHIPPED = Path(__file__).parent / "adapters"
CONFIG, WEIGHTS = "adapter_config.json", "adapter_model.safetensors"


class AdapterError(ValueError):
    """An adapter folder that cannot be merged; the message is one line for the user."""


def resolve(embedded_name: str | None, adapter: str | None) -> str | None:
    """The adapter folder the setting names, or None for none; `embedded_name` is the
    model's embedded name (None for any other model, which has no shipped adapter)."""
    if adapter in (None, "none"):
        return None
    if adapter == "default":
        found = shipped(embedded_name) if embedded_name else None
        return str(found) if found else None
    return adapter


def label(spec: str, adapter: str | None) -> str | None:
    """What a run records as its adapter: None, "shipped:<name>:<sha256 of the weights, 12>"
    for the shipped one (so results say which training run they measure), else the folder."""
    known = lookup(spec)
    folder = resolve(known.name if known else None, adapter)
    if folder is None:
        return None
    if known and Path(folder) == SHIPPED / known.name:
        digest = hashlib.sha256((Path(folder) / WEIGHTS).read_bytes()).hexdigest()[:12]
        return f"shipped:{known.name}:{digest}"
    return folder


def shipped(embedded_name: str) -> Path | None:
    """The adapter shipped for an embedded model, if there is one."""
    folder = SHIPPED / embedded_name
    return folder if (folder / CONFIG).is_file() else None


def read_config(folder: Path) -> dict[str, Any]:
    path = folder / CONFIG
    if not path.is_file() or not (folder / WEIGHTS).is_file():
        raise AdapterError(f"{folder} is not a LoRA adapter folder (needs {CONFIG}, {WEIGHTS})")
    config = json.loads(path.read_text())
    if config.get("use_dora") or config.get("rank_pattern") or config.get("alpha_pattern"):
        raise AdapterError(f"{folder}: only plain LoRA adapters can be merged here")
    return config


def merge(model: torch.nn.Module, folder: str | Path) -> int:
    """Add the adapter in `folder` to `model`'s weights, in place; returns the layers changed."""
    folder = Path(folder)
    config = read_config(folder)
    scale = float(config["lora_alpha"]) / float(config["r"])
    tensors = load_file(str(folder / WEIGHTS))
    modules = dict(model.named_modules())
    changed = 0
    for key, down in tensors.items():
        if ".lora_A." not in key:
            continue
        up = tensors[key.replace(".lora_A.", ".lora_B.")]
        name = key.split(".lora_A.")[0].removeprefix("base_model.model.")
        layer = modules.get(name)
        if not isinstance(layer, torch.nn.Linear):
            raise AdapterError(f"{folder}: the model has no linear layer {name!r}")
        delta = scale * (up.float() @ down.float())
        with torch.no_grad():
            layer.weight.copy_((layer.weight.float() + delta).to(layer.weight.dtype))
        changed += 1
    if not changed:
        raise AdapterError(f"{folder}: no LoRA weights in {WEIGHTS}")
    return changed


def to_bfloat16(source: str | Path, target: str | Path) -> Path:
    """A copy of an adapter with its weights in bfloat16 (half the size), as shipped."""
    source, target = Path(source), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.to(torch.bfloat16).contiguous() for k, v in load_file(source / WEIGHTS).items()}
    save_file(tensors, str(target / WEIGHTS))
    (target / CONFIG).write_text((source / CONFIG).read_text())
    return target
