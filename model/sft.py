"""Supervised fine-tuning of a LoRA adapter on recorded episodes, with loss on sampled tokens only.

This uses TRL's `SFTTrainer`: it takes a pre-tokenized dataset whose `labels` are already -100 on
masked tokens and leaves those labels alone (no re-tokenizing, no chat template), and it brings the
Hugging Face Trainer's gradient accumulation, schedule, mixed precision and checkpoint/resume. Its
checkpoints (`OUT/checkpoint-N/`) hold the adapter files, so each is a loadable adapter, and
`model.lora.latest_checkpoint` finds them. The final adapter goes to `OUT/adapter/`.

Not here: choosing episodes (the caller keeps those whose reward clears a threshold), building
examples (`model.train_data`), attaching the adapter (`model.lora.attach`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, Field
from transformers import PrinterCallback, TrainerCallback

from model.lora import Progress, latest_checkpoint, save_adapter
from model.train_data import TrainExample


class SftSettings(BaseModel):
    learning_rate: float = Field(default=2e-4, gt=0)
    epochs: float = Field(default=1.0, gt=0)
    max_steps: int = Field(default=-1, description="optimizer steps; -1: from `epochs`")
    batch_size: int = Field(default=1, ge=1)
    grad_accum: int = Field(default=8, ge=1)
    max_length: int | None = Field(default=None, description="truncate longer examples")
    scheduler: str = "linear"
    warmup: float = Field(default=0.0, ge=0.0, description="steps; below 1: share of all")
    save_steps: int = Field(default=0, ge=0, description="checkpoint every N steps; 0: never")
    logging_steps: int = Field(default=1, ge=1)
    gradient_checkpointing: bool = False
    bf16: bool | None = Field(default=None, description="None: on where CUDA supports bf16")
    seed: int = 0


def train_sft(
    model: Any,
    tokenizer: Any,
    examples: Sequence[TrainExample],
    output_dir: str | Path,
    settings: SftSettings | None = None,
    resume: bool | str | Path = False,
    progress: Progress | None = None,
) -> dict[str, float]:
    """Train `model` (a PeftModel) in place; returns the final step and mean training loss.
    `resume`: True continues from the latest checkpoint under `output_dir` (if there is one),
    a path from that checkpoint."""
    from trl import SFTTrainer

    output_dir = Path(output_dir)
    s = settings or SftSettings()
    trainer = SFTTrainer(
        model=model,
        args=_config(s, output_dir),
        train_dataset=_dataset(examples),
        processing_class=tokenizer,
        callbacks=[_Reporter(progress)] if progress else None,
    )
    trainer.remove_callback(PrinterCallback)  # it prints every log line to stdout
    start = latest_checkpoint(output_dir) if resume is True else (resume or None)
    result = trainer.train(resume_from_checkpoint=str(start) if start else None)
    model.eval()  # the Trainer leaves train mode (LoRA dropout) on; the evals after must not
    if trainer.is_world_process_zero():  # under `accelerate launch`, one writer
        save_adapter(trainer.model, output_dir / "adapter")
    return {"step": float(result.global_step), "loss": float(result.training_loss)}


def _dataset(examples: Sequence[TrainExample]) -> Any:
    from datasets import Dataset

    rows = [{"input_ids": e.input_ids, "labels": e.labels} for e in examples if e.sampled]
    if not rows:
        raise ValueError("no example has a sampled token to train on")
    return Dataset.from_list(rows)


def _config(s: SftSettings, output_dir: Path) -> Any:
    from trl import SFTConfig

    bf16 = s.bf16
    if bf16 is None:
        bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return SFTConfig(
        output_dir=str(output_dir),
        learning_rate=s.learning_rate,
        num_train_epochs=s.epochs,
        max_steps=s.max_steps,
        per_device_train_batch_size=s.batch_size,
        gradient_accumulation_steps=s.grad_accum,
        max_length=s.max_length,
        lr_scheduler_type=s.scheduler,
        warmup_steps=s.warmup,
        save_strategy="steps" if s.save_steps else "no",
        save_steps=s.save_steps or 500,
        logging_steps=s.logging_steps,
        activation_checkpointing=s.gradient_checkpointing,
        dataloader_pin_memory=torch.cuda.is_available(),
        bf16=bf16,
        seed=s.seed,
        report_to="none",
        disable_tqdm=True,
        dataset_num_proc=None,
    )


class _Reporter(TrainerCallback):
    """Hands each Trainer log line ({"loss", "learning_rate", ...}) to `progress`."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **_: Any) -> None:
        numbers = {k: float(v) for k, v in (logs or {}).items() if isinstance(v, int | float)}
        self.progress({"step": float(state.global_step), **numbers})
