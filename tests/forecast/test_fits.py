"""The forecast's fits: the checks pass a clean law and flag a regime change; the intervals hold their level; the
capability protocol recovers a known law."""

from __future__ import annotations

import numpy as np
import pytest

from augury.forecast.config import FitConfig
from augury.forecast.fits import fit_capability_forecast, fit_loss
from tests.trials import trial_map


def rows_from(flops, losses):
    return [{"name": f"rung{i + 1}", "flops": float(c), "loss": float(v)}
            for i, (c, v) in enumerate(zip(flops, losses))]


def test_clean_power_law_is_reliable_and_accurate():
    a, b, c = 40.0, -0.12, 1.5
    flops = np.geomspace(1e10, 1e11, 6)
    rng = np.random.default_rng(0)
    losses = (a * flops ** b + c) * np.exp(rng.normal(0, 0.001, flops.size))
    out, _ = fit_loss(rows_from(flops, losses), 3e12, FitConfig(bootstrap=200), seed=0)
    truth = a * 3e12 ** b + c
    assert out.reliable, out.flags
    assert out.predicted == pytest.approx(truth, rel=0.03)
    assert out.interval[0] <= truth <= out.interval[1]


def test_a_ladder_no_longer_than_the_law_has_parameters_is_refused():
    # three rungs, a three-parameter law: it passes through every rung, and its interval had zero width
    from augury.scaling import TableError

    three = rows_from([1e14, 1e15, 1e16], [4.1, 3.62, 3.3])
    with pytest.raises(TableError, match="3 rows but law 'gpt4-loss' has 3 parameters"):
        fit_loss(three, 3.3e17, FitConfig(law="gpt4-loss", bootstrap=200), seed=0)
    # one rung more fits, but leaves too few rungs for the leave-largest-out backtest: flagged, not skipped
    four = rows_from([1e14, 1e15, 1e16, 1e17], [4.1, 3.62, 3.3, 3.09])
    out, _ = fit_loss(four, 3.3e18, FitConfig(law="gpt4-loss", bootstrap=200), seed=0)
    assert out.backtest_largest_rung is None and not out.reliable
    assert any("leave-largest-out backtest not run" in f for f in out.flags), out.flags



def test_a_backtest_whose_forecast_is_refused_is_a_flag_not_a_crash(monkeypatch):
    # the leave-largest-out fit (seeded seed + 7) with too few converged resamples refuses its forecast (value,
    # error and interval None): fit_loss died on abs(None) instead of recording the backtest as not scored
    import augury.scaling.result as result_mod

    real = result_mod.bootstrap_fits

    def backtest_mostly_unconverged(problem, theta, groups, n, seed, **kwargs):
        out = real(problem, theta, groups, n, seed, **kwargs)
        if seed == 7:
            out.converged[3:] = False
        return out

    monkeypatch.setattr(result_mod, "bootstrap_fits", backtest_mostly_unconverged)
    flops = np.geomspace(1e10, 1e11, 6)
    losses = (40.0 * flops ** -0.12 + 1.5) * np.exp(np.random.default_rng(0).normal(0, 0.001, flops.size))
    out, _ = fit_loss(rows_from(flops, losses), 3e12, FitConfig(bootstrap=200), seed=0)
    assert out.backtest_largest_rung is None and not out.reliable
    assert any("leave-largest-out backtest could not be scored" in f and "resamples converged" in f
               for f in out.flags), out.flags

@pytest.mark.integration
def test_power_loss_forecast_of_a_ladder_far_above_its_floor():
    # the cpu-demo regime: a one-decade ladder far above the irreducible loss, rungs with ~0.5% noise
    a, b = 30.0, -0.075
    flops = np.geomspace(5e10, 9e11, 5)
    rng = np.random.default_rng(1)
    losses = a * flops ** b * np.exp(rng.normal(0, 0.004, flops.size))
    out, _ = fit_loss(rows_from(flops, losses), 2.6e13, FitConfig(law="power-loss", bootstrap=300), seed=0)
    truth = a * 2.6e13 ** b
    assert out.reliable, out.flags
    assert out.predicted == pytest.approx(truth, rel=0.02)
    assert out.interval[0] <= truth <= out.interval[1]
    assert set(out.law["parameters"]) == {"a", "b"}
    assert out.law_form_sensitivity["other_law"] == "gpt4-loss" and "prediction" in out.law_form_sensitivity


def _covers_the_target(args) -> tuple[bool, float]:
    """(the interval covers the target's run, the interval's high/low ratio) for one drawn ladder."""
    flops, seeds, target, actual, cfg = args
    rows = [{"name": f"rung{i + 1}", "flops": float(c), "loss": float(s.mean()), "seed_losses": s.tolist()}
            for i, (c, s) in enumerate(zip(flops, seeds))]
    out, _ = fit_loss(rows, target, cfg, seed=0)
    return out.interval[0] <= actual <= out.interval[1], out.interval[1] / out.interval[0]


@pytest.mark.integration
def test_prediction_interval_covers_a_new_run_at_its_level():
    # 4 rungs x 2 seeds with 0.6% seed noise, and a target that is itself one noisy run 1.5 decades out: the
    # regression prediction interval must cover it ~90% of the time (the bootstrap over 4 rungs does not)
    a, b = 30.0, -0.065
    flops = np.geomspace(1.3e11, 1e12, 4)
    target = 3.3e13
    cfg = FitConfig(law="power-loss", interval="prediction", huber_delta=0.02, bootstrap=0)
    rng = np.random.default_rng(0)
    trials = []
    for _ in range(200):  # the draws in the order of one loop, whatever process fits them
        seeds = [a * c ** b * np.exp(rng.normal(0, 0.006, 2)) for c in flops]
        trials.append((flops, seeds, target, a * target ** b * np.exp(rng.normal(0, 0.006)), cfg))
    covered, widths = zip(*trial_map(_covers_the_target, trials))
    assert 0.84 <= np.mean(covered) <= 0.96
    assert np.median(widths) < 1.08  # and it is a forecast, not a shrug: about ±3.5% here


def test_random_effects_interval_covers_when_rungs_sit_off_the_line():
    # each rung (and the target) deviates from the law by its own 0.5% (tau) on top of 0.6% seed noise: the
    # regression interval, taking the 12 runs as independent, under-covers; the random-effects one holds its level
    from augury.forecast.fits import prediction_interval, random_effects_interval

    a, b, tau, sigma = 30.0, -0.065, 0.005, 0.006
    flops = np.geomspace(1.3e11, 1e12, 4)
    target = 3.3e13
    rng = np.random.default_rng(0)

    class Line:  # least squares through the rung means in log-log, as the power-loss fit does
        def __init__(self, rows):
            self.theta = np.polyfit(np.log([r["flops"] for r in rows]), np.log([r["loss"] for r in rows]), 1)
            self.law = self

        def predict(self, theta, inputs):
            return [np.exp(np.polyval(theta, np.log(inputs["flops"])))]

    hits = {"prediction": [], "random-effects": []}
    for _ in range(1000):
        rows = []
        for i, c in enumerate(flops):
            seeds = a * c ** b * np.exp(rng.normal(0, tau) + rng.normal(0, sigma, 3))
            rows.append({"name": f"rung{i + 1}", "flops": float(c), "loss": float(np.exp(np.log(seeds).mean())),
                         "seed_losses": seeds.tolist()})
        actual = a * target ** b * np.exp(rng.normal(0, tau) + rng.normal(0, sigma))
        line = Line(rows)
        for name, how in (("prediction", prediction_interval), ("random-effects", random_effects_interval)):
            lo, hi = how(line, rows, "flops", "loss", target, 0.9)
            hits[name].append(lo <= actual <= hi)
    assert np.mean(hits["prediction"]) < 0.82
    assert 0.86 <= np.mean(hits["random-effects"]) <= 0.96


def test_fit_compute_definitions():
    from augury.forecast.fits import fit_compute

    row = {"flops": 9.9e11, "params_non_embedding": 111_024, "tokens": 638_976}
    assert fit_compute(row, "flops") == 9.9e11
    assert fit_compute(row, "non-embedding") == 6 * 111_024 * 638_976
    with pytest.raises(ValueError, match="fit.compute"):
        fit_compute(row, "params")


def test_power_loss_flags_a_flattening_ladder():
    # an irreducible loss that starts to matter inside the ladder: a pure power law cannot follow it
    flops = np.geomspace(1e10, 1e12, 6)
    smooth = 3000.0 * flops ** -0.3 + 2.0
    out, _ = fit_loss(rows_from(flops, smooth), 3e13, FitConfig(law="power-loss", bootstrap=100), seed=0)
    assert not out.reliable
    assert any("backtest" in f for f in out.flags)  # the largest rung falls short of the line through the rest
    kinked = np.array([5.0, 4.5, 4.05, 3.9, 3.85, 3.83])
    out, _ = fit_loss(rows_from(flops, kinked), 3e13, FitConfig(law="power-loss", bootstrap=100), seed=0)
    assert any("flattens" in f for f in out.flags)


def test_naive_steepening_ladder_is_flagged():
    # the naive ladder: the curve steepens at the largest rungs instead of flattening
    flops = np.geomspace(1e10, 1e11, 6)
    losses = np.array([4.30, 4.10, 3.95, 3.85, 3.55, 3.20])
    out, _ = fit_loss(rows_from(flops, losses), 3e12, FitConfig(bootstrap=100), seed=0)
    assert not out.reliable
    assert any("steepens" in f for f in out.flags)


@pytest.mark.integration
def test_early_flattening_ladder_is_flagged():
    # a ladder that plateaus (measured on this CPU with too little training per rung): c is not pinned down
    flops = np.geomspace(1e10, 1e11, 5)
    losses = np.array([4.29, 4.05, 3.94, 3.784, 3.762])
    out, _ = fit_loss(rows_from(flops, losses), 3e12, FitConfig(bootstrap=100), seed=0)
    assert not out.reliable
    assert any("has flattened" in f for f in out.flags)


def synthetic_capability(neg_log_pass, difficulty_range, seed):
    """Five runs from 1e10 to 1e11 FLOPs, 30 problems with -log p_j(C) = neg_log_pass(d_j, C); c of n = 4000
    drawn binomially. Returns (records, {run: flops}, difficulties)."""
    rng = np.random.default_rng(seed)
    runs = {f"r{i}": c for i, c in enumerate(np.geomspace(1e10, 1e11, 5))}
    difficulty = rng.uniform(*difficulty_range, 30)
    records = [{"run": run, "problem": f"p{j}", "n": 4000,
                "c": int(rng.binomial(4000, np.exp(-neg_log_pass(d, c))))}
               for run, c in runs.items() for j, d in enumerate(difficulty)]
    return records, runs, difficulty


def test_capability_forecast_recovers_a_known_law():
    from augury.forecast.config import CapabilityConfig

    records, runs, difficulty = synthetic_capability(lambda d, c: d * (c / 1e10) ** -0.3, (0.2, 2.0), seed=1)
    out, _ = fit_capability_forecast(records, runs, 1e12, CapabilityConfig(buckets=3), FitConfig(bootstrap=200),
                                     seed=0)
    truth = float(np.mean(difficulty * (1e12 / 1e10) ** -0.3))
    assert out.predicted == pytest.approx(truth, rel=0.05)
    assert out.kept_problems == 30 and len(out.buckets) == 3
    assert abs(out.backtest_largest_rung["rel_error"]) < 0.05 and out.reliable, out.flags


def test_capability_that_saturates_within_the_ladder_is_flagged():
    # a floor: the problems stop improving at the larger rungs, which alpha * C^-k cannot follow; the
    # leave-largest-out backtest sees it before the target does
    from augury.forecast.config import CapabilityConfig

    records, runs, _ = synthetic_capability(lambda d, c: d * (c / 1e10) ** -1.5 + 1.0, (0.5, 2.0), seed=2)
    out, _ = fit_capability_forecast(records, runs, 1e12, CapabilityConfig(buckets=3), FitConfig(bootstrap=100),
                                     seed=0)
    assert not out.reliable
    assert any("capability leave-largest-out backtest" in f for f in out.flags)
