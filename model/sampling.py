"""How to sample one completion: the settings every generator takes, free of torch.

A module of its own so that the settings object (and so the CLI's argument checks) can be
built without importing torch, which costs seconds at start-up; `model.generate` does the
sampling itself.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class SamplingSettings(BaseModel):
    max_new_tokens: int = Field(default=512, ge=1)
    temperature: float = Field(default=0.0, ge=0.0, description="0 means greedy")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    top_k: int = Field(default=0, ge=0, description="0 means no top-k cut")
    seed: int | None = None
    stop: list[str] = Field(default_factory=list)
