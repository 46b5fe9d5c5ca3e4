"""One optimizer step, shared by the training loop and the throughput benchmark.

    optimizer = make_optimizer(model, optim_cfg)
    loss = train_step(model, optimizer, micro_batches, autocast=rt.autocast, grad_clip=1.0)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable

import torch

from augury.train.config import OptimConfig


def make_optimizer(model, optim: OptimConfig, device_type: str = "cpu") -> torch.optim.AdamW:
    """AdamW over the model's parameter groups (µP learning-rate multipliers, no decay on embeddings/gains).

    The fused implementation (one kernel for all parameters) is used where this torch supports it.
    """
    kwargs = dict(lr=optim.lr if optim.lr is not None else 1e-3, betas=(optim.beta1, optim.beta2), eps=optim.eps)
    groups = model.param_groups(optim.weight_decay)
    try:
        return torch.optim.AdamW(groups, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):  # a device/dtype without a fused kernel
        return torch.optim.AdamW(model.param_groups(optim.weight_decay), **kwargs)


def train_step(model, optimizer, micro_batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
               autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
               grad_clip: float = 0.0, n_micro: int = 1, no_sync: Callable | None = None,
               clip_params=None) -> float:
    """Forward/backward over `n_micro` micro-batches (gradient accumulation), clip, step; returns the mean loss.

    `no_sync` (DDP's) skips the gradient all-reduce on all but the last micro-batch. The loss is returned before
    the optimizer step is taken only if it is finite; a non-finite loss skips the step and is returned as is,
    so the caller can stop without corrupting the weights.
    """
    total = None
    for i, (x, y) in enumerate(micro_batches):
        ctx = no_sync() if (no_sync is not None and i < n_micro - 1) else contextlib.nullcontext()
        with ctx, autocast():
            loss = model(x, targets=y)
        (loss / n_micro).backward()
        # Summed on the loss's device: one host synchronisation per step, not one per micro-batch, so the host
        # can queue the next micro-batch's kernels while the device still runs this one's.
        part = loss.detach().float() / n_micro
        total = part if total is None else total + part
    value = float(total)
    if value != value or value in (float("inf"), float("-inf")):
        optimizer.zero_grad(set_to_none=True)
        return value
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(clip_params if clip_params is not None else model.parameters(), grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return value
