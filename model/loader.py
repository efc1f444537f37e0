"""Loading a model from a spec: an embedded name, a local folder, a .gguf file or a hub id.

A spec is resolved in that order. Embedded names and .gguf files are converted once into the
cache (see `model.embedded`), so every later start loads a safetensors folder. A hub id loads
from the local Hugging Face cache, and from the network only when the caller says it is online;
offline, a missing id is a one-line error naming the alternatives. A LoRA adapter (the one
shipped with an embedded model by default, `model.adapter`) is merged into the weights, so it
costs nothing at inference. `quant="int8"|"int4"` then swaps the linear layers for weight-only
quantized ones (`model.quant`); the adapter is merged first, since a quantized layer has no
float weight for LoRA to add to, and the result is saved in the cache under a key of the
model's and the adapter's files, so later starts read it instead of rounding again.

Not here: generation (`model.generate`), prompts (`model.chat`), training.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from model import adapter as adapters
from model import embedded, layout, native, prepared
from model.chat import ToolFormat, detect_format
from model.lean import build as build_lean
from model.lean import read_config as lean_config
from model.loaded import Dtype, LoadedModel, ModelLoadError, Quant
from model.quant import Int4Linear, Int8Linear, native_bf16, quantize
from model.quant_saved import load_saved, read, save, saved_path
from model.tokenizer import from_folder
from model.train import distributed

# What `quant="auto"` (the setting's default) is on a CPU: int8, the fastest kind whose
# quality paired against float32 is not significantly worse (full non-live BFCL test split
# 452 -> 455 of 635 with our kernels, p = 0.55; search-QA 50 -> 49 of 55, p = 1.0; long
# context 12 -> 12 of 36, the same cases: evals/results/arms/quant-*). int4 lost on the
# default model (its GGUF is mostly 5-bit): BFCL 452 -> 432, p = 0.002. An embedded model
# may choose otherwise (`Embedded.cpu_quant`: SmolLM2's 4-bit layers are held exactly).
CPU_QUANT: Quant = "int8"

TEMPLATES = Path(__file__).parent / "templates"


def load(
    spec: str = "embedded",
    adapter: str | None = None,
    dtype: Dtype = "float32",
    online: bool = False,
    cache: Path | None = None,
    progress: embedded.Progress | None = None,
    quant: Quant = "none",
    device: str = "cpu",
    relayout: bool = False,
    lean: bool = False,
) -> LoadedModel:
    """`lean`: a Llama or Qwen2 folder is built by `model.lean` (no transformers import);
    off, or for anything else, transformers loads it. The trainer keeps it off."""
    start = time.perf_counter()
    target = resolve_device(device, quant)
    dtype, quant = resolve_dtype(dtype, target), resolve_quant(quant, target, spec)
    folder, hub_id = resolve(spec, online=online, cache=cache, progress=progress)
    known = embedded.lookup(spec)
    adapter = adapters.resolve(known.name if known else None, adapter)
    where = cache or embedded.cache_root()
    moved: list[str] | None = None
    ready = None
    if quant != "none":  # before the layers are built: they take our kernel's layout if loaded
        native.load(where, progress)
    if lean and folder and quant == "none" and target.type == "cpu" and dtype == "float32":
        ready = _prepared(folder, where, adapter, relayout)
    if ready:
        model, tokenizer, moved = ready
    elif quant != "none" and folder is not None:
        model, tokenizer = _quantized(folder, dtype, quant, where, adapter, lean)
    else:
        model, tokenizer = _from_pretrained(folder or hub_id, dtype, online=online, lean=lean)
        _merge(model, adapter)
        _quantize(model, quant)
    model.eval()
    if target.type != "cpu":
        model.to(target)
    lm = wrap(model, tokenizer, spec=spec, source=folder, adapter=adapter)
    lm.quant = quant
    if moved is not None:
        lm.moved = moved
    elif relayout and target.type == "cpu":
        lm.moved = layout.relayout(model)  # float32 layers only: quantized ones are not Linear
    lm.load_seconds = time.perf_counter() - start
    return lm


def resolve_device(name: str, quant: Quant = "none") -> torch.device:
    """ "auto": this process's GPU (`LOCAL_RANK` under a launcher) when there is one and no
    quantization is asked for (the int8/int4 kernels are CPU ones), else the CPU."""
    if name == "auto":
        on_gpu = quant in ("none", "auto")
        return distributed.default_device() if on_gpu else torch.device("cpu")
    target = torch.device(name)
    if target.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"no CUDA device here for --device {name}: use --device cpu")
    if target.type == "cuda" and quant != "none":
        raise ModelLoadError("--quant int8/int4 runs on the CPU only: use --quant none on a GPU")
    return target


def resolve_quant(quant: Quant, device: torch.device, spec: str | None = None) -> Quant:
    """ "auto" made concrete for `device` and the model of `spec`: none on a GPU; on a CPU
    the embedded model's own choice (`Embedded.cpu_quant`), else `CPU_QUANT`."""
    if quant != "auto":
        return quant
    if device.type != "cpu":
        return "none"
    known = embedded.lookup(spec) if spec else None
    return known.cpu_quant if known else CPU_QUANT


def resolve_dtype(dtype: Dtype, device: torch.device) -> Dtype:
    """ "auto" made concrete for `device`: bfloat16 on a GPU or a CPU that multiplies it
    natively, else float32; any other dtype as given."""
    if dtype != "auto":
        return dtype
    return "bfloat16" if device.type != "cpu" or native_bf16() else "float32"


def wrap(
    model: Any, tokenizer: Any, spec: str, source: Path | None = None, adapter: str | None = None
) -> LoadedModel:
    """A LoadedModel around an in-memory model and tokenizer (also used for tiny test models)."""
    if not tokenizer.chat_template:
        tokenizer.chat_template = _default_template(getattr(model.config, "model_type", ""))
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        spec=spec,
        source=source,
        tool_format=detect_format(tokenizer.chat_template),
        adapter=adapter,
        stop_token_ids=stop_tokens(model, tokenizer),
    )


def _default_template(model_type: str | None) -> str:
    """The chat template for a tokenizer that ships none: LFM2's for LFM2 models, else ChatML."""
    name = "lfm2.jinja" if (model_type or "").lower().startswith("lfm2") else "chatml.jinja"
    return (TEMPLATES / name).read_text()


def tool_format_of(spec: str, cache: Path | None = None) -> ToolFormat:
    """The tool-call format `load(spec)` would give the model, read from its tokenizer and
    config alone (no weights): for re-scoring outputs a model wrote earlier."""
    from transformers import AutoConfig, AutoTokenizer

    folder, hub_id = resolve(spec, online=False, cache=cache)
    where = folder or hub_id
    try:
        tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=True)
        model_type = AutoConfig.from_pretrained(where, local_files_only=True).model_type
    except OSError as e:
        raise ModelLoadError(f"cannot read the tokenizer of {spec}: {e}") from None
    return detect_format(tokenizer.chat_template or _default_template(model_type))


def resolve(
    spec: str, online: bool, cache: Path | None = None, progress: embedded.Progress | None = None
) -> tuple[Path | None, str | None]:
    """(local folder, None) or (None, hub id) for a spec; raises ModelLoadError."""
    if (known := embedded.lookup(spec)) is not None:
        try:
            return embedded.hf_folder(known, cache, progress), None
        except embedded.EmbeddedError as e:
            raise ModelLoadError(str(e)) from None
        except OSError as e:  # the cache filled up mid-conversion
            raise ModelLoadError(_cache_problem(e)) from None
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"{path} has no config.json: point --model at a model folder")
        return path, None
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelLoadError(f"no such GGUF file: {path}")
        return _converted_gguf(path, cache, progress), None
    if _looks_like_hub_id(spec):
        return None, spec
    names = ", ".join(embedded.EMBEDDED)
    raise ModelLoadError(
        f"unknown model '{spec}': use an embedded name ({names}), a folder, a .gguf or a hub id"
    )


def _looks_like_hub_id(spec: str) -> bool:
    parts = spec.split("/")
    return len(parts) == 2 and all(p and not p.startswith(".") for p in parts)


def _converted_gguf(path: Path, cache: Path | None, progress: embedded.Progress | None) -> Path:
    st = path.resolve().stat()
    key = hashlib.sha256(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()
    folder = (cache or embedded.cache_root()) / "models" / f"{path.stem}-{key[:12]}"
    if not (folder / "config.json").is_file():
        try:
            embedded.check_writable(folder.parent)
        except embedded.EmbeddedError as e:
            raise ModelLoadError(str(e)) from None
        try:
            embedded.convert_gguf(path, folder, progress)
        except OSError as e:
            in_cache = e.filename is not None and str(e.filename).startswith(str(folder.parent))
            if in_cache or e.errno in (errno.ENOSPC, errno.EROFS, errno.EDQUOT):
                raise ModelLoadError(_cache_problem(e)) from None
            raise ModelLoadError(f"cannot read {path} as a GGUF model: {e}") from None
        except Exception as e:  # transformers raises many types for files it cannot read
            raise ModelLoadError(f"cannot read {path} as a GGUF model: {e}") from None
    return folder


def _cache_problem(e: OSError) -> str:
    where = f" ({e.filename})" if e.filename else ""
    return (
        f"cannot write the model cache{where}: {e.strerror or e}; free some space or set "
        "EDGEAGENT_CACHE to a writable folder"
    )


def _from_pretrained(
    where: Path | str | None, dtype: Dtype, online: bool, lean: bool = False
) -> tuple[Any, Any]:
    if lean and isinstance(where, Path):
        built = _lean(where, dtype)
        if built:
            return built
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype)}
    is_hub = isinstance(where, str)
    if is_hub and not online:
        kwargs["local_files_only"] = True
    try:
        tokenizer = AutoTokenizer.from_pretrained(where, **_only(kwargs, "local_files_only"))
        model = AutoModelForCausalLM.from_pretrained(where, **kwargs)
    except OSError as e:
        if is_hub:
            how = "it is not in the local Hugging Face cache" + ("" if online else " (offline)")
            names = ", ".join(embedded.EMBEDDED)
            raise ModelLoadError(
                f"cannot load '{where}': {how}; use an embedded model ({names}), "
                "a local folder or a .gguf path"
            ) from None
        raise ModelLoadError(f"cannot load {where}: {str(e).splitlines()[0]}") from None
    return model, tokenizer


def _lean(folder: Path, dtype: Dtype, empty: bool = False) -> tuple[Any, Any] | None:
    """`model.lean`'s model and tokenizer for `folder`, or None where it does not apply."""
    if lean_config(folder) is None:
        return None
    tokenizer = from_folder(folder)
    if tokenizer is None:
        return None
    return build_lean(folder, getattr(torch, dtype), empty=empty), tokenizer


def _prepared(
    folder: Path, cache: Path, adapter: str | None, relayout: bool
) -> tuple[Any, Any, list[str]] | None:
    """A lean float32 model with its adapter merged and its weights moved, read from the
    cache (`model.prepared`), or made now and saved there; None where there is nothing to
    prepare (no adapter, no relayout) or `model.lean` does not apply."""
    if not (adapter or relayout):
        return None
    if adapter:
        _check_adapter(adapter)
    path = prepared.path_for(folder, Path(adapter) if adapter else None, relayout, cache)
    tokenizer = from_folder(folder) if lean_config(folder) else None
    if tokenizer is None:
        return None
    found = prepared.read(folder, path)
    if found:
        return found[0], tokenizer, found[1]
    model = build_lean(folder, torch.float32)
    _merge(model, adapter)
    moved = layout.relayout(model) if relayout else []
    with contextlib.suppress(OSError):  # a read-only or full cache: the next start prepares again
        prepared.save(model, path, moved)
    return model, tokenizer, moved


def _quantized(
    folder: Path, dtype: Dtype, quant: Quant, cache: Path, adapter: str | None, lean: bool
) -> tuple[Any, Any]:
    """A quantized model from its saved file, or quantized now and saved for the next start.
    The adapter is merged before rounding, so the file is of this model with this adapter."""
    if adapter:
        _check_adapter(adapter)  # a broken folder is an error, whatever the cache holds
    path = saved_path(folder, quant, dtype, cache, Path(adapter) if adapter else None)
    if path.is_file():
        try:
            # The file is read (or mapped, `quant_saved.read`) in a thread while the tokenizer
            # is parsed here: about 0.4 s each for the default model when read, now at once.
            with ThreadPoolExecutor(1) as pool:
                state = pool.submit(read, path)
                built = _lean(folder, dtype, empty=True) if lean else None
                empty, kind = built and built[0], getattr(torch, dtype)
                model = load_saved(folder, path, quant, kind, empty, state.result())
            return model, built[1] if built else _tokenizer(folder)
        except Exception:  # noqa: BLE001 - unreadable or from another layout: quantize again
            path.unlink(missing_ok=True)
    model, tokenizer = _from_pretrained(folder, dtype, online=False, lean=lean)
    _merge(model, adapter)
    _quantize(model, quant)
    with contextlib.suppress(OSError):  # a read-only or full cache: the next start rounds again
        save(model, path)
    return model, tokenizer


def _tokenizer(folder: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


def _check_adapter(adapter: str) -> None:
    try:
        adapters.read_config(Path(adapter))
    except adapters.AdapterError as e:
        raise ModelLoadError(str(e)) from None


def _merge(model: Any, adapter: str | None) -> None:
    if not adapter:
        return
    try:
        adapters.merge(model, adapter)
    except adapters.AdapterError as e:
        raise ModelLoadError(str(e)) from None


def _quantize(model: Any, quant: Quant) -> None:
    try:
        quantize(model, quant)
    except ValueError as e:
        raise ModelLoadError(str(e)) from None


def _only(kwargs: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if k in keys}


def stop_tokens(model: Any, tokenizer: Any) -> set[int]:
    """Token ids that end an assistant turn: eos ids plus the chat templates' end markers."""
    ids: set[int] = set()
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (eos, tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list):
            ids.update(v for v in value if isinstance(v, int))
    backend = getattr(tokenizer, "backend_tokenizer", None)  # fast ones: no 0.15 s vocabulary
    vocab = {} if backend is not None else tokenizer.get_vocab()
    for marker in ("<|im_end|>", "<|endoftext|>", "<end_of_turn>", "<|eot_id|>"):
        found = backend.token_to_id(marker) if backend is not None else vocab.get(marker)
        if found is not None:
            ids.add(found)
    return ids


def describe(lm: LoadedModel) -> dict[str, Any]:
    """Architecture, size and where it lives: what `edgeagent model info` shows."""
    model = lm.model
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    head = model.get_output_embeddings()
    # A quantized layer keeps its weights in buffers: count them as the weights they stand
    # for (a tied head, quantized apart from the table, is still the table's parameters).
    packed = [
        m
        for m in model.modules()
        if isinstance(m, (Int8Linear, Int4Linear)) and not (tied and m is head)
    ]
    total = sum(p.numel() for p in model.parameters())
    total += sum(m.in_features * m.out_features for m in packed)
    table = model.get_input_embeddings()
    rows = table.num_embeddings * table.embedding_dim
    embedding = rows if tied else rows + head.in_features * head.out_features
    config = model.config
    return {
        "spec": lm.name,
        "architecture": (config.architectures or [type(model).__name__])[0],
        "model_type": config.model_type,
        "layers": getattr(config, "num_hidden_layers", None),
        "hidden_size": getattr(config, "hidden_size", None),
        "vocab_size": getattr(config, "vocab_size", None),
        "parameters": total,
        "embedding_parameters": embedding,
        "embedding_share": embedding / total if total else 0.0,
        "tied_embeddings": tied,
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "quant": lm.quant,
        # Ours are built and loaded for quantized weights; "torch" also where they could not be.
        "kernels": "ours (model/native.cpp)" if native.ready() else "torch",
        "adapter": lm.adapter,
        "tool_format": lm.tool_format.value,
        "source": str(lm.source) if lm.source else None,
        "cache": str(embedded.cache_root()),
        "threads": torch.get_num_threads(),
    }
