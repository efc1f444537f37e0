"""Log-probabilities of the sampled tokens, under the policy and under the reference.

The policy is the model with its LoRA adapter on; the reference is the same model with the adapter
disabled (`PeftModel.disable_adapter()`), so no second copy of the weights is ever held. Only the
logits that predict a sampled token are computed (`logits_to_keep` as the positions): the
prompt, and a tool's output between two turns, need no vocabulary projection, which is most of
the memory of a forward pass. Keeping every position from the first sampled token on, as this
did, a pair with a 4,600-token python output between its turns spent gigabytes on two rows of
[4,600, 151,936] logits, a float copy and their gradients.

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
    """(logps, mask), both [B, K]: the log-prob of each of the K tokens that some row of the
    batch sampled (in order), given the tokens before it, and 1.0 where this row sampled it."""
    batch = batch.to(device_of(model))
    tokens = batch.mask[:, 1:].any(dim=0).nonzero().squeeze(-1) + 1  # the first token has no logit
    if not len(tokens):
        tokens = torch.tensor([batch.input_ids.shape[1] - 1], device=batch.input_ids.device)
    # No padding mask: padding is on the right, so under causal attention no real token sees
    # it, and without a mask SDPA may take its causal kernel, memory linear in the length, where
    # a mask takes the math path and its [rows, heads, T, T] scores. (Not enough on its own for
    # a 4,960-token pair: `model.train.loop.checkpoint_if_long` is what kept it under 24 GB.)
    out = model(
        input_ids=batch.input_ids,
        logits_to_keep=tokens - 1,  # position i predicts token i + 1
        use_cache=False,
    )
    logits = out.logits.float()
    targets = batch.input_ids[:, tokens].unsqueeze(-1)
    logps = logits.gather(-1, targets).squeeze(-1) - logits.logsumexp(-1)
    return logps, batch.mask[:, tokens].to(logps.dtype)


@torch.no_grad()
def reference_logps(model: Any, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """`sampled_logps` with the LoRA adapter disabled: the base model the policy started from."""
    with model.disable_adapter():
        return sampled_logps(model, batch)


def sequence_logps(logps: torch.Tensor, mask: torch.Tensor, mean: bool = False) -> torch.Tensor:
    """[B]: the sum (or, with `mean`, the average) of each row's sampled-token log-probs."""
    total = (logps * mask).sum(-1)
    return total / mask.sum(-1).clamp(min=1) if mean else total
