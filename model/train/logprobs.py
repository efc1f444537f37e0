"""Log-probabilities of the sampled tokens, under the policy and under the reference.

The policy is the model with its LoRA adapter on; the reference is the same model with the adapter
disabled (`PeftModel.disable_adapter()`), so no second copy of the weights is ever held. Only the
logits from the first sampled token on are computed (`logits_to_keep`): in a multi-turn episode
the long prompt needs no vocabulary projection, which is most of the memory of a forward pass.

Not here: the losses built on these (`model.train.dpo`, `model.train.grpo`); SFT computes its own
(`model.train.sft`).
"""

from __future__ import annotations

from typing import Any

import torch

from model.train.data import Batch


def device_of(model: Any) -> torch.device:
    return next(model.parameters()).device


def sampled_logps(model: Any, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(logps, mask), both [B, K]: the log-prob of every token from the batch's first sampled
    token on, given the tokens before it, and 1.0 where that token was sampled."""
    batch = batch.to(device_of(model))
    sampled = batch.mask.any(dim=0).nonzero()
    first = max(1, int(sampled[0])) if len(sampled) else batch.input_ids.shape[1] - 1
    keep = batch.input_ids.shape[1] - first + 1
    out = model(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        logits_to_keep=keep,
        use_cache=False,
    )
    logits = out.logits[:, :-1].float()  # position i predicts token i + 1
    targets = batch.input_ids[:, first:].unsqueeze(-1)
    logps = logits.gather(-1, targets).squeeze(-1) - logits.logsumexp(-1)
    return logps, batch.mask[:, first:].to(logps.dtype)


@torch.no_grad()
def reference_logps(model: Any, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """`sampled_logps` with the LoRA adapter disabled: the base model the policy started from."""
    with model.disable_adapter():
        return sampled_logps(model, batch)


def sequence_logps(logps: torch.Tensor, mask: torch.Tensor, mean: bool = False) -> torch.Tensor:
    """[B]: the sum (or, with `mean`, the average) of each row's sampled-token log-probs."""
    total = (logps * mask).sum(-1)
    return total / mask.sum(-1).clamp(min=1) if mean else total
