"""RL objectives against TRL's GRPO trainer on the same tensors, and GAE / RLOO / k3 on cases with known values."""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

from augury.align.rl_losses import (
    clipped_policy_loss,
    clipped_value_loss,
    gae,
    group_advantages,
    kl_k3,
    masked_mean,
    rloo_advantages,
)

trl = pytest.importorskip("trl")


def _trl_grpo_loss(logp, old_logp, ref_logp, advantages, mask, beta, eps, metrics=None):
    """TRL's GRPOTrainer._compute_loss on given per-token log-probs (the model call replaced by those); the metrics
    it logs go to `metrics` (a dict of lists) when given."""
    from trl.trainer.grpo_trainer import GRPOTrainer

    identity = SimpleNamespace(gather=lambda x: x, gather_for_metrics=lambda x: x, num_processes=1,
                               reduce=lambda x, reduction="mean": x)
    fake = SimpleNamespace(
        top_entropy_quantile=1.0, off_policy_mask_threshold=None, importance_sampling_level="token", beta=beta,
        loss_type="grpo", epsilon_low=eps, epsilon_high=eps, aux_loss_enabled=False, entropy_coef=0.0,
        use_vllm=False, vllm_importance_sampling_correction=False, _entropy_bonus_enabled=False,
        use_adaptive_entropy=False, router_aux_loss_coef=0.0, max_completion_length=9,
        current_gradient_accumulation_steps=1, model=SimpleNamespace(training=False), accelerator=identity,
        args=SimpleNamespace(use_bias_correction_kl=False, delta=None, entropy_coef=0.0),
        _metrics={"train": defaultdict(list), "eval": metrics if metrics is not None else defaultdict(list)},
        _get_per_token_logps_and_entropies=lambda *a, **k: (logp, torch.zeros_like(logp), None))
    B, T = logp.shape
    inputs = {"prompt_ids": torch.zeros(B, 2, dtype=torch.long), "prompt_mask": torch.ones(B, 2),
              "completion_ids": torch.zeros(B, T, dtype=torch.long), "completion_mask": mask,
              "advantages": advantages, "old_per_token_logps": old_logp, "ref_per_token_logps": ref_logp}
    return GRPOTrainer._compute_loss(fake, None, inputs)


def test_grpo_clipped_loss_with_k3_penalty_equals_trl():
    torch.manual_seed(0)
    B, T = 6, 9
    logp, old_logp, ref_logp = (-torch.rand(B, T) * 3 for _ in range(3))
    mask = (torch.rand(B, T) > 0.2).float()
    rewards = torch.randn(B)
    adv = group_advantages(rewards, group_size=3)
    beta, eps = 0.04, 0.2
    ours_pg, _ = clipped_policy_loss(logp, old_logp, adv[:, None], mask, cliprange=eps)
    ours = ours_pg + beta * masked_mean(kl_k3(logp, ref_logp), mask, dim=-1).mean()
    theirs = _trl_grpo_loss(logp, old_logp, ref_logp, adv, mask, beta, eps)
    assert float(ours) == pytest.approx(float(theirs), abs=1e-5)


def test_clip_fraction_and_completions_left_out_of_the_loss_match_trl():
    """The clip fraction is TRL's clip_ratio/region_mean, and a completion masked out whole (unscored, or cut off with
    mask_truncated_completions) still counts in the mean over completions, as in TRL's "grpo" loss."""
    torch.manual_seed(1)
    B, T = 6, 7
    old_logp, ref_logp = -torch.rand(B, T) * 3, -torch.rand(B, T) * 3
    logp = old_logp + torch.randn(B, T) * 0.4  # a later epoch: the ratio has moved past the clip range
    mask = (torch.rand(B, T) > 0.2).float()
    mask[2] = 0.0
    adv = group_advantages(torch.tensor([1.0, 0.0, float("nan"), 3.0, 3.0, 3.0]), group_size=3)
    metrics = defaultdict(list)
    theirs = _trl_grpo_loss(logp, old_logp, ref_logp, adv, mask, 0.1, 0.2, metrics)
    ours_pg, clip_frac = clipped_policy_loss(logp, old_logp, adv[:, None], mask, cliprange=0.2)
    ours = ours_pg + 0.1 * masked_mean(kl_k3(logp, ref_logp), mask, dim=-1).mean()
    assert float(ours) == pytest.approx(float(theirs), abs=1e-5)
    assert 0 < float(clip_frac) < 1
    assert float(clip_frac) == pytest.approx(metrics["clip_ratio/region_mean"][0], abs=1e-6)
    assert float(masked_mean(kl_k3(logp, ref_logp), mask)) == pytest.approx(metrics["kl"][0], abs=1e-6)


def test_group_advantages_match_trl_nanstd_scaling():
    from trl.trainer.utils import nanstd

    rewards = torch.tensor([1.0, 0.0, 0.5, 2.0, 2.0, 2.0, -1.0, 3.0, 0.0])
    grouped = rewards.view(-1, 3)
    expected = (rewards - grouped.mean(1).repeat_interleave(3)) / (nanstd(grouped, dim=1).repeat_interleave(3) + 1e-4)
    assert torch.allclose(group_advantages(rewards, 3), expected, atol=1e-6)
    assert torch.all(group_advantages(rewards, 3)[3:6] == 0)  # a group with one reward learns nothing


def _trl_advantages(rewards: torch.Tensor, G: int) -> tuple[torch.Tensor, torch.Tensor]:
    """TRL's GRPOTrainer ("group" scaling) and RLOOTrainer (no KL, no normalisation) advantages on summed rewards
    where an unscorable completion is NaN, as in their `_generate_and_score_completions`."""
    from trl.trainer.utils import nanstd

    mean = torch.nanmean(rewards.view(-1, G), dim=1).repeat_interleave(G, dim=0)
    std = nanstd(rewards.view(-1, G), dim=1).repeat_interleave(G, dim=0)
    grpo = torch.nan_to_num((rewards - mean) / (std + 1e-4), nan=0.0)
    grouped = rewards.view(-1, G)
    counts = (~torch.isnan(grouped)).sum(dim=1, keepdim=True)
    baselines = ((torch.nansum(grouped, dim=1, keepdim=True) - grouped) / (counts - 1)).view(-1)
    return grpo, torch.nan_to_num(rewards - baselines, nan=0.0)


def test_unscored_rewards_are_left_out_of_the_group_baseline_and_std_as_in_trl():
    from trl.trainer.utils import nanstd as trl_nanstd

    from augury.align.rl_losses import nanstd

    nan = float("nan")
    rewards = torch.tensor([1.0, 0.0, nan, nan,  1.0, 0.0, 0.7, 0.2,  nan, 2.0, nan, nan,  nan, nan, nan, nan])
    grpo, rloo = group_advantages(rewards, 4), rloo_advantages(rewards, 4)
    theirs_grpo, theirs_rloo = _trl_advantages(rewards, 4)
    assert torch.allclose(grpo, theirs_grpo, atol=1e-6) and torch.allclose(rloo, theirs_rloo, atol=1e-6)
    assert grpo[:4].tolist() == pytest.approx([0.7071, -0.7071, 0.0, 0.0], abs=1e-3)
    assert rloo[:4].tolist() == pytest.approx([1.0, -1.0, 0.0, 0.0])
    assert torch.all(grpo[8:] == 0) and torch.all(rloo[8:] == 0)  # one scored completion, or none: no signal
    assert torch.allclose(nanstd(rewards.view(-1, 4), 1), trl_nanstd(rewards.view(-1, 4), dim=1), equal_nan=True)
    full = torch.randn(12)
    assert torch.allclose(rloo_advantages(full, 3), _trl_advantages(full, 3)[1], atol=1e-6)


def test_rloo_k3_gae_and_value_loss_on_known_values():
    assert torch.allclose(rloo_advantages(torch.tensor([1.0, 0.0, 2.0, 4.0]), 2), torch.tensor([1.0, -1.0, -2.0, 2.0]))
    assert float(kl_k3(torch.tensor(-1.0), torch.tensor(-1.0))) == 0.0
    assert float(kl_k3(torch.tensor(-2.0), torch.tensor(-1.0))) > 0 and float(kl_k3(torch.tensor(-1.0),
                                                                                      torch.tensor(-2.0))) > 0
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    values = torch.tensor([[0.5, 0.5, 0.5]])
    adv, ret = gae(rewards, values, torch.ones(1, 3), gamma=1.0, lam=1.0)
    assert torch.allclose(ret, torch.tensor([[1.0, 1.0, 1.0]]))  # lam=1, gamma=1: returns are reward-to-go
    assert torch.allclose(adv, torch.tensor([[0.5, 0.5, 0.5]]))
    adv0, _ = gae(rewards, values, torch.ones(1, 3), gamma=1.0, lam=0.0)
    assert torch.allclose(adv0, torch.tensor([[0.0, 0.0, 0.5]]))  # lam=0: one-step TD errors
    v = torch.tensor([[2.0]])
    assert float(clipped_value_loss(v, torch.tensor([[0.0]]), torch.tensor([[0.0]]), torch.ones(1, 1), 0.2)) == 2.0
