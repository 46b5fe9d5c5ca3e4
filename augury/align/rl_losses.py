"""RLHF objectives: KL estimators, advantages (GAE, group-relative, leave-one-out), clipped policy and value losses.

    adv = group_advantages(rewards, group_size=4)                 # GRPO: (r - mean_group) / (std_group + 1e-4)
    loss, clip_frac = clipped_policy_loss(logp, old_logp, adv[:, None], mask, cliprange=0.2)
    adv, returns = gae(token_rewards, values, mask, gamma=1.0, lam=0.95)   # PPO with a value head

Settings use TRL's names (`cliprange`, `vf_coef`, `gamma`, `lam`, `kl_coef`). Tensors are (B, T) over completion
tokens with a 0/1 `mask`; the group-relative losses equal TRL's GRPO trainer on the same inputs
(tests/align/test_rl_losses.py). `augury rl`, the loop that uses them, is not written yet.
"""

from __future__ import annotations

import torch


def kl_k1(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token log-ratio log π − log π_ref (unbiased, can be negative)."""
    return logp - ref_logp


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimator exp(ref − logp) − (ref − logp) − 1 (non-negative, low variance; TRL's GRPO)."""
    d = ref_logp - logp
    return torch.exp(d) - d - 1


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim=None) -> torch.Tensor:
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1.0)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1.0)


def whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """(x − mean) / std over the masked entries (the mean is kept when shift_mean is False)."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    out = (x - mean) * torch.rsqrt(var + 1e-8)
    return out if shift_mean else out + mean


def group_advantages(rewards: torch.Tensor, group_size: int, scale: bool = True) -> torch.Tensor:
    """GRPO: each completion's reward minus its group's mean, divided by the group's std (+1e-4) when `scale`.

    `rewards` (N,) holds groups of `group_size` consecutive completions of one prompt.
    """
    grouped = rewards.view(-1, group_size)
    adv = (grouped - grouped.mean(1, keepdim=True)).view(-1)
    if scale:
        std = grouped.std(1).repeat_interleave(group_size)
        adv = adv / (std + 1e-4)
    return adv


def rloo_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """RLOO: each completion's reward minus the mean of the other completions of its prompt."""
    grouped = rewards.view(-1, group_size)
    others = (grouped.sum(1, keepdim=True) - grouped) / (group_size - 1)
    return (grouped - others).view(-1)


def clipped_policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                        cliprange: float) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped surrogate, per token, averaged per sequence then over sequences (TRL's "grpo" loss type).

    Returns (loss, clip fraction: the share of counted tokens where the clipped term was taken).
    """
    ratio = torch.exp(logp - old_logp)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1 - cliprange, 1 + cliprange) * advantages
    per_token = -torch.min(unclipped, clipped)
    loss = masked_mean(per_token, mask, dim=-1).mean()
    clip_frac = masked_mean((clipped < unclipped).to(logp.dtype), mask)
    return loss, clip_frac


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float,
        lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over (B, T) token rewards and values; (advantages, returns)."""
    T = rewards.shape[1]
    adv = torch.zeros_like(rewards)
    last = torch.zeros(rewards.shape[0], dtype=rewards.dtype, device=rewards.device)
    m = mask.to(rewards.dtype)
    for t in reversed(range(T)):
        next_value = values[:, t + 1] * m[:, t + 1] if t + 1 < T else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last = (delta + gamma * lam * last * (m[:, t + 1] if t + 1 < T else 0.0)) * m[:, t]
        adv[:, t] = last
    return adv, adv + values


def clipped_value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
                       cliprange_value: float) -> torch.Tensor:
    """0.5 · max((v − R)², (clip(v, v_old ± ε) − R)²), averaged over counted tokens (multiply by vf_coef)."""
    clipped = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    return 0.5 * masked_mean(torch.max((values - returns) ** 2, (clipped - returns) ** 2), mask)
