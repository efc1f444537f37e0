"""What a loaded model is, without torch: its weights (or none), tokenizer, tool format and ends.

`LoadedModel` is what the agent reads (`generator.lm`): the tokenizer it renders and counts
with, the tool-call format, the spec and adapter it names in the log. In-process the weights
are a transformers model (`model.loader`); on the client of a server there are none and the
tokenizer is the light one (`model.tokenizer`). Kept apart from the loader so that a client
reading these fields never imports torch.

Not here: loading (`model.loader`), generating (`model.generate`, `model.remote`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from model.chat import ToolFormat

# "auto": on a CPU the embedded model's choice (SmolLM2: int4) or `model.loader.CPU_QUANT`,
# none on a GPU (the packed kernels are CPU ones); `model.loader.resolve_quant`.
Quant = Literal["auto", "none", "int8", "int4"]
# "auto": bfloat16 on a GPU or a CPU that multiplies it natively (AVX512-BF16, AMX), else
# float32, since emulated bfloat16 matmuls are 3-5x slower (`model.loader.resolve_dtype`).
Dtype = Literal["auto", "float32", "bfloat16", "float16"]
QUANTS: tuple[Quant, ...] = get_args(Quant)
DTYPES: tuple[Dtype, ...] = get_args(Dtype)


class ModelLoadError(Exception):
    """The spec cannot be loaded; the message is one line that says what to do instead."""


@dataclass
class LoadedModel:
    model: Any  # a transformers PreTrainedModel (or a peft wrapper around one); None remotely
    tokenizer: Any
    spec: str
    source: Path | None  # the folder the weights came from, if any
    tool_format: ToolFormat
    adapter: str | None = None
    quant: Quant = "none"
    load_seconds: float = 0.0
    moved: list[str] = field(default_factory=list)  # projection kinds stored [in, out] (layout)
    context_window: int | None = None  # a served model's, as its server said (no config here)

    @property
    def window(self) -> int | None:
        """The context length: the model's config's, or what its server said."""
        if self.model is None:
            return self.context_window
        return getattr(self.model.config, "max_position_embeddings", None)

    stop_token_ids: set[int] = field(default_factory=set)

    @property
    def name(self) -> str:
        return self.spec + (f"+{Path(self.adapter).name}" if self.adapter else "")
