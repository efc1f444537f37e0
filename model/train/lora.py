"""LoRA adapters for training: attach one, save it, and checkpoint or resume a training run.

Targets are chosen per architecture: every attention projection and every MLP projection (LoRA
on all linear layers beats attention-only at the same rank). LFM2 names them differently: its
short-convolution blocks have `in_proj`/`out_proj`, its attention `q/k/v_proj` and `out_proj`,
its MLP `w1`/`w2`/`w3`. The embedding and the (often tied) output head stay frozen.

An adapter folder is what `PeftModel.save_pretrained` writes, so `model.loader.load(spec,
adapter=FOLDER)` applies it. A checkpoint is `ROOT/checkpoint-STEP/`: the adapter files, plus
`optimizer.pt` and `trainer_state.json` (`global_step` and whatever the loop adds), the layout
the Hugging Face Trainer (under TRL's SFTTrainer) writes too, so every checkpoint of every method
is also an adapter folder and `latest_checkpoint` finds both kinds.

Not here: loading base models (`model.loader`), the training losses and loops.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, Field

ATTENTION_MLP = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
TARGETS: dict[str, list[str]] = {
    "lfm2": ["q_proj", "k_proj", "v_proj", "out_proj", "in_proj", "w1", "w2", "w3"],
}
STATE_FILE = "trainer_state.json"
OPTIMIZER_FILE = "optimizer.pt"
CHECKPOINT = re.compile(r"checkpoint-(\d+)")
Progress = Callable[[dict[str, float]], None]  # each trainer reports {"step": ..., "loss": ...}


class LoraSettings(BaseModel):
    rank: int = Field(default=16, ge=1)
    alpha: int = Field(default=32, ge=1)
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    targets: list[str] | None = Field(default=None, description="module names; None: per arch")
    seed: int = Field(default=0, description="the adapter's initial weights")


def target_modules(model: Any) -> list[str]:
    """The linear layers to adapt: the architecture's list, kept to names the model has."""
    model_type = (getattr(model.config, "model_type", "") or "").lower()
    wanted = next((t for k, t in TARGETS.items() if model_type.startswith(k)), ATTENTION_MLP)
    present = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
    }
    found = [t for t in wanted if t in present]
    if not found:
        raise ValueError(f"no LoRA target among {wanted} in a {model_type or 'unknown'} model")
    return found


def attach(model: Any, settings: LoraSettings | None = None) -> Any:
    """The model wrapped in a fresh, trainable LoRA adapter (base weights frozen, in place)."""
    from peft import LoraConfig, get_peft_model

    s = settings or LoraSettings()
    config = LoraConfig(
        r=s.rank,
        lora_alpha=s.alpha,
        lora_dropout=s.dropout,
        target_modules=s.targets or target_modules(model),
        task_type="CAUSAL_LM",
    )
    # Seeded, so a run's initial adapter is the same every time; the caller's generator is
    # left as it was. peft leaves the model in train mode; generating (rollouts, evals) must
    # not drop out: `loop.training` switches dropout on around each optimizer step only.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(s.seed)
        return get_peft_model(model, config).eval()


def load_trainable(model: Any, adapter: str | Path) -> Any:
    """The model with a saved adapter applied and trainable: to continue training from it."""
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(adapter), is_trainable=True).eval()


def save_adapter(model: Any, folder: str | Path) -> Path:
    """The adapter alone (no base weights): a folder `model.loader.load(adapter=...)` takes."""
    folder = Path(folder)
    model.save_pretrained(str(folder))
    return folder


def trainable_parameters(model: Any) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def optimizer_for(model: Any, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    return torch.optim.AdamW(trainable_parameters(model), lr=lr, weight_decay=weight_decay)


def save_checkpoint(
    model: Any,
    optimizer: torch.optim.Optimizer,
    step: int,
    root: str | Path,
    state: dict[str, Any] | None = None,
) -> Path:
    """ROOT/checkpoint-STEP: the adapter, the optimizer state and the step."""
    folder = save_adapter(model, Path(root) / f"checkpoint-{step}")
    torch.save(optimizer.state_dict(), folder / OPTIMIZER_FILE)
    (folder / STATE_FILE).write_text(json.dumps({**(state or {}), "global_step": step}, indent=1))
    return folder


def latest_checkpoint(root: str | Path) -> Path | None:
    """The checkpoint with the highest step under `root`, if any."""
    root = Path(root)
    found = [
        (int(m.group(1)), p)
        for p in (root.iterdir() if root.is_dir() else [])
        if (m := CHECKPOINT.fullmatch(p.name)) and (p / STATE_FILE).is_file()
    ]
    return max(found)[1] if found else None


def restore_checkpoint(
    model: Any, optimizer: torch.optim.Optimizer | None, folder: str | Path
) -> dict[str, Any]:
    """Load a checkpoint's adapter weights (and optimizer state) into a model that already has an
    adapter of the same shape; returns its state (`global_step`, ...)."""
    from peft import set_peft_model_state_dict
    from peft.utils import load_peft_weights

    folder = Path(folder)
    set_peft_model_state_dict(model, load_peft_weights(str(folder)))
    if optimizer is not None and (folder / OPTIMIZER_FILE).is_file():
        state = torch.load(folder / OPTIMIZER_FILE, map_location="cpu", weights_only=True)
        optimizer.load_state_dict(state)
    return json.loads((folder / STATE_FILE).read_text())
