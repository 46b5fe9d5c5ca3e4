"""The report: its plots and tables drawn from the registered Forecast and the Result, whatever their numbers."""

from __future__ import annotations

from augury.forecast.records import (
    CapabilityBucket,
    CapabilityFold,
    CapabilityForecast,
    Forecast,
    LossForecast,
    Result,
    Verification,
)
from augury.forecast.report import write_report


def _run(name: str, i: int, compute: float) -> dict:
    return {"name": name, "role": "rung", "depth": 2, "d_model": 16 * (i + 1), "params_matmul": 1000 * (i + 1),
            "tokens": 4000 * (i + 1), "flops": compute, "compute": compute, "fraction": compute / 1e9,
            "loss": 4.0 - i / 10, "bpb": 2.0, "seconds": 1.0, "epochs": 0.1, "steps": 60, "batch_size": 2}


def _forecast(predicted: float, interval: list[float], bucket_predicted: float, bucket_interval: list[float]):
    ladder = [_run(f"rung{i + 1}", i, 1e9 * 10 ** (i / 2 - 2)) for i in range(3)]
    law = {"formula": "a·C^b", "law": "power-loss", "n_points": 3,
           "parameters": {"a": {"value": 10.0}, "b": {"value": -0.05}}}
    loss = LossForecast(predicted=predicted, interval=interval, level=0.9, interval_method="bootstrap",
                        extrapolation_decades=1.0, law=law, residuals={}, local_slopes=[],
                        backtest_largest_rung=None, law_form_sensitivity={}, flags=[], reliable=True)
    bucket = CapabilityBucket(bucket=1, problems=["p1"], n_problems=1, small_run_pass_rate=0.1,
                              predicted=bucket_predicted, interval=bucket_interval, params={"alpha": 1.0, "k": 0.05},
                              k_interval=[0.01, 0.1])
    fold = CapabilityFold(predicted=bucket_predicted, interval=bucket_interval, buckets=[bucket], kept_problems=1,
                          per_run={r["name"]: {"flops": r["flops"], "compute": r["compute"], "buckets": [0.5]}
                                   for r in ladder}, fold=1)
    cap = CapabilityForecast(status="ok", predicted=bucket_predicted, interval=bucket_interval, folds=[fold],
                             n_problems=1, samples=4)
    target = {**_run("target", 3, 1e9), "role": "target"}
    return Forecast(name="t", target=target, ladder=ladder, loss=loss, capability=cap, registered_at="now",
                    sha256="0" * 64)


def test_a_forecast_outside_its_own_bootstrap_interval_is_still_reported(tmp_path):
    """A percentile interval of bootstrap draws need not contain the full-data fit's point forecast (skewed draws
    from a handful of rungs): the report draws the interval and the point as registered instead of failing on a
    negative error bar after result.json was written."""
    forecast = _forecast(3.00, [3.02, 3.20], 0.40, [0.45, 0.60])
    loss = Verification(predicted=3.00, interval=[3.02, 3.20], actual=3.05, rel_error=3.00 / 3.05 - 1, covered=True,
                        forecast_flagged=False)
    result = Result(name="t", forecast_sha256="0" * 64, verified_at="now", loss=loss,
                    target_run={**forecast.target, "loss": 3.05}, largest_rung_fraction=0.1)
    md, html = write_report(tmp_path, forecast, result)
    text = md.read_text()
    assert "3.0000 [3.0200, 3.2000]" in text and "| actual | 3.0500 nats/token |" in text
    assert "| 1 | 1 | 1 | 0.400 | [0.450, 0.600] |" in text
    assert (tmp_path / "loss_vs_compute.png").stat().st_size > 1000 and (tmp_path / "capability.png").is_file()
    assert "data:image/png;base64," in html.read_text()


def test_a_target_loss_of_zero_has_no_relative_error_and_says_why(tmp_path):
    """predicted / 0 − 1 does not exist: result.json's loss has rel_error null with rel_error_reason (as the
    capability section does), and the summary, report and readers take the null instead of crashing after the
    target trained."""
    import typing

    from augury.forecast.records import read_result, write_result
    from augury.forecast.verify import _verify, summary_text

    forecast = _forecast(3.00, [2.90, 3.10], 0.40, [0.35, 0.45])
    assert typing.get_type_hints(Verification)["rel_error"] == float | None
    loss = _verify(forecast.loss, 0.0, forecast_flagged=False)
    assert loss.rel_error is None and "actual loss is 0" in loss.rel_error_reason
    result = Result(name="t", forecast_sha256="0" * 64, verified_at="now", loss=loss,
                    target_run={**forecast.target, "loss": 0.0}, largest_rung_fraction=0.1, text=loss)
    write_result(tmp_path / "result.json", result)
    back = read_result(tmp_path / "result.json")
    assert back.loss.rel_error is None and back.loss.rel_error_reason == loss.rel_error_reason
    summary = summary_text(forecast, back)
    assert "error undefined (" in summary and "held-out text loss" in summary
    md, _ = write_report(tmp_path, forecast, back)
    assert "| relative error | – |" in md.read_text() and loss.rel_error_reason in md.read_text()


def test_timings_say_the_runs_training_time_is_their_own_not_this_invocations():
    """On a resume the runs were trained by an earlier invocation: their training time beside this invocation's
    short wall time must not read as work this invocation did."""
    from augury.forecast.report import render_markdown

    forecast = _forecast(3.00, [2.9, 3.1], 0.40, [0.35, 0.45])
    loss = Verification(predicted=3.00, interval=[2.9, 3.1], actual=3.0, rel_error=0.0, covered=True)
    result = Result(name="t", forecast_sha256="0" * 64, verified_at="now", loss=loss,
                    target_run={**forecast.target, "loss": 3.0}, largest_rung_fraction=0.1,
                    timings={"ladder training": 12.0, "target training": 28.0, "this invocation (wall)": 3.0})
    text = render_markdown(forecast, result, {"loss": "l.png", "capability": "c.png"})
    assert "also when an earlier invocation trained it" in text.split("## Timings")[1]


def test_a_refused_capability_forecast_labels_its_fits_values_as_no_forecast(tmp_path):
    """A refused capability forecast printed each fold's bucket predictions and intervals under "predicted", above
    the "not forecastable" line, where a reader takes them for forecasts; they are now said first to be the refused
    fits' values, and the plot says so too."""
    import dataclasses

    from augury.forecast.report import render_markdown

    forecast = _forecast(3.00, [2.9, 3.1], 0.40, [0.35, 0.45])
    forecast.capability = dataclasses.replace(
        forecast.capability, status="not-forecastable", predicted=None, interval=None, reliable=False,
        reason="the pass rate does not improve measurably with compute", unsupported_predicted=0.40)
    text = render_markdown(forecast, None, {"loss": "l.png", "capability": "c.png"})
    section = text.split("## Capability")[1]
    refusal = section.index("**Not forecastable:** the pass rate does not improve measurably with compute")
    table = section.index("| fold | bucket |")
    assert refusal < table and "predicted" not in section[table:].split("\n")[0]
    assert "not a forecast" in section[table:].split("\n")[0]
    assert "| 1 | 1 | 1 | 0.400 | [0.350, 0.450] |" in section  # the values are still there to diagnose with
    md, html = write_report(tmp_path, forecast, None)
    assert "not a forecast" in html.read_text() and (tmp_path / "capability.png").is_file()


def test_a_flagged_capability_forecast_is_marked_on_its_plot(tmp_path, monkeypatch):
    """The loss plot said FLAGGED for a flagged loss forecast, but the capability plot of a flagged capability
    forecast (cpu-demo's, typically) had the title of a reliable one, so the figure alone read as a clean
    forecast; docs/forecast.md says a failed check marks the plot."""
    import dataclasses

    from augury.forecast import report

    titles = []
    monkeypatch.setattr(report, "_save", lambda fig, path: titles.append(fig._suptitle.get_text()))
    forecast = _forecast(3.00, [2.9, 3.1], 0.40, [0.35, 0.45])
    report.plot_capability(forecast, None, tmp_path / "c.png")
    forecast.capability = dataclasses.replace(forecast.capability, reliable=False,
                                              flags=["fold 1: bucket 1: k is not measurably above 0"])
    report.plot_capability(forecast, None, tmp_path / "c.png")
    assert "FLAGGED" not in titles[0] and "FLAGGED" in titles[1]
