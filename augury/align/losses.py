"""Post-training losses, each equal to its reference implementation in TRL / transformers (tests/align).

    loss = masked_token_loss(logits, targets, mask, n_tokens)   # SFT: per token over the whole optimizer step
    loss = bradley_terry_loss(r_chosen, r_rejected, margin, center_rewards_coefficient)  # reward model
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_token_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, n_tokens: int) -> torch.Tensor:
    """Summed next-token cross-entropy over the masked positions, divided by `n_tokens`.

    logits (B, T, V) predict targets (B, T); mask (B, T) marks the positions that count. `n_tokens` is the number
    of counted positions in the whole optimizer step (every micro-batch and accumulation step), so summing the
    micro-batches' losses gives the mean over tokens, whatever the micro-batches hold; a micro-batch with no counted
    token contributes exactly 0 (never NaN).
    """
    ce = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none")
    return (ce * mask.reshape(-1).to(ce.dtype)).sum() / max(int(n_tokens), 1)


def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor, margin: torch.Tensor | None = None,
                       center_rewards_coefficient: float | None = None) -> torch.Tensor:
    """-log sigmoid(r_chosen - r_rejected - margin), averaged over the pairs (TRL's RewardTrainer: `margin` is
    the data's optional per-pair column, how far chosen should score above rejected), plus
    `center_rewards_coefficient` x mean((r_chosen + r_rejected)^2) when it is set (TRL's: it keeps the rewards
    near zero, whose offset the pairwise loss leaves free)."""
    diff = r_chosen - r_rejected
    loss = -F.logsigmoid(diff if margin is None else diff - margin).mean()
    if center_rewards_coefficient is not None:
        loss = loss + center_rewards_coefficient * torch.mean((r_chosen + r_rejected) ** 2)
    return loss
