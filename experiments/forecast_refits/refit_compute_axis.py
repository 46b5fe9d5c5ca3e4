"""Refit finished forecasts on each compute axis: what a forecast would have predicted with `fit.compute: flops`
instead of `non-embedding` (or the reverse), from the rungs it registered, scored against the target it trained.

    python -m experiments.forecast_refits.refit_compute_axis \\
        runs/forecast-seeds/cb/seed0 "runs/forecast-seeds/preset/seed*"

No training: each folder's forecast.json gives the rungs (their seed losses, parameters, tokens and FLOPs) and
result.json the target's actual loss. The fit, law and interval are the folder's preset's (`--preset`, default
cpu-demo), only the compute axis changes. This is a look back at runs already made, so an axis chosen from its
output is a hypothesis for fresh seeds, not a measured forecast.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from experiments.forecast_refits.finished_forecasts import finished_forecasts


def refit(folder: Path, fit_cfg, axes: list[str]) -> dict:
    from augury.forecast.fits import fit_compute, fit_loss, relative

    forecast = json.loads((folder / "forecast.json").read_text())
    actual = json.loads((folder / "result.json").read_text())["loss"]["actual"]
    row = {"actual": actual}
    for axis in axes:
        rungs = [{**r, "x": fit_compute(r, axis)} for r in forecast["ladder"]]
        rec, _ = fit_loss(rungs, fit_compute(forecast["target"], axis), fit_cfg, 0, x="x")
        lo, hi = rec.interval
        row[axis] = {"predicted": rec.predicted, "error": relative(rec.predicted, actual),
                     "covered": lo <= actual <= hi}
    return row


def main() -> None:
    from augury.forecast.config import load_forecast_config

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+", help="forecast output folders (globs allowed)")
    ap.add_argument("--preset", default="cpu-demo", help="whose fit settings (law, interval, level) to use")
    ap.add_argument("--axes", nargs="+", default=["non-embedding", "flops"])
    args = ap.parse_args()
    fit_cfg = load_forecast_config(args.preset).fit
    folders = finished_forecasts(args.folders)
    print("| forecast | actual | " + " | ".join(f"{a}: predicted, error, covered" for a in args.axes) + " |")
    print("|---|---|" + "---|" * len(args.axes))
    for folder in folders:
        row = refit(folder, fit_cfg, args.axes)
        cells = [f"{row[a]['predicted']:.4f}, {row[a]['error']:+.2%}, {'yes' if row[a]['covered'] else 'no'}"
                 for a in args.axes]
        print(f"| {folder} | {row['actual']:.4f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
