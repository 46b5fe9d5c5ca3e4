"""Prediction intervals hold their level for a new run: on synthetic ladders with known truth and 2% log-normal
scatter, the 90% interval of `FitResult.predict` must cover a fresh noisy run at the same compute about 90% of the
time, inside the data and extrapolated. Drawing the fit's own residuals as the scatter covered 75-80% on 5-8 runs."""

from __future__ import annotations

import numpy as np
import pytest

from augury.scaling import fit_law
from tests.trials import trial_map

TRIALS = 200
SIGMA = 0.02
TARGETS = np.array([1e19, 1e21, 1e22])  # inside the data, 1 and 2 decades beyond


def _trial(args) -> np.ndarray:
    """Whether the 90% interval of a fit to one noisy ladder covers each target's fresh noisy run."""
    law, column, flops, y, new_run, seed = args
    res = fit_law(law, {"flops": flops, column: y}, bootstrap=200, seed=seed)
    _, interval = res.predict({"flops": TARGETS})
    return (interval[:, 0] <= new_run) & (new_run <= interval[:, 1])


def _coverage(law: str, column: str, truth, n_points: int) -> np.ndarray:
    rng = np.random.default_rng(123)
    flops = np.geomspace(1e18, 1e20, n_points)
    trials = []
    for trial in range(TRIALS):  # the draws in the order of one loop, whatever process fits them
        y = truth(flops) * np.exp(SIGMA * rng.standard_normal(n_points))
        new_run = truth(TARGETS) * np.exp(SIGMA * rng.standard_normal(len(TARGETS)))
        trials.append((law, column, flops, y, new_run, trial))
    return np.sum(trial_map(_trial, trials), axis=0) / TRIALS


@pytest.mark.parametrize("law, column, truth, n_points", [
    ("power-loss", "loss", lambda c: 30 * c ** -0.05, 8),
    ("capability", "neg_log_pass_rate", lambda c: 5.0 * c ** -0.05, 5),
    pytest.param("gpt4-loss", "loss", lambda c: 30 * c ** -0.08 + 1.7, 8, marks=pytest.mark.slow),
])
def test_a_new_run_is_covered_at_the_nominal_level(law, column, truth, n_points):
    coverage = _coverage(law, column, truth, n_points)
    # 200 trials: a binomial standard error of 2.1 points at 90%; a little over is width, not a wrong number
    assert np.all((0.85 <= coverage) & (coverage <= 0.96)), f"{law}: coverage {coverage} at nominal 0.9"
