"""Learning-rate schedules: what each schedule's multiplier is at its ends, step by step."""

import math

import pytest

from augury.train.config import OptimConfig
from augury.train.schedule import lr_multiplier, warmup_steps


def test_warmup_rises_linearly_and_never_starts_at_zero():
    optim = OptimConfig(schedule="constant", warmup_steps=4)
    assert [lr_multiplier(s, 100, optim) for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]


def test_cosine_ends_exactly_at_the_floor():
    optim = OptimConfig(schedule="cosine", warmup_steps=10, min_lr_ratio=0.1)
    values = [lr_multiplier(s, 110, optim) for s in range(110)]
    assert values[9] == 1.0
    assert values[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(values[9:], values[10:]))  # never rises after warmup
    assert values[59] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))


def test_wsd_holds_then_decays_linearly_over_its_last_fraction():
    optim = OptimConfig(schedule="wsd", warmup_steps=0, decay_frac=0.2, min_lr_ratio=0.0)
    values = [lr_multiplier(s, 100, optim) for s in range(100)]
    assert values[:80] == [1.0] * 80
    assert values[80] == pytest.approx(0.95) and values[-1] == pytest.approx(0.0)


def test_wsd_with_no_decay_fraction_never_decays():
    # decay_frac 0 means a constant learning rate to the end, as its help says, not a last step at the floor
    optim = OptimConfig(schedule="wsd", warmup_steps=0, decay_frac=0.0, min_lr_ratio=0.1)
    assert [lr_multiplier(s, 50, optim) for s in range(50)] == [1.0] * 50


def test_warmup_fraction_is_of_the_whole_run():
    assert warmup_steps(200, OptimConfig(warmup_frac=0.05)) == 10
    assert warmup_steps(5, OptimConfig(warmup_steps=50)) == 5
