"""A registered forecast's checks recomputed from its stored numbers (augury.forecast.recheck): a forecast as
fit_loss made it passes exactly the checks it passed, and one whose numbers fail a check its verdict does not
record reads as flagged."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from augury.forecast.config import FitConfig
from augury.forecast.fits import fit_loss
from augury.forecast.recheck import loss_failures, recheck_forecast
from augury.forecast.records import (
    CapabilityBucket,
    CapabilityFold,
    CapabilityForecast,
    Forecast,
    LossForecast,
    read_forecast,
    register_forecast,
)

FLOPS = np.geomspace(1e10, 1e11, 5)
LADDERS = {
    "clean": [2 + 20 * c ** -0.1 for c in FLOPS],
    "noisy": [(2 + 20 * c ** -0.1) * f for c, f in zip(FLOPS, (1.004, 0.997, 1.002, 0.995, 1.003))],
    "not improving": [3.7, 4.0, 4.4, 4.5, 4.6],
    "steepening": [5.0, 4.8, 4.6, 4.0, 3.5],
}


def _rows(losses):
    return [{"name": f"rung{i + 1}", "flops": float(c), "compute": float(c), "loss": float(y), "steps": 60}
            for i, (c, y) in enumerate(zip(FLOPS, losses))]


@pytest.mark.parametrize("law,interval", [("gpt4-loss", "bootstrap"), ("power-loss", "prediction")])
@pytest.mark.parametrize("ladder", list(LADDERS))
def test_a_fitted_forecast_fails_no_check_its_verdict_does_not_record(tmp_path, law, interval, ladder):
    fit = FitConfig(law=law, interval=interval, bootstrap=50, huber_delta=0.02)
    rows = _rows(LADDERS[ladder])
    loss, _ = fit_loss(rows, 1e12, fit, 0, x="compute")
    failures = loss_failures(loss, rows, fit)
    assert failures == [] if loss.reliable else len(failures) <= len(loss.flags)
    # and read back from forecast.json, nothing is added
    forecast = register_forecast(tmp_path / "forecast.json", Forecast(name="t", target={"steps": 60}, ladder=rows,
                                                                      loss=loss))
    again = read_forecast(tmp_path / "forecast.json")
    assert recheck_forecast(again, fit) == [] and again.to_json() == forecast.to_json()


def _reliable() -> Forecast:
    rows = _rows(LADDERS["clean"])
    loss = LossForecast(predicted=2.8, interval=[2.75, 2.85], level=0.9, interval_method="prediction",
                        extrapolation_decades=1.0, law={"law": "power-loss"},
                        residuals={r["name"]: 0.001 for r in rows}, local_slopes=[-0.05, -0.05, -0.05, -0.05],
                        backtest_largest_rung={"held_out": "rung5", "rel_error": 0.001, "covered": True},
                        law_form_sensitivity={"other_law": "gpt4-loss"}, flags=[], reliable=True)
    bucket = CapabilityBucket(bucket=0, problems=["p"], n_problems=1, small_run_pass_rate=0.2, predicted=0.5,
                              interval=[0.4, 0.6], params={}, k_interval=[0.1, 0.3])
    fold = CapabilityFold(predicted=0.5, interval=[0.4, 0.6], buckets=[bucket], kept_problems=1,
                          backtest_largest_rung={"held_out": "rung5", "predicted": 1.0, "actual": 1.0, "rel_error": 0})
    cap = CapabilityForecast(status="ok", predicted=0.5, interval=[0.4, 0.6], folds=[fold])
    return Forecast(name="t", target={"steps": 60}, ladder=rows, loss=loss, capability=cap)


def _wide(f):
    f.loss.interval = [2.0, 3.6]


def _backtest(f):
    f.loss.backtest_largest_rung["rel_error"] = 0.09


def _residual(f):
    f.loss.residuals["rung3"] = 0.05


def _steps(f):
    f.target["steps"] = 200


def _flags_but_reliable(f):
    f.loss.flags = ["a flag"]


def _flat_bucket(f):
    f.capability.folds[0].buckets[0].k_interval = [-0.1, 0.3]


@pytest.mark.parametrize("edit,section", [(_wide, "loss"), (_backtest, "loss"), (_residual, "loss"), (_steps, "loss"),
                                          (_flags_but_reliable, "loss"), (_flat_bucket, "capability")])
def test_stored_numbers_that_fail_a_check_never_read_as_reliable(edit, section):
    forecast = _reliable()
    assert recheck_forecast(copy.deepcopy(forecast), FitConfig()) == []
    edit(forecast)
    added = recheck_forecast(forecast, FitConfig())
    part = getattr(forecast, section)
    assert added and not part.reliable and set(added) <= set(part.flags)
