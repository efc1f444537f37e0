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


def average(
    sources: list[str | Path], weights: list[float], target: str | Path, rank: int | None = None
) -> Path:
    """One adapter whose change to every layer is the `weights`-weighted sum of the sources'
    changes, exactly: the sources' low-rank factors side by side (rank the sum of theirs), each
    pair scaled by the square root of its weight's size (the up factor also by its sign, so a
    negative weight subtracts a change). Two runs trained from the same start and
    averaged sit between them (weight averaging, as in WiSE-FT); not a way to combine adapters
    of different base models, which nothing here checks beyond the layer names and shapes.
    `rank`: keep each layer's best approximation of that rank instead (its largest singular
    directions), for a smaller file; exact while the summed change has no higher rank."""
    if len(sources) != len(weights) or not sources:
        raise AdapterError("average: give one weight per adapter, and at least one adapter")
    if rank is not None and rank < 1:
        raise AdapterError(f"average: the rank must be at least 1, got {rank}")
    configs = [read_config(Path(s)) for s in sources]
    scales = [float(c["lora_alpha"]) / float(c["r"]) for c in configs]
    loaded = [load_file(str(Path(s) / WEIGHTS)) for s in sources]
    if any(t.keys() != loaded[0].keys() for t in loaded):
        raise AdapterError("average: the adapters adapt different layers")
    out: dict[str, torch.Tensor] = {}
    for key in (k for k in loaded[0] if ".lora_A." in k):
        up_key = key.replace(".lora_A.", ".lora_B.")
        sizes = [(abs(w) * s / scales[0]) ** 0.5 for w, s in zip(weights, scales, strict=True)]
        signs = [-1.0 if w < 0 else 1.0 for w in weights]
        dtype = loaded[0][key].dtype
        downs = [c * t[key].float() for c, t in zip(sizes, loaded, strict=True)]
        ups = [g * c * t[up_key].float() for g, c, t in zip(signs, sizes, loaded, strict=True)]
        down, up = torch.cat(downs, dim=0), torch.cat(ups, dim=1)
        if rank is not None and rank < down.shape[0]:
            down, up = truncate(down, up, rank)
        out[key] = down.to(dtype).contiguous()
        out[up_key] = up.to(dtype).contiguous()
    total = sum(int(c["r"]) for c in configs)
    kept = min(rank, total) if rank else total
    config = {**configs[0], "r": kept, "lora_alpha": scales[0] * kept}
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    save_file(out, str(target / WEIGHTS))
    (target / CONFIG).write_text(json.dumps(config, indent=2))
    return target


def truncate(down: torch.Tensor, up: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Factors of the best rank-`rank` approximation of `up @ down` (Eckart-Young), through the
    small core of two QR factorizations, so the full matrix is never formed."""
    q_up, r_up = torch.linalg.qr(up)
    q_down, r_down = torch.linalg.qr(down.T)
    u, s, vh = torch.linalg.svd(r_up @ r_down.T)
    root = s[:rank].sqrt()
    return (root[:, None] * vh[:rank]) @ q_down.T, (q_up @ u[:, :rank]) * root
