"""Learning-rate schedules as pure functions of the step: warmup + cosine, warmup-stable-decay, constant.

`lr_multiplier(step, total, optim)` returns the multiplier (0..1] applied to the peak learning rate at optimizer step
`step` (0-based). Being a pure function of the step is what makes resuming exact.
"""

from __future__ import annotations

import math

from augury.train.config import OptimConfig


def warmup_steps(total: int, optim: OptimConfig) -> int:
    if optim.warmup_steps is not None:
        return min(optim.warmup_steps, total)
    return min(total, int(round(optim.warmup_frac * total)))


def lr_multiplier(step: int, total: int, optim: OptimConfig) -> float:
    warm = warmup_steps(total, optim)
    if step < warm:
        return (step + 1) / warm
    floor = optim.min_lr_ratio
    if optim.schedule == "constant":
        return 1.0
    if optim.schedule == "cosine":
        span = max(1, total - warm)
        progress = min(1.0, (step - warm + 1) / span)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    if optim.schedule == "wsd":
        decay = int(round(optim.decay_frac * total))
        if decay == 0:  # decay_frac 0 (or too small for one step of this run): the rate holds to the end
            return 1.0
        start = total - decay
        if step < start:
            return 1.0
        progress = min(1.0, (step - start + 1) / decay)
        return 1.0 - (1 - floor) * progress
    raise ValueError(f"unknown schedule {optim.schedule!r}")
