"""RLHF objectives: KL estimators, advantages (GAE, group-relative, leave-one-out), clipped policy and value losses.

    adv = group_advantages(rewards, group_size=4)                 # GRPO: (r - mean_group) / (std_group + 1e-4)
    loss, clip_frac = clipped_policy_loss(logp, old_logp, adv[:, None], mask, cliprange=0.2)
    adv, returns = gae(token_rewards, values, mask, gamma=1.0, lam=0.95)   # PPO with a value head

Settings use TRL's names (`cliprange`, `vf_coef`, `gamma`, `lam`, `kl_coef`). Tensors are (B, T) over completion
tokens with a 0/1 `mask`; the group-relative losses equal TRL's GRPO trainer on the same inputs
(tests/align/test_rl_losses.py), unscored (NaN) rewards included; the leave-one-out advantages equal TRL's
RLOOTrainer's on the same rewards, but `augury rl --algorithm rloo` uses them in the GRPO loss (per-token ratio, k3
KL in the loss), not in RLOOTrainer's (sequence-level ratio, KL in the reward): docs/align.md. `augury rl`
(augury/align/rl.py) is the loop that uses them.
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


def nanstd(x: torch.Tensor, dim: int) -> torch.Tensor:
    """The sample std (Bessel's correction) over the entries that are not NaN; NaN where fewer than two are
    (TRL's `nanstd`)."""
    count = (~torch.isnan(x)).sum(dim, keepdim=True)
    var = torch.nanmean((x - torch.nanmean(x, dim, keepdim=True)) ** 2, dim, keepdim=True)
    var = torch.where(count > 1, var * count / (count - 1).clamp(min=1), torch.full_like(var, float("nan")))
    return var.sqrt().squeeze(dim)


def group_advantages(rewards: torch.Tensor, group_size: int, scale: bool = True) -> torch.Tensor:
    """GRPO: each completion's reward minus its group's mean, divided by the group's std (+1e-4) when `scale`.

    `rewards` (N,) holds groups of `group_size` consecutive completions of one prompt. A NaN reward (a completion
    that could not be scored) is left out of its group's mean and std and gets advantage 0, as in TRL's
    GRPOTrainer; so does every completion of a group with fewer than two scored ones when `scale`.
    """
    grouped = rewards.view(-1, group_size)
    adv = grouped - torch.nanmean(grouped, 1, keepdim=True)
    if scale:
        adv = adv / (nanstd(grouped, 1)[:, None] + 1e-4)
    return torch.nan_to_num(adv, nan=0.0).view(-1)


def rloo_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """RLOO: each completion's reward minus the mean of the other scored completions of its prompt. A NaN reward
    is left out of the others' baselines and gets advantage 0, as does a group's only scored completion (TRL's
    RLOOTrainer)."""
    grouped = rewards.view(-1, group_size)
    count = (~torch.isnan(grouped)).sum(1, keepdim=True)
    others = (torch.nansum(grouped, 1, keepdim=True) - grouped) / (count - 1)
    return torch.nan_to_num(grouped - others, nan=0.0).view(-1)


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
