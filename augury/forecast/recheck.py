"""A registered forecast's checks recomputed from the numbers it stores, when forecast.json is read back: a
forecast whose own numbers fail a check that its verdict does not record reads as flagged, never as reliable.

    added = recheck_forecast(forecast, cfg.fit)   # the flags added; [] for a forecast as it was registered

The checks are those of fits.fit_loss (interval width, a ladder that does not improve, a rung off the curve, a
steepening or, for power-loss, flattening slope, the irreducible fraction, the leave-largest-out backtest),
preregister's step check, and crossfit.cross_fit_flags' exponent and backtest checks, each on the stored values
(residuals, local slopes, backtest, k intervals), so a registered forecast passes exactly the checks it passed
when it was fitted. This is no refit: numbers edited together with their verdict are caught by the sha256s only
(docs/forecast.md, "What the pre-registration protects against").
"""

from __future__ import annotations

import numpy as np

from augury.forecast.fits import relative
from augury.forecast.records import CapabilityForecast, Forecast, LossForecast


def recheck_forecast(forecast: Forecast, fit_cfg) -> list[str]:
    """Mark every section of `forecast` whose stored numbers fail a check its verdict does not record as not
    reliable, with a flag naming the check; returns the flags added."""
    added = _apply(forecast.loss, loss_failures(forecast.loss, forecast.ladder, fit_cfg)
                   + step_failures(forecast), "loss")
    if forecast.text is not None:
        added += _apply(forecast.text, loss_failures(forecast.text, forecast.text_ladder or [], fit_cfg), "text")
    if forecast.capability is not None:
        added += _apply(forecast.capability, capability_failures(forecast.capability, fit_cfg), "capability")
    return added


def _apply(section, failures: list[str], what: str) -> list[str]:
    if not section.reliable:
        return []  # flagged already: nothing can make it read as reliable
    added = [f"{what}: the stored numbers fail a check that forecast.json does not record: {f}" for f in failures]
    if not added and section.flags:
        added = [f"{what}: forecast.json says reliable although it records flags"]
    section.flags = [*section.flags, *added]
    section.reliable = not section.flags
    return added


def loss_failures(loss: LossForecast, rows: list[dict], fit_cfg) -> list[str]:
    """The checks of fits.fit_loss that `loss`'s stored numbers (and its ladder `rows`) fail."""
    out = []
    lo, hi = loss.interval
    half = (hi - lo) / 2 / loss.predicted
    if half > fit_cfg.max_interval_halfwidth:
        out.append(f"the interval [{lo:.4f}, {hi:.4f}] spans ±{half:.1%} of the forecast "
                   f"(> {fit_cfg.max_interval_halfwidth:.0%})")
    rows = sorted(rows, key=lambda r: r["compute"])
    for a, b in zip(rows, rows[1:]):
        if b["loss"] >= a["loss"]:
            out.append(f"{b['name']}'s loss {b['loss']:.4f} is not below {a['name']}'s {a['loss']:.4f}")
    worst = max(loss.residuals.items(), key=lambda kv: abs(kv[1]), default=None)
    if worst is not None and abs(worst[1]) > fit_cfg.residual_tolerance:
        out.append(f"{worst[0]} lies {worst[1]:+.2%} off the fitted curve "
                   f"(tolerance ±{fit_cfg.residual_tolerance:.1%})")
    slopes, tol = loss.local_slopes, fit_cfg.steepening_tolerance
    pure = loss.law.get("law") == "power-loss"
    for prev, now in zip(slopes, slopes[1:]):
        if now < prev - tol or (pure and now > prev + tol):
            out.append(f"the local slope changes from {prev:.3f} to {now:.3f} (tolerance {tol})")
    frac = loss.law_form_sensitivity.get("irreducible_fraction_of_largest_rung")
    if not pure and frac is not None and frac > fit_cfg.max_irreducible_fraction:
        out.append(f"the irreducible loss is {frac:.1%} of the largest rung's loss "
                   f"(> {fit_cfg.max_irreducible_fraction:.0%})")
    bt = loss.backtest_largest_rung
    if bt and "rel_error" in bt and (abs(bt["rel_error"]) > fit_cfg.backtest_tolerance or not bt["covered"]):
        out.append(f"the leave-largest-out backtest misses {bt['held_out']} by {bt['rel_error']:+.2%} (tolerance "
                   f"±{fit_cfg.backtest_tolerance:.0%}), {'inside' if bt['covered'] else 'outside'} its interval")
    return out


def step_failures(forecast: Forecast) -> list[str]:
    """preregister's step check on the stored target and ladder."""
    from augury.forecast.preregister import MAX_TARGET_STEP_RATIO

    most = max(forecast.ladder, key=lambda r: r["steps"], default=None)
    steps = forecast.target.get("steps")
    if most is None or steps is None or steps / most["steps"] <= MAX_TARGET_STEP_RATIO:
        return []
    return [f"the target takes {steps / most['steps']:.1f}x the optimizer steps of {most['name']} "
            f"(> {MAX_TARGET_STEP_RATIO})"]


def capability_failures(cap: CapabilityForecast, fit_cfg) -> list[str]:
    """The checks of crossfit.cross_fit_flags (one fold: the fold's own) that the stored folds fail."""
    if cap.status != "ok":
        return [f"the capability forecast is {cap.status}"]
    folds = cap.folds
    if not folds:
        return []
    from augury.scaling.diagnostics import exponent_flat

    out = []
    flat = set.intersection(*({b.bucket for b in f.buckets if exponent_flat(b.k_interval)} for f in folds))
    out += [f"bucket {b}: the exponent k's interval does not lie above 0 in every fold" for b in sorted(flat)]
    tests = [f.backtest_largest_rung for f in folds]
    if any(t and "error" in t for t in tests):
        out.append("a capability leave-largest-out backtest could not be fitted")
    elif all(tests):
        if len(folds) == 1:
            rel = tests[0]["rel_error"]
        else:
            rel = relative(float(np.mean([t["predicted"] for t in tests])),
                           float(np.mean([t["actual"] for t in tests])))
        if rel is None:
            out.append(f"the capability leave-largest-out backtest is undefined: {tests[0]['held_out']} solves every "
                       f"kept problem (actual mean -log pass rate 0)")
        elif abs(rel) > fit_cfg.capability_backtest_tolerance:
            out.append(f"the capability leave-largest-out backtest misses by {rel:+.1%} (tolerance "
                       f"±{fit_cfg.capability_backtest_tolerance:.0%})")
    return out
