"""Verification: the trained target measured against the pre-registered forecast (result.json's Result), and
the summary lines `augury forecast` prints at the end.

    from augury.forecast.verify import verify_forecast
    result = verify_forecast(cfg, out, data, forecast, target, target_summary)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from augury.forecast import capability as capmod
from augury.forecast.crossfit import capability_records
from augury.forecast.fits import fit_compute, relative
from augury.forecast.ladder import RunPlan
from augury.forecast.preregister import check_registered, run_row
from augury.forecast.records import (
    CapabilityFoldVerification,
    CapabilityForecast,
    CapabilityVerification,
    Forecast,
    ForecastTampered,
    Result,
    Verification,
    read_forecast,
)
from augury.io import utc_now


def verify_forecast(cfg, out: Path, data, forecast: Forecast, target: RunPlan, tsum: dict) -> Result:
    """The target's `tsum` against `forecast`, after checking that forecast.json is still the one registered
    (ForecastTampered) and the held-out text the one it was made for (ForecastConfigError)."""
    if read_forecast(out / "forecast.json").sha256 != forecast.sha256:
        raise ForecastTampered(f"{out / 'forecast.json'} changed while the target trained (its sha256 is no longer "
                               f"{forecast.sha256}); start a new forecast in another folder")
    check_registered(cfg, out, data, log=lambda *a, **k: None)
    loss, actual = forecast.loss, tsum["final_val_loss"]
    result = Result(name=cfg.name, forecast_sha256=forecast.sha256, verified_at=utc_now(),
                    loss=_verify(loss, actual, forecast_flagged=not loss.reliable),
                    target_run={**run_row(target, tsum), "fraction": 1.0,
                                "compute": fit_compute(target, forecast.compute)},
                    largest_rung_fraction=forecast.ladder[-1]["fraction"])
    if forecast.capability is not None:
        problems = json.loads((out / "capability" / "problems.json").read_text())
        recs = capability_records(cfg, out, "target", out / "target", problems)
        result.capability = verify_capability(forecast.capability, recs)
    if forecast.text is not None:
        from augury.forecast.heldout_text import check_registered_text, folder_ids, heldout_loss

        ids = folder_ids(cfg, data)
        check_registered_text(forecast.text, ids)
        result.text = _verify(forecast.text, heldout_loss(out / "target", ids, cfg.recipe.seq_len))
    return result


def _verify(forecast, actual: float, forecast_flagged: bool | None = None) -> Verification:
    lo, hi = forecast.interval
    out = Verification(predicted=forecast.predicted, interval=forecast.interval, actual=actual,
                       rel_error=relative(forecast.predicted, actual), covered=bool(lo <= actual <= hi),
                       forecast_flagged=forecast_flagged)
    if out.rel_error is None:
        out.rel_error_reason = "the actual loss is 0: a relative error to 0 is undefined"
    return out


def _error(v: Verification, fmt: str) -> str:
    return f"error {v.rel_error:{fmt}}" if v.rel_error is not None else f"error undefined ({v.rel_error_reason})"


def verify_capability(cap: CapabilityForecast, records: list[dict]) -> CapabilityVerification:
    """result.json's capability section: the target's `records` scored on each fold's kept problems, their
    mean against the registered forecast."""
    folds = []
    for fold in cap.folds:
        mean, zeros = capmod.neg_log_pass_rate(records, fold.kept())
        folds.append(CapabilityFoldVerification(
            predicted=fold.predicted, actual=mean,
            actual_buckets=[capmod.neg_log_pass_rate(records, b.problems)[0] for b in fold.buckets],
            predicted_buckets=[b.predicted for b in fold.buckets], unsolved_kept_problems=zeros))
    actual = float(np.mean([f.actual for f in folds]))
    out = CapabilityVerification(
        status=cap.status, predicted=cap.predicted, actual=actual,
        rel_error=relative(cap.predicted, actual) if cap.predicted is not None else None, folds=folds,
        forecast_flagged=not cap.reliable)
    if cap.predicted is not None and out.rel_error is None:
        out.rel_error_reason = ("the target solves every kept problem in every sample (actual mean -log pass rate "
                                "0): a relative error to 0 is undefined")
    return out


def summary_text(forecast: Forecast, result: Result) -> str:
    r = result.loss
    lines = [(f"target loss: predicted {r.predicted:.4f} [{r.interval[0]:.4f}, {r.interval[1]:.4f}], "
             f"actual {r.actual:.4f}, {_error(r, '+.2%')}, "
             f"interval {'covers' if r.covered else 'MISSES'} it"
             + (" (the forecast was FLAGGED as unreliable before the target ran)" if r.forecast_flagged else ""))]
    if result.capability is not None:
        c = result.capability
        if c.predicted is None:
            lines.append(f"capability (mean -log pass rate): NOT FORECASTABLE ({forecast.capability.reason}); "
                         f"actual {c.actual:.3f}")
        else:
            error = (f"error {c.rel_error:+.1%}" if c.rel_error is not None
                     else f"error undefined ({c.rel_error_reason})")
            lines.append(f"capability (mean -log pass rate): predicted {c.predicted:.3f}, actual "
                         f"{c.actual:.3f}, {error}"
                         + (" (FLAGGED before the target ran)" if c.forecast_flagged else ""))
    if result.text is not None:
        t = result.text
        lines.append(f"held-out text loss: predicted {t.predicted:.4f}, actual {t.actual:.4f}, "
                     f"{_error(t, '+.2%')}")
    return "\n".join(lines)
