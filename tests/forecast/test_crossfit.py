"""Capability cross-fitting over a rung's seed replicas: the folds, their forecast, the verification, the report.

Synthetic sampled records with a known law stand in for trained rungs (the smoke ladder's rungs solve too few
problems for a capability forecast; cpu-demo runs it for real)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from augury.forecast import crossfit, verify
from augury.forecast.capability import neg_log_pass_rate
from augury.forecast.fits import fit_compute
from augury.forecast.ladder import plan_runs, rung_replicas
from augury.forecast.records import (
    CapabilityFold,
    CapabilityForecast,
    CapabilityVerification,
    Forecast,
    LossForecast,
    Result,
    Verification,
)
from augury.io import atomic_write_json

SAMPLES = 400
N_PROBLEMS = 60


def true_neg_log_pass(difficulty: np.ndarray, compute: float, c0: float) -> np.ndarray:
    return difficulty * (compute / c0) ** -0.3


def drawn_ladder(tmp_path, make_smoke_config, data_cache, seeds: int, exponent: float, high: float, seed: int):
    """A smoke plan with `seeds` replicas per rung whose capability records are drawn from -log pass =
    difficulty · (C/C0)^-exponent (difficulties uniform in [0.3, high]); returns it with a `draw(run, compute)`."""
    cfg = make_smoke_config(tmp_path / "f", data_cache, ladder={"seeds": seeds},
                            capability={"samples": SAMPLES, "problems": N_PROBLEMS, "buckets": 3})
    out = tmp_path / "f"
    runs = plan_runs(cfg, 512)
    rungs, target = runs[:-1], runs[-1]
    xs = {p.name: fit_compute(p, cfg.fit.compute) for p in runs}
    c0 = xs[rungs[0].name]
    rng = np.random.default_rng(seed)
    difficulty = rng.uniform(0.3, high, N_PROBLEMS)
    atomic_write_json(out / "capability" / "problems.json", [{"id": f"p{j}"} for j in range(N_PROBLEMS)])

    def draw(run_name: str, compute: float) -> list[dict]:
        p = np.exp(-difficulty * (compute / c0) ** -exponent)
        return [{"run": run_name, "problem": f"p{j}", "n": SAMPLES, "c": int(rng.binomial(SAMPLES, p[j]))}
                for j in range(N_PROBLEMS)]

    for plan, rung, _ in rung_replicas(cfg, rungs):
        atomic_write_json(out / "capability" / f"{plan.name}.json",
                          {"run": plan.name, "records": draw(plan.name, xs[rung])})
    return cfg, out, rungs, target, xs, c0, difficulty, draw


@pytest.fixture()
def sampled_ladder(tmp_path, make_smoke_config, data_cache):
    """A smoke plan with 3 seeds per rung whose replicas' capability records are drawn from a known law."""
    cfg, out, rungs, target, xs, c0, difficulty, draw = drawn_ladder(tmp_path, make_smoke_config, data_cache,
                                                                    seeds=3, exponent=0.3, high=2.5, seed=0)
    target_records = draw("target", xs[target.name])
    truth = float(np.mean(true_neg_log_pass(difficulty, xs[target.name], c0)))
    return cfg, out, rungs, xs, target.name, target_records, truth


def registered(cfg, xs: dict, cap: CapabilityForecast) -> Forecast:
    """A registered forecast of the smoke plan with a made-up loss section and the capability section `cap`."""
    plans = plan_runs(cfg, 512)
    ladder = [{**dataclasses.asdict(p), "loss": 4.0 - i / 10, "bpb": 2.0, "seconds": 1.0, "compute": xs[p.name]}
              for i, p in enumerate(plans[:-1])]
    loss = LossForecast(predicted=3.0, interval=[2.9, 3.1], level=0.9, interval_method="prediction",
                        extrapolation_decades=1.0, law={"formula": "a·C^b", "law": "power-loss", "n_points": 4},
                        residuals={}, local_slopes=[], backtest_largest_rung=None, law_form_sensitivity={},
                        flags=[], reliable=True)
    return Forecast(name="t", target={**dataclasses.asdict(plans[-1]), "compute": xs[plans[-1].name]},
                    ladder=ladder, loss=loss, capability=cap, registered_at="now", sha256="0" * 64)


def verified(forecast: Forecast, capability: CapabilityVerification) -> Result:
    """A result of `forecast` whose target hit the loss forecast exactly, with the capability section given."""
    loss = Verification(predicted=3.0, interval=[2.9, 3.1], actual=3.0, rel_error=0.0, covered=True,
                        forecast_flagged=False)
    return Result(name="t", forecast_sha256=forecast.sha256, verified_at="now", loss=loss,
                  target_run={**forecast.target, "loss": 3.0, "bpb": 2.0, "seconds": 1.0}, largest_rung_fraction=0.1,
                  capability=capability)


def test_folds_select_and_estimate_on_disjoint_halves_of_the_replicas(sampled_ladder):
    cfg, out, rungs, *_ = sampled_ladder
    problems = json.loads((out / "capability" / "problems.json").read_text())
    folds = crossfit.capability_folds(cfg, out, rungs, problems)
    assert [(f["select_replicas"], f["estimate_replicas"]) for f in folds] == [([0, 2], [1]), ([1], [0, 2])]
    for fold in folds:
        # pooled per rung: n is the samples of the replicas it uses, so a fold never scores on its selection data
        assert {r["n"] for r in fold["select"]} == {SAMPLES * len(fold["select_replicas"])}
        assert {r["n"] for r in fold["estimate"]} == {SAMPLES * len(fold["estimate_replicas"])}
        assert {r["run"] for r in fold["estimate"]} == {r.name for r in rungs}
    one_seed = dataclasses.replace(cfg, ladder=dataclasses.replace(cfg.ladder, seeds=1))
    one = crossfit.capability_folds(one_seed, out, rungs, problems)
    assert len(one) == 1 and one[0]["select"] is None  # one seed: the same samples select and estimate


def test_cross_fitted_forecast_is_the_mean_of_its_folds_and_recovers_the_law(sampled_ladder):
    cfg, out, rungs, xs, target, target_records, truth = sampled_ladder
    cap = crossfit.capability_forecast(cfg, out, None, rungs, xs, xs[target])
    assert cap.cross_fitted and [f.fold for f in cap.folds] == [1, 2]
    assert cap.predicted == pytest.approx(np.mean([f.predicted for f in cap.folds]))
    assert all(f.startswith(("fold 1: ", "fold 2: ", "mean of the folds: ")) for f in cap.flags)
    assert all(f.kept_problems > N_PROBLEMS // 2 for f in cap.folds)
    assert cap.predicted == pytest.approx(truth, rel=0.1)

    result = verify.verify_capability(cap, target_records)
    for fold, checked in zip(cap.folds, result.folds):
        kept = [q for b in fold.buckets for q in b.problems]
        assert checked.actual == pytest.approx(neg_log_pass_rate(target_records, kept)[0])
    assert result.actual == pytest.approx(np.mean([f.actual for f in result.folds]))
    assert abs(result.rel_error) < 0.1
    # the section reads back from its JSON as it was written (forecast.json and result.json)
    assert CapabilityForecast.from_json(json.loads(json.dumps(cap.to_json()))) == cap
    assert CapabilityVerification.from_json(json.loads(json.dumps(result.to_json()))) == result


def test_report_shows_each_fold_and_their_mean(sampled_ladder, tmp_path):
    from augury.forecast.report import plot_capability, render_markdown

    cfg, out, rungs, xs, target, target_records, _ = sampled_ladder
    cap = crossfit.capability_forecast(cfg, out, None, rungs, xs, xs[target])
    forecast = registered(cfg, xs, cap)
    result = verified(forecast, verify.verify_capability(cap, target_records))
    text = render_markdown(forecast, result, {"loss": "l.png", "capability": "c.png"})
    assert "Cross-fitted" in text and "| **mean** |" in text
    assert text.count("| 1 | all |") == 1 and text.count("| 2 | all |") == 1
    plot_capability(forecast, result, tmp_path / "cap.png")
    assert (tmp_path / "cap.png").stat().st_size > 1000


def test_sampling_floor_is_judged_on_the_largest_rung():
    from augury.forecast.config import CapabilityConfig, FitConfig
    from augury.forecast.fits import fit_capability_forecast

    runs = {f"r{i}": c for i, c in enumerate(np.geomspace(1e10, 1e11, 4))}

    def records(top_c: int) -> list[dict]:
        # small rungs solve the problems once or twice in 64 samples (the floor); the largest `top_c` times
        recs = []
        for i, run in enumerate(runs):
            for j in range(12):
                c = top_c if i == 3 else 1 + (i + j) % 2
                recs.append({"run": run, "problem": f"p{j}", "n": 64, "c": c})
        return recs

    floor = "at the sampling floor"
    lifted, _ = fit_capability_forecast(records(12), runs, 1e12, CapabilityConfig(buckets=1), FitConfig(bootstrap=0),
                                        seed=0)
    assert not any(floor in f for f in lifted.flags)
    stuck, _ = fit_capability_forecast(records(2), runs, 1e12, CapabilityConfig(buckets=1), FitConfig(bootstrap=0),
                                       seed=0)
    assert any(floor in f and "largest rung solves 100%" in f for f in stuck.flags)


def test_cross_fitted_checks_are_judged_as_the_forecast_is_made():
    from augury.forecast.config import FitConfig

    def fold(i, kinds, backtest=(1.0, 1.0)):
        return CapabilityFold(predicted=1.0, interval=[0.9, 1.1], fold=i, flag_kinds=[k for k, _ in kinds],
                              flags=[m for _, m in kinds],
                              backtest_largest_rung={"held_out": "rung4", "predicted": backtest[0],
                                                     "actual": backtest[1]})

    k1 = ("k:1", "bucket 1: the exponent k's 90% interval includes 0")
    k2 = ("k:2", "bucket 2: the exponent k's 90% interval includes 0")
    floor = ("floor", "bucket 3: at the sampling floor")
    fit = FitConfig()
    # k's interval includes 0 in one fold only: not flagged; in both: flagged; the floor in one fold: flagged
    flags = crossfit.cross_fit_flags([fold(1, [k1, k2, floor]), fold(2, [k2])], fit)
    assert flags == ["fold 1: bucket 3: at the sampling floor", "fold 1: " + k2[1], "fold 2: " + k2[1]]
    # the backtest: each fold misses by 12% in opposite directions, their mean is on target: not flagged
    fine = [fold(1, [("backtest", "x")], (1.12, 1.0)), fold(2, [("backtest", "y")], (0.88, 1.0))]
    assert crossfit.cross_fit_flags(fine, fit) == []
    off = [fold(1, [], (1.12, 1.0)), fold(2, [], (1.10, 1.0))]
    assert crossfit.cross_fit_flags(off, fit)[0].startswith("mean of the folds: capability leave-largest-out")


def test_a_capability_that_does_not_improve_on_the_rungs_is_not_forecast(tmp_path, make_smoke_config, data_cache):
    from augury.forecast.report import render_markdown

    cfg = make_smoke_config(tmp_path / "f", data_cache, ladder={"seeds": 2},
                            capability={"samples": SAMPLES, "problems": N_PROBLEMS, "buckets": 3})
    out = tmp_path / "f"
    runs = plan_runs(cfg, 512)
    rungs, target = runs[:-1], runs[-1]
    xs = {p.name: fit_compute(p, cfg.fit.compute) for p in runs}
    rng = np.random.default_rng(1)
    p_solve = np.exp(-rng.uniform(0.3, 2.5, N_PROBLEMS))  # the same pass rates at every size: nothing emerges
    atomic_write_json(out / "capability" / "problems.json", [{"id": f"p{j}"} for j in range(N_PROBLEMS)])
    for plan, _, _ in rung_replicas(cfg, rungs):
        atomic_write_json(out / "capability" / f"{plan.name}.json", {"run": plan.name, "records": [
            {"run": plan.name, "problem": f"p{j}", "n": SAMPLES, "c": int(rng.binomial(SAMPLES, p_solve[j]))}
            for j in range(N_PROBLEMS)]})
    cap = crossfit.capability_forecast(cfg, out, None, rungs, xs, xs[target.name])
    assert cap.status == "not-forecastable" and "does not improve measurably" in cap.reason
    assert cap.predicted is None and cap.interval is None
    assert cap.unsupported_predicted > 0 and not cap.reliable
    records = [{"run": "target", "problem": f"p{j}", "n": SAMPLES, "c": int(rng.binomial(SAMPLES, p_solve[j]))}
               for j in range(N_PROBLEMS)]
    result = verify.verify_capability(cap, records)
    assert result.predicted is None and result.rel_error is None and result.actual > 0
    forecast = registered(cfg, xs, cap)
    assert "capability (mean -log pass rate): NOT FORECASTABLE" in verify.summary_text(
        forecast, verified(forecast, result))
    text = render_markdown(forecast, verified(forecast, result), {"loss": "l.png", "capability": "c.png"})
    assert "**not forecastable**" in text and "No capability forecast was registered" in text


def test_a_capability_that_gets_worse_on_the_rungs_is_not_forecast(tmp_path, make_smoke_config, data_cache):
    from augury.forecast.recheck import capability_failures

    # pass rates that fall with compute: every bucket's k is measurably below 0, so none improves measurably
    cfg, out, rungs, target, xs, _, _, _ = drawn_ladder(tmp_path, make_smoke_config, data_cache, seeds=2,
                                                        exponent=-0.3, high=1.5, seed=2)
    cap = crossfit.capability_forecast(cfg, out, None, rungs, xs, xs[target.name])
    assert all(b.k_interval[1] < 0 for f in cap.folds for b in f.buckets)  # measurably worse in every bucket
    assert cap.status == "not-forecastable" and "does not improve measurably" in cap.reason
    assert cap.predicted is None and cap.interval is None and not cap.reliable
    # a registered section that says "ok" for such buckets reads back as failing the check
    ok = dataclasses.replace(cap, status="ok", predicted=cap.unsupported_predicted, interval=[0.1, 0.2], flags=[],
                             reliable=True)
    assert any("k's interval does not lie above 0" in f for f in capability_failures(ok, cfg.fit))


def _fake_checkpoint(run_dir, step: int, weights: bytes) -> None:
    """A run folder holding one intact checkpoint whose model file is `weights`."""
    from augury.io import sha256_bytes

    ckpt = run_dir / "checkpoints" / f"step_{step:08d}"
    ckpt.mkdir(parents=True)
    (ckpt / "model.safetensors").write_bytes(weights)
    (ckpt / "manifest.json").write_text(json.dumps({"step": step, "files": {"model.safetensors":
                                                                             sha256_bytes(weights)}}))


def test_cached_records_belong_to_the_checkpoint_they_scored(tmp_path, make_smoke_config, data_cache, monkeypatch):
    """A run folder deleted and retrained gets new records; an unchanged one reuses its cache without sampling."""
    import shutil

    cfg = make_smoke_config(tmp_path / "f", data_cache)
    out, run_dir = tmp_path / "f", tmp_path / "f" / "target"
    sampled = []

    def fake_evaluate(run_dir, problems, cap, run_name, device="cpu", checkpoint=None):
        sampled.append(checkpoint)
        c = len(sampled)  # each sampling gives other counts, as another model would
        return [{"run": run_name, "problem": p["id"], "n": 4, "c": c} for p in problems]

    monkeypatch.setattr(crossfit.capmod, "evaluate_run", fake_evaluate)
    problems = [{"id": "p0"}, {"id": "p1"}]
    _fake_checkpoint(run_dir, 10, b"first model")
    first = crossfit.capability_records(cfg, out, "target", run_dir, problems)
    assert crossfit.capability_records(cfg, out, "target", run_dir, problems) == first
    assert len(sampled) == 1  # a resume of an unchanged run does not sample again
    shutil.rmtree(run_dir)
    _fake_checkpoint(run_dir, 10, b"retrained model")  # same step, other weights
    second = crossfit.capability_records(cfg, out, "target", run_dir, problems)
    assert len(sampled) == 2 and second != first and sampled[-1].name == "step_00000010"
    assert crossfit.capability_records(cfg, out, "target", run_dir, problems) == second and len(sampled) == 2
    shutil.rmtree(run_dir)
    _fake_checkpoint(run_dir, 20, b"retrained model")  # a longer run: another step
    crossfit.capability_records(cfg, out, "target", run_dir, problems)
    assert len(sampled) == 3
    cached = json.loads((out / "capability" / "target.json").read_text())
    assert cached["checkpoint"]["step"] == 20
    # a cache written before records named their checkpoint cannot be trusted: it is sampled again
    cached.pop("checkpoint")
    atomic_write_json(out / "capability" / "target.json", cached)
    crossfit.capability_records(cfg, out, "target", run_dir, problems)
    assert len(sampled) == 4


def test_a_target_that_solves_every_kept_problem_has_no_relative_error(sampled_ladder):
    """Actual mean −log pass rate 0: the relative error is undefined, written as null with the reason (JSON has no
    infinity), and the summary and report say so instead of '+inf%'."""
    from augury.forecast.report import render_markdown

    cfg, out, rungs, xs, target, target_records, _ = sampled_ladder
    cap = crossfit.capability_forecast(cfg, out, None, rungs, xs, xs[target])
    solved = [{**r, "c": r["n"]} for r in target_records]
    result = verify.verify_capability(cap, solved)
    assert result.actual == 0 and result.rel_error is None
    assert "solves every kept problem" in result.rel_error_reason
    written = json.loads(json.dumps(result.to_json(), allow_nan=False))
    assert written["rel_error"] is None and written["rel_error_reason"] == result.rel_error_reason
    assert CapabilityVerification.from_json(written) == result
    forecast = registered(cfg, xs, cap)
    checked = verified(forecast, result)
    summary = verify.summary_text(forecast, checked)
    assert "inf" not in summary and "error undefined" in summary
    text = render_markdown(forecast, checked, {"loss": "l.png", "capability": "c.png"})
    assert "inf%" not in text and "solves every kept problem" in text


def test_a_backtest_rung_that_solves_every_kept_problem_is_flagged_not_scored():
    """The leave-largest-out capability backtest on a held-out rung with actual 0: no relative error (null, not
    1e308), and the check counts as failed (the trend cannot be confirmed) in the fold, the mean of the folds and
    `augury forecast --recheck`, rather than a crash on the null."""
    from augury.forecast import fits
    from augury.forecast.config import CapabilityConfig, FitConfig
    from augury.forecast.recheck import capability_failures

    runs = {f"r{i}": c for i, c in enumerate(np.geomspace(1e10, 1e11, 4))}
    recs = [{"run": run, "problem": f"p{j}", "n": 64, "c": 64 if i == 3 else 8 + 8 * i + j}
            for i, run in enumerate(runs) for j in range(12)]
    bt = fits._capability_backtest(recs, runs, CapabilityConfig(buckets=1), FitConfig(bootstrap=0), 0, None)
    assert bt["actual"] == 0 and bt["rel_error"] is None
    assert fits.capability_backtest_misses(bt, FitConfig())
    flag = fits.capability_backtest_flag(bt, FitConfig())
    assert "undefined" in flag and "solves every kept problem" in flag
    fold = CapabilityFold(predicted=1.0, interval=[0.9, 1.1], backtest_largest_rung=bt, flags=[flag],
                          flag_kinds=["backtest"])
    json.dumps(fold.to_json(), allow_nan=False)
    two = [dataclasses.replace(fold, fold=1), dataclasses.replace(fold, fold=2)]
    assert any("mean of the folds" in f and "undefined" in f for f in crossfit.cross_fit_flags(two, FitConfig()))
    cap = CapabilityForecast(status="ok", predicted=1.0, interval=[0.9, 1.1], cross_fitted=True, folds=two,
                             flags=[], reliable=True, n_problems=12, samples=64, temperature=1.0, kind="line")
    assert any("undefined" in f for f in capability_failures(cap, FitConfig()))
    assert any("undefined" in f for f in capability_failures(dataclasses.replace(cap, folds=two[:1]), FitConfig()))
