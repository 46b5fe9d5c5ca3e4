"""Ladders with known truth: what the data cannot support is refused, and every interval stays in range."""

from __future__ import annotations

import json

import numpy as np
import pytest

from augury.scaling.result import fit_law

FLOPS = np.geomspace(1e18, 1e20, 5)
TARGETS = [{"flops": 1e21}, {"flops": 1e22}]


def _rows(y):
    return [{"name": f"r{i}", "flops": float(f), "accuracy": float(v)} for i, (f, v) in enumerate(zip(FLOPS, y))]


def test_a_task_at_chance_on_every_rung_is_not_forecastable():
    # two-choice task: 0.50-0.53 on the fitted rungs, emergent (0.64) only at the held-out size
    rng = np.random.default_rng(0)
    y = 0.5 + rng.uniform(0.0, 0.03, FLOPS.size)
    res = fit_law("sigmoid", _rows(y), y="accuracy", bootstrap=200, chance=0.5)
    status, reason = res.forecastability()
    assert status == "not-forecastable" and "trend" in reason
    rec = res.forecast({"flops": 1e22}, actual=[0.64])[0]
    assert rec["status"] == "not-forecastable" and rec["value"] is None and rec["interval"] is None
    assert rec["reason"] and rec["rel_error"] is None and "unsupported_value" in rec
    assert res.to_json()["forecastability"]["status"] == "not-forecastable"


@pytest.mark.parametrize("chance", [None, 0.25])
def test_rising_accuracy_is_forecast_with_intervals_inside_the_range(chance):
    floor = chance or 0.0
    true = floor + (1 - floor) / (1 + np.exp(-2.0 * (np.log10(FLOPS) - 19.5)))
    y = true * (1 + np.random.default_rng(1).normal(0, 0.01, FLOPS.size))
    res = fit_law("sigmoid", _rows(np.clip(y, floor + 1e-3, 0.999)), y="accuracy", bootstrap=200, chance=chance)
    assert res.forecastability()[0] == "ok"
    value, interval = res.predict(TARGETS)
    assert np.all(interval[:, 0] >= floor) and np.all(interval[:, 1] <= 1.0)
    assert np.all(value <= 1.0)


def test_saturated_accuracy_intervals_never_exceed_one():
    y = np.array([0.965, 0.975, 0.982, 0.988, 0.991])
    res = fit_law("sigmoid", _rows(y), y="accuracy", bootstrap=300)
    for rec in res.forecast(TARGETS):
        if rec["status"] == "ok":
            assert 0.0 <= rec["interval"][0] <= rec["value"] <= rec["interval"][1] <= 1.0



def test_an_accuracy_above_one_is_refused_as_out_of_range_not_fitted():
    # accuracies pasted as percentages (25.0 ... 60.0) cannot be fitted by a sigmoid capped at 1: the fit ran into
    # its bounds and the forecast was refused for "the rows do not locate the rise", hiding the cause
    from augury.scaling import TableError

    y = 100 * (0.25 + 0.7 / (1 + np.exp(-2.0 * (np.log10(FLOPS) - 19.5))))
    with pytest.raises(TableError, match=r"column 'accuracy' row 1 \(name 'r0'\): \d+\.\d+ is above 1, the top of "
                                         r"the range \[0, 1\] of law 'sigmoid'"):
        fit_law("sigmoid", _rows(y), y="accuracy", bootstrap=200)
    fit_law("sigmoid", _rows(y / 100), y="accuracy", bootstrap=0)  # the same accuracies as fractions fit

def test_a_loss_whose_floor_the_rungs_cannot_identify_is_marked_degenerate_with_alternatives():
    # a pure power law bending nowhere: the gpt4-loss floor c runs to its lower bound
    loss = 30.0 * FLOPS ** -0.05
    rows = [{"name": f"r{i}", "flops": float(f), "loss": float(v)} for i, (f, v) in enumerate(zip(FLOPS, loss))]
    res = fit_law("gpt4-loss", rows, bootstrap=100)
    status, reason = res.forecastability()
    assert status == "degenerate" and "bound" in reason
    rec = res.forecast({"flops": 1e22})[0]
    assert rec["status"] == "degenerate" and rec["value"] > 0
    alt = rec["alternatives"]["power-loss (c = 0)"]
    assert alt == pytest.approx(30.0 * 1e22 ** -0.05, rel=1e-3)
    assert rec["interval"][0] > 0


def test_backtest_reports_refused_rows_and_means_with_and_without_them(tmp_path, capsys):
    from augury.scaling.backtest_cli import backtest

    rng = np.random.default_rng(0)
    sizes = np.geomspace(1e18, 1e22, 8)
    acc = np.where(sizes < 2e20, 0.5 + rng.uniform(0, 0.02, sizes.size), 0.62)
    table = tmp_path / "runs.jsonl"
    table.write_text("".join(json.dumps({"name": f"r{i}", "flops": float(f), "accuracy": float(a)}) + "\n"
                             for i, (f, a) in enumerate(zip(sizes, acc))))
    backtest(str(table), law="sigmoid", y="accuracy", holdout="flops>2e20", out=str(tmp_path / "bt"), bootstrap=100,
             chance=0.5, allow_unconverged=True)
    report = json.loads((tmp_path / "bt" / "backtest.json").read_text())
    assert report["n_not_forecastable"] == report["n_holdout"]
    assert report["mean_abs_rel_error"] is None and report["mean_abs_rel_error_with_not_forecastable"] > 0
    out = capsys.readouterr().out
    assert "NOT FORECASTABLE" in out and "not forecastable (excluded" in out


def test_rungs_at_chance_scattering_below_it_do_not_blow_up_the_interval():
    # a four-choice task: the small rungs sit at chance, and evaluation noise puts two of them just below 0.25 (as it
    # does on a real ladder). Their scatter is no larger than the others', so --chance must not turn it into an
    # interval spanning the whole range (the logit over [chance, 1] of a value below chance is not finite).
    flops = np.geomspace(1e17, 1e21, 10)
    true = 0.25 + 0.75 / (1 + np.exp(-1.5 * (np.log10(flops) - 20.5)))
    noise = np.array([-0.006, 0.008, -0.017, 0.004, -0.009, 0.012, -0.004, 0.007, -0.01, 0.005])
    rows = [{"name": f"r{i}", "flops": float(f), "accuracy": float(v)}
            for i, (f, v) in enumerate(zip(flops, true + noise))]
    assert sum(r["accuracy"] < 0.25 for r in rows) == 2
    plain = fit_law("sigmoid", rows, y="accuracy", bootstrap=200).forecast({"flops": 3e20})[0]
    rec = fit_law("sigmoid", rows, y="accuracy", bootstrap=200, chance=0.25).forecast({"flops": 3e20})[0]
    assert plain["status"] == "ok"
    assert rec["status"] == "ok", rec.get("reason")
    assert 0.25 <= rec["interval"][0] < rec["value"] < rec["interval"][1] <= 1.0
    # far above chance the floor changes little: about as wide as without it (it was the whole range)
    width = rec["interval"][1] - rec["interval"][0]
    assert width <= 1.5 * (plain["interval"][1] - plain["interval"][0])


def test_a_task_at_chance_is_not_forecastable_from_task_loss_alone():
    # accuracy against task loss with no compute column (a step-2-style table): the accuracy sits at chance while
    # the task loss falls, so the rows show no trend to extrapolate, whatever the sigmoid's fit makes of the noise
    bpb = np.linspace(1.6, 1.1, 8)
    acc = 0.25 + np.random.default_rng(2).uniform(0.0, 0.02, 8)
    res = fit_law("sigmoid", {"bpb": bpb, "acc": acc}, y="acc", x_column="bpb", bootstrap=200, chance=0.25)
    status, reason = res.forecastability()
    assert status == "not-forecastable" and "trend" in reason, reason
    rec = res.forecast({"bpb": 0.8})[0]
    assert rec["status"] == "not-forecastable" and rec["value"] is None


def test_accuracy_rising_as_task_loss_falls_is_a_normal_trend_without_a_compute_column():
    bpb = np.linspace(1.6, 0.9, 8)
    acc = 0.25 + 0.75 / (1 + np.exp(6.0 * (bpb - 1.2)))
    res = fit_law("sigmoid", {"bpb": bpb, "acc": acc}, y="acc", x_column="bpb", bootstrap=50)
    assert res.trend["shape"] == "normal", res.trend
    assert res.forecastability()[0] == "ok" and not [w for w in res.warnings if "scaling" in w]


def test_an_interval_from_fewer_converged_resamples_than_its_level_needs_is_refused(monkeypatch):
    # 200 resamples asked, 15 converged: a 90% percentile interval from 15 draws is just their extremes
    import augury.scaling.result as result_mod

    real = result_mod.bootstrap_fits

    def mostly_unconverged(*args, **kwargs):
        out = real(*args, **kwargs)
        out.converged[15:] = False
        return out

    monkeypatch.setattr(result_mod, "bootstrap_fits", mostly_unconverged)
    flops = np.geomspace(1e18, 1e20, 6)
    rows = [{"name": f"r{i}", "flops": float(f), "loss": float(2.0 + 30.0 * f ** -0.08)} for i, f in enumerate(flops)]
    res = fit_law("power-loss", rows, y="loss", bootstrap=200)
    rec = res.forecast({"flops": 1e20})[0]
    assert rec["status"] == "not-forecastable" and rec["interval"] is None
    assert "only 15 of 200 bootstrap resamples converged" in rec["reason"] and "at least 20" in rec["reason"]
    monkeypatch.setattr(result_mod, "bootstrap_fits", real)
    assert fit_law("power-loss", rows, y="loss", bootstrap=200).forecast({"flops": 1e20})[0]["status"] == "ok"


def _flat_pass_rates():
    rng = np.random.default_rng(4)
    flops = np.geomspace(1e18, 1e21, 6)
    y = 1.2 * np.exp(rng.normal(0, 0.02, flops.size))
    return [{"name": f"r{i}", "flops": float(f), "neg_log_pass_rate": float(v)}
            for i, (f, v) in enumerate(zip(flops, y))]


def test_a_capability_law_whose_pass_rates_do_not_improve_is_not_forecastable():
    # the exponent k's interval straddles 0: `augury forecast` refuses such a ladder; a plain fit gave a value
    res = fit_law("capability", _flat_pass_rates(), bootstrap=200)
    lo, hi = res.param_intervals()["k"]
    assert lo <= 0 <= hi
    status, reason = res.forecastability()
    assert status == "not-forecastable" and "does not improve measurably" in reason
    rec = res.forecast({"flops": 1e22})[0]
    assert rec["status"] == "not-forecastable" and rec["value"] is None and rec["interval"] is None


def test_backtest_of_a_flat_capability_ladder_forecasts_no_row(tmp_path, capsys):
    from augury.scaling.backtest_cli import backtest

    table = tmp_path / "runs.jsonl"
    table.write_text("".join(json.dumps(r) + "\n" for r in _flat_pass_rates()))
    backtest(str(table), law="capability", holdout="flops>2e20", out=str(tmp_path / "bt"), bootstrap=100)
    report = json.loads((tmp_path / "bt" / "backtest.json").read_text())
    assert report["n_not_forecastable"] == report["n_holdout"] == 2 and report["coverage"] is None
    assert "does not improve measurably" in capsys.readouterr().out
