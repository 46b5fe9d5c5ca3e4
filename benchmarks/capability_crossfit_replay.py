"""Replay the capability forecast of finished forecasts with today's code (cross-fitting over the seed replicas)
from their recorded samples, and compare with what each forecast registered when it ran.

    python benchmarks/capability_crossfit_replay.py "/tmp/grid/preset/seed*"

Nothing is trained or sampled: each folder's capability/<run>.json records (every rung replica's and the
target's samples) are refitted with `pipeline._capability_forecast` and scored with `verify_capability`, exactly
as a new forecast would be. Prints one line per folder (registered error, replayed error, each fold's actual,
flagged) and the mean, spread and count within 10% of both.
"""

from __future__ import annotations

import argparse
import glob
import json
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="+", help="globs of finished forecast folders")
    args = ap.parse_args()
    from augury.forecast import pipeline
    from augury.forecast.config import load_forecast_config
    from augury.forecast.ladder import plan_runs
    from augury.forecast.preregister import fit_compute

    registered, replayed, flagged = [], [], 0
    for folder in sorted(Path(p) for pattern in args.folders for p in glob.glob(pattern)):
        if not (folder / "result.json").is_file() or not (folder / "capability" / "target.json").is_file():
            continue
        cfg = load_forecast_config(None, str(folder / "config.yaml"))
        vocab = json.loads((folder / "plan.json").read_text())["vocab_size"]
        runs = plan_runs(cfg, vocab)
        xs = {p.name: fit_compute(p, cfg.fit.compute) for p in runs}
        cap = pipeline._capability_forecast(cfg, folder, None, runs[:-1], xs, xs[runs[-1].name])
        target = json.loads((folder / "capability" / "target.json").read_text())["records"]
        check = pipeline.verify_capability(cap, target)
        old = json.loads((folder / "result.json").read_text())["capability"]["rel_error"]
        registered.append(old)
        replayed.append(check["rel_error"])
        flagged += not cap["reliable"]
        actuals = ", ".join(f"{f['actual']:.3f}" for f in check["folds"])
        print(f"{folder}: registered {old:+.1%}, replayed {check['rel_error']:+.1%} (fold actuals {actuals})"
              + (" flagged" if not cap["reliable"] else ""))
    for name, errs in (("registered", registered), ("replayed", replayed)):
        e = np.array(errs)
        print(f"{name}: mean {e.mean():+.1%} sd {e.std(ddof=1):.1%} within 10% on {(np.abs(e) <= 0.1).sum()} of {len(e)}")
    print(f"replayed forecasts flagged: {flagged} of {len(replayed)}")


if __name__ == "__main__":
    main()
