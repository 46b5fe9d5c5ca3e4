"""Seeds per rung, chosen by resampling real runs: how a ladder design (seeds at each rung) spreads the loss
forecast's error, from a pool of forecasts of one preset that trained the same rungs with different seeds.

    python -m experiments.forecast_refits.ladder_design_resample "runs/forecast-seeds/preset/seed*" \\
        --designs 2,2,2,2 3,3,3,3 4,2,2,4

Every forecast folder contributes its rungs' seed losses (forecast.json `seed_losses`) to a pool per rung and its
target's loss (result.json) to a pool of targets; duplicate runs (the same training seed seen in two folders) are
counted once. A design draws its seeds at each rung from the rung's pool without replacement, fits the power law
by least squares on every run in log-log (the prediction-interval fit of `fit.interval: prediction`), and scores
the forecast and its 90% interval against a target drawn from the pool. Prints, per design: the mean and spread
of the relative error, P(|error| <= 3%), P(within 3% and covered) and that probability cubed (three
seeds all passing), and the ladder's cost in rung-runs weighted by each rung's training seconds in the folders.
With `--split K`, the forecast seeds below K and from K on are scored separately (a selection and a check set).
"""

from __future__ import annotations

import argparse
import glob
import json
import math
from pathlib import Path

import numpy as np
from scipy import stats


def load_pool(patterns: list[str], compute: str) -> tuple[list[dict], dict, float]:
    """([rung: {compute, seconds_per_run, runs: [(forecast seed, replica, loss)]}], {forecast seed: target loss})."""
    from augury.forecast.fits import fit_compute

    rungs: dict[str, dict] = {}
    targets: dict[int, float] = {}
    seen = set()
    paths = sorted(p for pattern in patterns for p in glob.glob(str(Path(pattern) / "forecast.json")))
    for path in paths:
        forecast = json.loads(Path(path).read_text())
        result_path = Path(path).with_name("result.json")
        if not result_path.is_file():
            continue
        seed = int(json.loads(Path(path).with_name("plan.json").read_text())["identity"]["config"]["seed"])
        if seed in seen:
            continue
        seen.add(seed)
        targets[seed] = json.loads(result_path.read_text())["loss"]["actual"]
        for row in forecast["ladder"]:
            losses = row.get("seed_losses") or [row["loss"]]
            rung = rungs.setdefault(row["name"], {"name": row["name"], "compute": fit_compute(row, compute), "runs": [],
                                                  "seconds_per_run": row["seconds"] / len(losses)})
            rung["runs"] += [(seed, j, v) for j, v in enumerate(losses)]
    if not targets:
        raise SystemExit(f"no finished forecasts under {' '.join(patterns)}")
    target_compute = fit_compute(forecast["target"], compute)
    return sorted(rungs.values(), key=lambda r: r["compute"]), targets, target_compute


def simulate(design, rungs, targets, target_compute, seeds, draws, level, rng) -> dict:
    u = np.log([r["compute"] for r in rungs])
    u0 = math.log(target_compute)
    pools = [np.log([v for s, _, v in r["runs"] if s in seeds]) for r in rungs]
    tpool = np.log([v for s, v in targets.items() if s in seeds])
    errors, ok = [], []
    for _ in range(draws):
        xs = np.concatenate([[u[i]] * k for i, k in enumerate(design) if k])
        ys = np.concatenate([rng.choice(pools[i], k, replace=False) for i, k in enumerate(design) if k])
        n = len(xs)
        slope, icpt = np.polyfit(xs, ys, 1)
        pred = icpt + slope * u0
        s = math.sqrt(float(np.sum((ys - icpt - slope * xs) ** 2)) / (n - 2))
        se = s * math.sqrt(1 + 1 / n + (u0 - xs.mean()) ** 2 / float(np.sum((xs - xs.mean()) ** 2)))
        actual = rng.choice(tpool)
        err = math.exp(pred - actual) - 1
        errors.append(err)
        ok.append(abs(err) <= 0.03 and abs(pred - actual) <= stats.t.ppf(0.5 + level / 2, n - 2) * se)
    e = np.array(errors)
    p_ok = float(np.mean(ok))
    return {"bias": float(e.mean()), "sd": float(e.std()), "within_3pct": float(np.mean(np.abs(e) <= 0.03)),
            "ok": p_ok, "ok_cubed": p_ok ** 3, "forecast_seeds": len(tpool), "runs_per_rung": [len(p) for p in pools]}


def check_design(spec: str, rungs: list[dict], sets: dict[str, set]) -> list[int]:
    """The seeds per rung of `spec`, or an error where a set of forecast seeds cannot fill it (draws are without
    replacement) or it has too few runs for the line's residual spread (n − 2 degrees of freedom)."""
    try:
        design = [int(k) for k in spec.split(",")]
    except ValueError:
        raise SystemExit(f"design {spec}: seeds per rung must be whole numbers, comma-separated") from None
    if len(design) != len(rungs):
        raise SystemExit(f"design {spec} has {len(design)} rungs, the folders have {len(rungs)}")
    if min(design) < 0 or sum(design) < 3 or sum(k > 0 for k in design) < 2:
        raise SystemExit(f"design {spec}: needs at least 3 runs on at least 2 rungs to fit a line and its spread")
    for name, seeds in sets.items():
        if not seeds:
            raise SystemExit(f"{name}: no forecast seed in this set")
        for k, rung in zip(design, rungs):
            pool = sum(s in seeds for s, _, _ in rung["runs"])
            if k > pool:
                raise SystemExit(f"design {spec}: {rung['name']} has {pool} runs in {name}, the design draws {k}")
    return design


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="+", help="globs of forecast folders, e.g. 'runs/forecast-seeds/preset/seed*'")
    ap.add_argument("--designs", nargs="+", default=["2,2,2,2", "3,3,3,3"], help="seeds per rung, comma-separated")
    ap.add_argument("--compute", default="non-embedding", help="the law's compute axis (fit.compute)")
    ap.add_argument("--draws", type=int, default=5000)
    ap.add_argument("--level", type=float, default=0.9)
    ap.add_argument("--split", type=int, default=None, help="score forecast seeds < K and >= K separately")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rungs, targets, target_compute = load_pool(args.folders, args.compute)
    every = set(targets)
    sets = {"all": every} if args.split is None else {f"seeds<{args.split}": {s for s in every if s < args.split},
                                                      f"seeds>={args.split}": {s for s in every if s >= args.split}}
    designs = {spec: check_design(spec, rungs, sets) for spec in args.designs}  # every one before any is drawn
    print(f"{len(targets)} forecasts; runs per rung: {[len(r['runs']) for r in rungs]}")
    for spec, design in designs.items():
        cost = sum(k * r["seconds_per_run"] for k, r in zip(design, rungs))
        parts = []
        for name, seeds in sets.items():
            r = simulate(design, rungs, targets, target_compute, seeds, args.draws, args.level,
                         np.random.default_rng(args.seed))
            parts.append(f"{name}: bias {r['bias']:+.2%} sd {r['sd']:.2%} |e|<=3% {r['within_3pct']:.1%} "
                         f"ok {r['ok']:.1%} ok^3 {r['ok_cubed']:.0%}")
        print(f"{spec:10s} cost {cost:6.1f} s | " + " | ".join(parts))


if __name__ == "__main__":
    main()
