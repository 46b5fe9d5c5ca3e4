"""Verification: the trained target measured against the pre-registered forecast (result.json's content),
and the summary lines `augury forecast` prints at the end.

    from augury.forecast.verify import verify_forecast
    result = verify_forecast(cfg, out, data, forecast, target, target_summary, vocab)
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from augury.forecast import capability as capmod
from augury.forecast.crossfit import capability_records
from augury.forecast.ladder import RunPlan
from augury.forecast.preregister import SCHEMA_VERSION, relative
from augury.io import utc_now


def run_row(plan: RunPlan, summary: dict | list[dict]) -> dict:
    """A run's record in forecast.json; a rung trained with several seeds gets their mean loss (and each one)."""
    sums = summary if isinstance(summary, list) else [summary]
    row = {**dataclasses.asdict(plan), "loss": float(np.mean([s["final_val_loss"] for s in sums])),
           "bpb": float(np.mean([s["final_val_bpb"] for s in sums])), "epochs": sums[0].get("epochs"),
           "seconds": sum(s.get("seconds") or 0 for s in sums)}
    if len(sums) > 1:
        row["seed_losses"] = [s["final_val_loss"] for s in sums]
    return row



def text_ids(cfg, data):
    from augury.forecast.heldout_text import encode_folder

    return encode_folder(cfg.text_folder, data.tokenizer(), cfg.recipe.eval_tokens)



def verify_forecast(cfg, out: Path, data, forecast: dict, target: RunPlan, tsum: dict, vocab: int) -> dict:
    loss = forecast["loss"]
    actual = tsum["final_val_loss"]
    lo, hi = loss["interval"]
    result = {"schema_version": SCHEMA_VERSION, "name": cfg.name, "forecast_sha256": forecast["sha256"],
              "verified_at": utc_now(),
              "loss": {"predicted": loss["predicted"], "interval": loss["interval"], "actual": actual,
                       "rel_error": relative(loss["predicted"], actual), "covered": bool(lo <= actual <= hi),
                       "forecast_flagged": not loss["reliable"]},
              "target_run": {**run_row(target, tsum), "fraction": 1.0},
              "largest_rung_fraction": forecast["ladder"][-1]["fraction"]}
    if "capability" in forecast:
        cap = forecast["capability"]
        problems = json.loads((out / "capability" / "problems.json").read_text())
        recs = capability_records(cfg, out, "target", out / "target", problems)
        result["capability"] = verify_capability(cap, recs)
    if "text" in forecast:
        from augury.forecast.heldout_text import heldout_loss

        ids = text_ids(cfg, data)
        a = heldout_loss(out / "target", ids, cfg.recipe.seq_len)
        tx = forecast["text"]
        result["text"] = {"predicted": tx["predicted"], "interval": tx["interval"], "actual": a,
                          "rel_error": relative(tx["predicted"], a),
                          "covered": bool(tx["interval"][0] <= a <= tx["interval"][1])}
    return result


def verify_capability(cap: dict, records: list[dict]) -> dict:
    """result.json's capability section: the target's `records` scored on each fold's kept problems, their
    mean against the registered forecast."""
    folds = []
    for fold in cap.get("folds") or [cap]:  # a forecast registered before cross-fitting has one fold
        kept = [p for b in fold["buckets"] for p in b["problems"]]
        mean, zeros = capmod.neg_log_pass_rate(records, kept)
        folds.append({"predicted": fold["predicted_mean_neg_log_pass_rate"], "actual": mean,
                      "actual_buckets": [capmod.neg_log_pass_rate(records, b["problems"])[0] for b in fold["buckets"]],
                      "predicted_buckets": [b["predicted"] for b in fold["buckets"]], "unsolved_kept_problems": zeros})
    pred = cap["predicted_mean_neg_log_pass_rate"]
    actual = float(np.mean([f["actual"] for f in folds]))
    return {"status": cap.get("status", "ok"), "predicted": pred, "actual": actual,
            "rel_error": relative(pred, actual) if pred is not None else None, "folds": folds,
            "forecast_flagged": not cap["reliable"],
            "note": "mean -log pass rate over the problems every rung solved at least once (per fold: kept on one "
                    "half of the rungs' samples), averaged over the folds; a problem the target never solved "
                    "counts at pass rate 1/(2n)"}


def summary_text(forecast: dict, result: dict) -> str:
    r = result["loss"]
    lines = [(f"target loss: predicted {r['predicted']:.4f} [{r['interval'][0]:.4f}, {r['interval'][1]:.4f}], "
             f"actual {r['actual']:.4f}, error {r['rel_error']:+.2%}, "
             f"interval {'covers' if r['covered'] else 'MISSES'} it"
             + (" (the forecast was FLAGGED as unreliable before the target ran)" if r["forecast_flagged"] else ""))]
    if "capability" in result:
        c = result["capability"]
        if c.get("predicted") is None:
            lines.append(f"capability (mean -log pass rate): NOT FORECASTABLE ({forecast['capability']['reason']}); "
                         f"actual {c['actual']:.3f}")
        else:
            lines.append(f"capability (mean -log pass rate): predicted {c['predicted']:.3f}, actual "
                         f"{c['actual']:.3f}, error {c['rel_error']:+.1%}"
                         + (" (FLAGGED before the target ran)" if c["forecast_flagged"] else ""))
    if "text" in result:
        t = result["text"]
        lines.append(f"held-out text loss: predicted {t['predicted']:.4f}, actual {t['actual']:.4f}, "
                     f"error {t['rel_error']:+.2%}")
    return "\n".join(lines)
