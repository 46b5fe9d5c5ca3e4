"""Ablation of the OLMo two-step task backtest (benchmarks/backtest_olmo.py part (b)): run 1's protocol (v1),
then the ladder paper's changes added one at a time, plus step 2 fitted exactly as the paper's code does
(scipy `curve_fit`, squared error on accuracy itself, bounds a in [-1, 0], x0, k >= 0, b in [0, 1], its first
start) as a parity check against the paper's own figures/chained_main.csv. Point predictions only (no
bootstrap); 13B target; mean |relative error| over the 8 tasks.

    OMP_NUM_THREADS=1 python -m experiments.olmo.two_step_ablation --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from scipy.optimize import curve_fit

from augury.scaling import fit_law
from augury.scaling.laws import Sigmoid
from augury.scaling.olmo import TASK_NAMES, load_ladder, load_paper_predictions, load_target

LADDER = ("190M", "370M", "760M", "1B")
# name: (paper's 16 runs, step-1 last-5 mean, step-2 skip 10% + 5-eval mean, step-2 fit)
CONFIGS = {
    "v1 (run 1)": (False, False, False, "fixed ceiling, huber 1e-3"),
    "+ paper's 16 runs": (True, False, False, "fixed ceiling, huber 1e-3"),
    "+ step-1 last-5 mean": (True, True, False, "fixed ceiling, huber 1e-3"),
    "+ step-2 skip/smoothing": (True, True, True, "fixed ceiling, huber 1e-3"),
    "+ fitted ceiling, anchor (0,1)": (True, True, True, "anchor, huber 1e-3"),
    "+ least squares on log acc (run 2)": (True, True, True, "anchor, huber 10"),
    "paper's step 2 (curve_fit on acc)": (True, True, True, "curve_fit"),
}


def trailing_mean(v: np.ndarray, window: int = 5) -> np.ndarray:
    c = np.cumsum(v, dtype=float)
    out = c.copy()
    out[window:] = c[window:] - c[:-window]
    return out / np.minimum(np.arange(1, len(v) + 1), window)


def paper_sigmoid(x, a, x0, k, b):
    return a / (1 + np.exp(-k * (x - x0))) + b


def predict(runs, target, task, last5, smooth, how) -> float:
    loss_col, acc_col = f"{task}_bpb", f"{task}_acc"
    final = []
    for rows in runs.values():
        row = dict(rows[-1])
        if last5:
            row[loss_col] = float(np.mean([r[loss_col] for r in rows[-5:]]))
        final.append(row)
    step1 = fit_law("chinchilla", final, y=loss_col, bootstrap=0)
    loss = float(step1.predict(target)[0][0])
    xs, ys = [], []
    for rows in runs.values():
        kept = rows[math.ceil(0.1 * len(rows)):] if smooth else rows
        x, y = np.array([r[loss_col] for r in kept]), np.array([r[acc_col] for r in kept])
        if smooth:
            x, y = trailing_mean(x), trailing_mean(y)
        xs += list(x)
        ys += list(y)
    if how != "fixed ceiling, huber 1e-3":
        xs, ys = xs + [0.0], ys + [1.0]
    if how == "curve_fit":
        p, _ = curve_fit(paper_sigmoid, xs, ys, p0=[-0.75, 0.9, 3.0, 1.0],
                         bounds=([-1, 0, 0, 0], [0, np.inf, np.inf, 1]), maxfev=500000)
        return float(paper_sigmoid(loss, *p))
    law = Sigmoid(column="x", fixed_ceiling=how.startswith("fixed"))
    step2 = fit_law(law, {"x": np.array(xs), "y": np.array(ys)}, y="y", bootstrap=0,
                    delta=10.0 if how.endswith("huber 10") else 1e-3)
    return float(step2.law.predict(step2.theta, {"x": np.array([loss])})[0][0])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", required=True, type=Path, help="folder holding olmo-ladder/")
    args = ap.parse_args(argv)
    if not (Path(args.data_dir) / "olmo-ladder").is_dir():
        raise SystemExit(f"error: {args.data_dir}/olmo-ladder not found")
    rows = load_ladder(args.data_dir, sizes=LADDER, checkpoints="all")
    all_runs: dict[str, list[dict]] = {}
    for r in rows:
        all_runs.setdefault(r["name"], []).append(r)
    paper_runs = {k: v for k, v in all_runs.items() if v[0]["mult"] in (1, 2, 5, 10) and not v[0]["rerun"]}
    t = load_target(args.data_dir, "13B")
    target = {"params": t["params"], "tokens": t["tokens"]}
    paper = load_paper_predictions(args.data_dir)
    print(f"{'configuration':<36} {'mean':>6}  " + " ".join(f"{n[:8]:>8}" for n in TASK_NAMES))
    paper_mean = 100 * np.mean([paper[n]["rel_error"] for n in TASK_NAMES])
    print(f"{'paper (figures/chained_main.csv)':<36} {paper_mean:>5.2f}%  "
          + " ".join(f"{100 * (paper[n]['predicted'] / paper[n]['actual'] - 1):>+7.2f}%" for n in TASK_NAMES))
    for name, (paper_set, last5, smooth, how) in CONFIGS.items():
        runs = paper_runs if paper_set else all_runs
        errs = [predict(runs, target, n, last5, smooth, how) / paper[n]["actual"] - 1 for n in TASK_NAMES]
        print(f"{name:<36} {100 * np.mean(np.abs(errs)):>5.2f}%  " + " ".join(f"{100 * e:>+7.2f}%" for e in errs),
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
