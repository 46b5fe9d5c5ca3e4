"""Pre-registration: the trained rungs' results → the forecast of the target, frozen as forecast.json before the
target starts (records.write_forecast: written once, atomically, with a sha256 that any later edit breaks), its
sha256 recorded in plan.json too (folder.pin_forecast).

    from augury.forecast.preregister import preregister
    forecast = preregister(cfg, out, data, rungs, target, summaries)   # a Forecast; reads forecast.json if there

The loss law and its checks are `fits.fit_loss`, the capability forecast `crossfit.capability_forecast`; this
module adds the checks that need the plan (the target's optimizer steps against the rungs') and the record of how
much of the training split each run covers. A forecast read back is checked (check_registered) against the sha256
plan.json recorded, the prepared data and held-out text it was made on, and its own checks (recheck.py).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from augury.forecast.crossfit import capability_forecast
from augury.forecast.fits import COMPUTE_DEFINITIONS, fit_compute, fit_loss
from augury.forecast.folder import check_same_data, data_sha256, pin_forecast, pinned_forecast_sha256
from augury.forecast.ladder import RunPlan, rung_replicas
from augury.forecast.records import Forecast, ForecastTampered, LossForecast, read_forecast, register_forecast


def preregister(cfg, out: Path, data, rungs: list[RunPlan], target: RunPlan, summaries: dict[str, list],
                log=print) -> Forecast:
    """The forecast of `target` from the rungs' training `summaries` ({rung: [summary per seed]}), written to
    out/forecast.json; an existing forecast.json is read back (check_registered), never refitted."""
    path = out / "forecast.json"
    if path.is_file():
        return check_registered(cfg, out, data, log)
    how = cfg.fit.compute
    xs = {p.name: fit_compute(p, how) for p in [*rungs, target]}  # compute on the laws' x axis
    rows = [{**run_row(p, summaries[p.name]), "compute": xs[p.name]} for p in rungs]
    loss, _ = _fit(rows, xs[target.name], cfg, out, "the loss law")
    step_flag = step_extrapolation_flag(rungs, target)
    if step_flag:
        loss.flag(step_flag)
    forecast = Forecast(name=cfg.name, target={**dataclasses.asdict(target), "role": "target",
                                               "compute": xs[target.name]},
                        ladder=rows, compute=how, compute_definition=COMPUTE_DEFINITIONS[how], loss=loss,
                        data_coverage=data_coverage([*rungs, target], data.split_tokens("train")),
                        data_sha256=data_sha256(data))
    if cfg.capability.enabled:
        try:
            forecast.capability = capability_forecast(cfg, out, data, rungs, xs, xs[target.name])
        except ValueError as err:  # e.g. too few problems solved by every rung
            forecast.capability_skipped = f"capability forecast not possible: {err}"
    if cfg.text_folder:
        forecast.text, forecast.text_ladder = text_forecast(cfg, out, data, rungs, xs, xs[target.name])
    forecast = register_forecast(path, forecast)
    pin_forecast(out, forecast.sha256)
    status = "reliable" if loss.reliable else "FLAGGED (see flags)"
    log(f"pre-registered {path}: target loss {loss.predicted:.4f} "
        f"[{loss.interval[0]:.4f}, {loss.interval[1]:.4f}] nats/token, {status}\n  sha256 {forecast.sha256} "
        f"(publish it before the target finishes to make the pre-registration checkable)")
    for f in loss.flags:
        log(f"  flag: {f}")
    cov = forecast.data_coverage["share"]
    log(f"  the target trains on {cov[target.name]:.0%} of the training split, the largest rung on "
        f"{cov[rungs[-1].name]:.0%}")
    return forecast


def _fit(rows: list[dict], target_x: float, cfg, out: Path, what: str):
    """fit_loss, its refusal (a target too far beyond the rungs, too few resamples converged, too few rungs for the
    law) said with what was fitted and what is left: a TableError the command reports as one error line."""
    from augury.scaling import TableError

    try:
        return fit_loss(rows, target_x, cfg.fit, cfg.seed, x="compute")
    except TableError as err:
        raise TableError(f"{what}: {err}; nothing was registered and the target was not trained (the trained rungs "
                         f"stay in {out})") from None


def text_forecast(cfg, out: Path, data, rungs: list[RunPlan], xs: dict, target_x: float
                  ) -> tuple[LossForecast, list[dict]]:
    """The loss law fitted on the rungs' loss on `cfg.text_folder` (the mean over a rung's seeds), and those rows."""
    from augury.forecast.heldout_text import folder_ids, heldout_loss, tokens_sha256

    ids = folder_ids(cfg, data)
    rows = []
    for p in rungs:
        losses = [heldout_loss(out / "rungs" / r.name, ids, cfg.recipe.seq_len) for r, _, _ in rung_replicas(cfg, [p])]
        rows.append({"name": p.name, "flops": p.flops, "compute": xs[p.name], "loss": float(np.mean(losses))})
    text, _ = _fit(rows, target_x, cfg, out, f"the held-out text loss law ({cfg.text_folder})")
    text.folder, text.rungs, text.y_label = str(cfg.text_folder), rows, "held-out text loss (nats/token)"
    text.tokens_sha256, text.tokens = tokens_sha256(ids), len(ids)
    return text, rows


def check_registered(cfg, out: Path, data, log=print) -> Forecast:
    """out/forecast.json read back for a resume or a verification: its sha256 must be its own and the one plan.json
    recorded at registration (else ForecastTampered), its data and held-out text those prepared now (else
    ForecastConfigError); its checks are recomputed from its stored numbers (recheck.py)."""
    from augury.forecast.heldout_text import check_registered_text, folder_ids
    from augury.forecast.recheck import recheck_forecast

    path = out / "forecast.json"
    forecast = read_forecast(path)
    pinned = pinned_forecast_sha256(out)
    if pinned is None:  # registered by an older augury, or stopped between registering and recording it
        if (out / "target").exists():
            log(f"note: {out}/plan.json records no sha256 of forecast.json (an older augury wrote it): forecast.json "
                f"is checked against its own sha256 only")
        pin_forecast(out, forecast.sha256)
    elif pinned != forecast.sha256:
        raise ForecastTampered(f"{path}: its sha256 {forecast.sha256} is not the one {out}/plan.json recorded when the "
                               f"forecast was registered ({pinned}): forecast.json was edited or replaced after "
                               f"registration; start a new forecast in another folder")
    check_same_data(out, forecast.data_sha256, data_sha256(data), "forecast.json", data.dir)
    if forecast.text is not None and cfg.text_folder:
        check_registered_text(forecast.text, folder_ids(cfg, data))
    log(f"using the pre-registered forecast {path} (verified against its sha256)")
    for flag in recheck_forecast(forecast, cfg.fit):
        log(f"  flag: {flag}")
    return forecast


def run_row(plan: RunPlan, summary: dict | list[dict]) -> dict:
    """A run's record in forecast.json; a rung trained with several seeds gets their mean loss (and each one)."""
    sums = summary if isinstance(summary, list) else [summary]
    row = {**dataclasses.asdict(plan), "loss": float(np.mean([s["final_val_loss"] for s in sums])),
           "bpb": float(np.mean([s["final_val_bpb"] for s in sums])), "epochs": sums[0].get("epochs"),
           "seconds": sum(s.get("seconds") or 0 for s in sums)}
    if len(sums) > 1:
        row["seed_losses"] = [s["final_val_loss"] for s in sums]
    return row


# A target may take at most this many times the optimizer steps of the rung with the most before the forecast is
# flagged (the evidence: step_extrapolation_flag's docstring).
MAX_TARGET_STEP_RATIO = 1.5


def step_extrapolation_flag(rungs: list[RunPlan], target: RunPlan) -> str | None:
    """A flag when the target takes many more optimizer steps than any rung: what the extra updates give is
    outside the ladder's data. On cpu-demo's ladder a target with 1.85x rung4's steps (a batch growing as D^(2/3))
    beat the rungs' line by 3.3% and 6.6%, one with 6.5x (a fixed batch) by 2.3-6.7%; at 0.93x (the batch rule)
    the mean error over its seeds is about -1% (BENCHMARKS.md)."""
    most = max(rungs, key=lambda r: r.steps)
    ratio = target.steps / most.steps
    if ratio <= MAX_TARGET_STEP_RATIO:
        return None
    return (f"the target takes {target.steps:,} optimizer steps, {ratio:.1f}x the most of any rung ({most.name}: "
            f"{most.steps:,}): the gain from the extra updates is outside the ladder's data (with 1.85-6.5x its "
            f"rung4's steps cpu-demo's target beat its rungs' line by 2-7%); give every run about as many steps "
            f"(recipe.steps_per_run with recipe.batch_exponent 1) instead")


def data_coverage(runs: list[RunPlan], train_tokens: int) -> dict:
    """The share of the training split each run trains on (every run is single-epoch). Recorded, not flagged: on
    cpu-demo's stdlib corpus the loss curve steepened where the runs neared the whole split (BENCHMARKS.md), a
    change of regime the rungs, which see a small share, cannot show."""
    return {"train_tokens": int(train_tokens), "share": {r.name: r.tokens / train_tokens for r in runs}}

