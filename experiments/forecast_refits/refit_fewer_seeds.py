"""Refit finished forecasts with fewer seeds per rung: what a forecast would have registered with `ladder.seeds: k`
(k below what it trained), scored against the target it trained. Exact, not a simulation: replica j of a rung
trains with seed + 1000·j whatever `ladder.seeds` is, so a k-seed ladder is the first k replicas of a larger one.

    python -m experiments.forecast_refits.refit_fewer_seeds --seeds 3 2 -- "runs/forecast-seeds/preset/seed*"

No training or sampling: the loss law is refitted on the first k of each rung's `seed_losses` (forecast.json), the
capability forecast on the first k replicas' recorded samples (capability/<run>.json), both with the folder's own
config (config.yaml) and `ladder.seeds` set to k, and verified against result.json's actual loss and the target's
recorded samples. Prints one row per folder and k, then the mean error, spread and the goals' counts per k.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from experiments.forecast_refits.finished_forecasts import finished_forecasts, replay_capability


def refit(folder: Path, k: int) -> dict:
    from augury.forecast.config import load_forecast_config
    from augury.forecast.fits import fit_loss, relative

    cfg = load_forecast_config(None, str(folder / "config.yaml"), overrides={"progress": False})
    cfg = dataclasses.replace(cfg, ladder=dataclasses.replace(cfg.ladder, seeds=k))
    forecast = json.loads((folder / "forecast.json").read_text())
    result = json.loads((folder / "result.json").read_text())
    rows = []
    for r in forecast["ladder"]:
        seeds = r["seed_losses"][:k]
        if len(seeds) < k:
            raise SystemExit(f"{folder}: {r['name']} trained {len(r['seed_losses'])} seeds, fewer than {k}")
        rows.append({**r, "loss": float(np.mean(seeds)), "seed_losses": seeds if k > 1 else None})
    loss, _ = fit_loss(rows, forecast["target"]["compute"], cfg.fit, cfg.seed, x="compute")
    actual = result["loss"]["actual"]
    lo, hi = loss.interval
    row = {"folder": str(folder), "k": k, "predicted": loss.predicted, "interval": loss.interval,
           "actual": actual, "error": relative(loss.predicted, actual), "covered": lo <= actual <= hi}
    if cfg.capability.enabled and (folder / "capability" / "target.json").is_file():
        cap, check = replay_capability(folder, cfg)
        row.update(cap_error=check.rel_error, cap_flagged=not cap.reliable)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[3, 2], help="seeds per rung to refit with")
    ap.add_argument("folders", nargs="+", help="finished forecast folders (globs allowed)")
    args = ap.parse_args()
    folders = finished_forecasts(args.folders)
    rows = [refit(folder, k) for k in args.seeds for folder in folders]
    print("| seeds | forecast | predicted [90%] | actual | loss error | covered | capability error |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        cap = (f"{r['cap_error']:+.1%}" + (" (flagged)" if r["cap_flagged"] else "")) if "cap_error" in r else "-"
        print(f"| {r['k']} | {r['folder']} | {r['predicted']:.4f} [{r['interval'][0]:.4f}, {r['interval'][1]:.4f}] "
              f"| {r['actual']:.4f} | {r['error']:+.2%} | {'yes' if r['covered'] else 'no'} | {cap} |")
    for k in args.seeds:
        sub = [r for r in rows if r["k"] == k]
        err = np.array([r["error"] for r in sub])
        line = (f"seeds {k}: loss error mean {err.mean():+.2%}, sd {err.std(ddof=1) if len(err) > 1 else 0:.2%}, "
                f"within 3% {int((np.abs(err) <= 0.03).sum())}/{len(sub)}, covered "
                f"{sum(r['covered'] for r in sub)}/{len(sub)}")
        caps = np.array([r["cap_error"] for r in sub if "cap_error" in r])
        if len(caps):
            line += f"; capability within 10% {int((np.abs(caps) <= 0.1).sum())}/{len(caps)}, mean {caps.mean():+.1%}"
        print(line)


if __name__ == "__main__":
    main()
