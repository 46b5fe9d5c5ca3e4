"""Synthetic recovery: data drawn from known parameters with noise; the 90% bootstrap intervals must cover
the true values in 85-95% of 200 seeded trials (a mis-sized or biased bootstrap fails this).

The default run uses the two-parameter `capability` law; the `slow` variant uses `gpt4-loss` (three
parameters, one of them the irreducible loss).
"""

import numpy as np
import pytest

from augury.scaling import fit_law
from tests.trials import trial_map

TRIALS = 200


def _trial(args) -> dict[str, tuple[float, float]]:
    """The 90% intervals of one fit to a ladder drawn with its trial's seed."""
    law, column, make_y, n_points, resamples, trial = args
    rng = np.random.default_rng(10_000 + trial)
    flops = np.geomspace(1e17, 1e21, n_points)
    y = make_y(flops) * np.exp(rng.normal(0.0, 0.01, n_points))
    res = fit_law(law, {"flops": flops, column: y}, bootstrap=resamples, seed=trial)
    assert res.converged
    return res.param_intervals()


def _coverage(law: str, truth: dict, column: str, make_y, n_points: int, resamples: int) -> dict[str, float]:
    hits = {k: 0 for k in truth}
    for intervals in trial_map(_trial, [(law, column, make_y, n_points, resamples, t) for t in range(TRIALS)]):
        for k, (lo, hi) in intervals.items():
            if k in truth:
                hits[k] += lo <= truth[k] <= hi
    coverage = {k: v / TRIALS for k, v in hits.items()}
    print(f"{law}: 90% interval coverage over {TRIALS} trials: {coverage}")  # shown with pytest -s
    return coverage


CAPABILITY = {"alpha": 7.4, "k": 0.05}
GPT4_LOSS = {"a": 40.0, "b": -0.08, "c": 1.7}


def _capability(c):  # module-level (not a lambda): the trials' processes get it by name
    return CAPABILITY["alpha"] * c ** -CAPABILITY["k"]


def _gpt4_loss(c):
    return GPT4_LOSS["a"] * c ** GPT4_LOSS["b"] + GPT4_LOSS["c"]


@pytest.mark.integration
def test_capability_intervals_cover_truth():
    cov = _coverage("capability", CAPABILITY, "neg_log_pass_rate", _capability, 15, 100)
    for k, v in cov.items():
        assert 0.85 <= v <= 0.95, f"{k}: 90% intervals covered the truth in {v:.1%} of {TRIALS} trials"


@pytest.mark.slow
def test_gpt4_loss_intervals_cover_truth():
    cov = _coverage("gpt4-loss", GPT4_LOSS, "loss", _gpt4_loss, 20, 200)
    for k, v in cov.items():
        assert 0.85 <= v <= 0.95, f"{k}: 90% intervals covered the truth in {v:.1%} of {TRIALS} trials"
