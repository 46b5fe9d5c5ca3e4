"""Replay the capability forecast of finished forecasts with today's code (cross-fitting over the seed replicas)
from their recorded samples, and compare with what each forecast registered when it ran.

    python -m experiments.forecast_refits.capability_crossfit_replay "runs/forecast-seeds/preset/seed*"

Nothing is trained or sampled: each folder's capability/<run>.json records (every rung replica's and the
target's samples) are refitted with `crossfit.capability_forecast` and scored with `verify.verify_capability`, exactly
as a new forecast would be. Prints one line per folder (registered error, replayed error, each fold's actual,
flagged) and the mean, spread and count within 10% of both.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from experiments.forecast_refits.finished_forecasts import finished_forecasts, replay_capability


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="+", help="globs of finished forecast folders")
    args = ap.parse_args()
    from augury.forecast.config import load_forecast_config

    registered, replayed, flagged = [], [], 0
    for folder in finished_forecasts(args.folders):
        if not (folder / "capability" / "target.json").is_file():
            continue
        cap, check = replay_capability(folder, load_forecast_config(None, str(folder / "config.yaml")))
        old = json.loads((folder / "result.json").read_text())["capability"]["rel_error"]
        registered.append(old)
        replayed.append(check.rel_error)
        flagged += not cap.reliable
        actuals = ", ".join(f"{f.actual:.3f}" for f in check.folds)
        print(f"{folder}: registered {old:+.1%}, replayed {check.rel_error:+.1%} (fold actuals {actuals})"
              + (" flagged" if not cap.reliable else ""))
    if not replayed:
        raise SystemExit("none of the folders recorded capability samples (capability/target.json)")
    for name, errs in (("registered", registered), ("replayed", replayed)):
        e = np.array(errs)
        sd = f"{e.std(ddof=1):.1%}" if len(e) > 1 else "— (one forecast)"
        print(f"{name}: mean {e.mean():+.1%} sd {sd} within 10% on {(np.abs(e) <= 0.1).sum()} of {len(e)}")
    print(f"replayed forecasts flagged: {flagged} of {len(replayed)}")


if __name__ == "__main__":
    main()
