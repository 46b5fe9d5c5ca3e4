"""Trend shapes: normal, inverse, U-shaped and flat scaling are told apart."""

import numpy as np
import pytest

from augury.scaling.diagnostics import lower_is_better, trend_shape

LOG_C = np.linspace(18, 23, 11)


@pytest.mark.parametrize("y, higher_is_better, shape", [
    (0.2 + 0.05 * (LOG_C - 18), True, "normal"),
    (0.7 - 0.05 * (LOG_C - 18), True, "inverse"),
    (0.5 + 0.02 * (LOG_C - 20.5) ** 2, True, "u-shaped"),  # worse, then better (Wei et al. 2022)
    (3.0 - 0.1 * (LOG_C - 18), False, "normal"),
    (0.25 + 1e-4 * np.sin(LOG_C * 7), True, "flat"),
    (0.25 + 0.5 / (1 + np.exp(-(LOG_C - 19.0) * 2)), True, "normal"),  # saturating, not U-shaped
])
def test_trend_shapes(y, higher_is_better, shape):
    noise = np.random.default_rng(0).normal(0, 1e-3, LOG_C.size)
    assert trend_shape(LOG_C, y + noise, higher_is_better)["shape"] == shape


def test_metric_direction_from_name():
    assert lower_is_better("eval/c4_en-validation/CrossEntropyLoss") and lower_is_better("hellaswag_bpb")
    assert not lower_is_better("hellaswag_acc")
