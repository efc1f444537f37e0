"""A quantized model kept in one safetensors file in the cache, so that later starts read a
quarter of the bytes and round nothing (quantizing the default model takes 6-12 s on 2 cores).

`saved_path` names the file after everything its contents depend on (the model's files, the
adapter, torch, what `model.quant.quantize` builds and for which kernel); `save` writes it
whole or not at all, and removes the file it replaces (the same model and adapter name under
an older key); `load_saved` builds the model on the meta device and assigns the file's
tensors, memory-mapped where our kernels take the int8 layers, else read by `read_copied` into
fresh aligned memory for torch's packed kernels (`read`). Not here: rounding
(`model.quant`), float32 weights kept for a start (`model.prepared`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from model import native
from model.loaded import Quant
from model.prepared import remove_stale, stamps
from model.quant import Int4Linear, Int8Linear, quantize

# Of the saved files: fused projections, int8 head, token table (or the head's rows), int4 blocks.
LAYOUT = 4


def saved_path(
    folder: Path, quant: Quant, dtype: str, cache: Path, adapter: Path | None = None
) -> Path:
    """Where the quantized weights of a model folder (with `adapter` merged in) live; new
    weights, a new adapter or a new torch, new file."""
    # LAYOUT changes whenever what `quantize` builds does: an old file is then never opened.
    # torch packs int4 for the kernel it dispatches to on this CPU (`int4_layout`).
    capability = torch.backends.cpu.get_cpu_capability()
    key = f"{folder.resolve()}|{stamps(folder)}|{torch.__version__}|{LAYOUT}|{capability}"
    key += "|blocks" if native.ready() else ""  # our kernel's layout, or torch's
    if adapter is not None:
        key += f"|{adapter.resolve()}|{stamps(adapter)}"
    key = hashlib.sha256(key.encode()).hexdigest()
    # The key last, as `model.prepared` names its files: a new file replaces the one of the
    # same model, adapter folder name, dtype and kind (`remove_stale`), so the cache holds one
    # 0.6 GB file per adapter name (the trainer's outputs are all `adapter`), not one per change.
    tag = adapter.name if adapter is not None else "none"
    return cache / "quantized" / f"{folder.name}-{tag}-{dtype}-{quant}-{key[:12]}.safetensors"


def save(model: Any, path: Path) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    tmp.replace(path)  # a start that is killed mid-write leaves no half file behind
    remove_stale(path)


def load_saved(
    folder: Path,
    path: Path,
    quant: Quant,
    dtype: torch.dtype,
    empty: Any = None,
    state: dict[str, torch.Tensor] | None = None,
) -> Any:
    """The model of `folder`, its quantized weights read from `path` instead of rounded anew.
    Built on the meta device (no memory, no random init), then the file's tensors assigned.
    `empty`: that meta model already built (`model.lean`), else transformers builds it;
    `state`: the file already read (`read`)."""
    model = empty if empty is not None else _meta_model(folder, dtype)
    state = state or read(path)
    table = next(n for n, m in model.named_modules() if m is model.get_input_embeddings())
    with torch.device("meta"):  # a tied table is saved as the head's rows, not a table
        quantize(model, quant, empty=True, tied=f"{table}.qweight" not in state)
    model.load_state_dict(state, assign=True, strict=True)
    _align_for_torchs_kernels(model)
    _rebuild_unsaved_buffers(model)
    return model.eval()


def read(path: Path) -> dict[str, torch.Tensor]:
    """The file's tensors: memory-mapped where our kernels run the int8 layers (they, and
    torch's ops on the rest, read any address; a start then reads nothing up front: the
    default model's 0.5 GB took 0.55 s to read from the page cache, 0.01 s to map), else
    read into aligned memory for torch's packed kernels (`read_copied`)."""
    if not native.ready():
        return read_copied(path)
    from safetensors.torch import load_file

    return load_file(str(path))


def _align_for_torchs_kernels(model: Any) -> None:
    """Copies into aligned memory the buffers of layers that torch's packed kernels multiply
    (layers our kernels do not take): they crash on a mapped tensor's offset."""
    for module in model.modules():
        if isinstance(module, Int8Linear | Int4Linear) and not module.blocked:
            for name, buffer in list(module.named_buffers(recurse=False)):
                setattr(module, name, buffer.clone())


_DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16,
           "I8": torch.int8, "U8": torch.uint8, "I32": torch.int32, "I64": torch.int64}  # fmt: skip


def read_copied(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file read into fresh tensors, not memory-mapped. The packed kernels crash
    on buffers that are not aligned, and a mapped tensor sits at any byte offset, so these were
    clones of the mapped file: its pages and the copies counted together (the default model's
    int8 start peaked at 1.5 GB of RSS for 0.9 GB after). Read here, only the copies count."""
    with path.open("rb") as f:
        size = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(size))
        header.pop("__metadata__", None)
        state = {}
        for name, info in header.items():
            begin, end = info["data_offsets"]
            tensor = torch.empty(info["shape"], dtype=_DTYPES[info["dtype"]])
            raw = tensor.view(-1).view(torch.uint8).numpy()
            f.seek(8 + size + begin)
            if raw.nbytes != end - begin or f.readinto(memoryview(raw)) != raw.nbytes:
                raise ValueError(f"{path.name}: {name} is cut short")
            state[name] = tensor
    return state


def _meta_model(folder: Path, dtype: torch.dtype) -> Any:
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder), dtype=dtype)
    if (folder / "generation_config.json").is_file():
        model.generation_config = GenerationConfig.from_pretrained(folder)
    return model


def _rebuild_unsaved_buffers(model: Any) -> None:
    """Rotary frequencies are computed at init, not saved: build those modules for real."""
    for name, module in list(model.named_modules()):
        if not any(b.is_meta for b in module.buffers(recurse=False)):
            continue
        if "Rotary" not in type(module).__name__:
            raise ValueError(f"{name} has buffers the saved file lacks")
        parent_name, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent_name), attr, type(module)(config=model.config))
