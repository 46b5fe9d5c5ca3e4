"""Speed of fit + 1,000 bootstrap resamples of `chinchilla` on the 30 OLMo ladder runs (190M-3B, final
checkpoints): augury's vectorised fitter vs a plain `scipy.optimize.curve_fit` loop doing the same work.

Same work = the full-data fit from Hoffmann et al.'s grid of 4,500 initial values, then 1,000 bootstrap
refits (resampling runs) warm-started from the full-data optimum, all with the Huber loss (delta 1e-3) on
log residuals (curve_fit: least_squares with loss="huber", f_scale=delta on log L). The curve_fit grid is
timed on every 10th grid point and scaled by 10 (a full pass takes minutes); that is printed as such.

    OMP_NUM_THREADS=1 python -m benchmarks.bootstrap_speed --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
from scipy.optimize import curve_fit

from augury.scaling import fit_law, get_law
from augury.scaling.fitting import bootstrap_counts
from augury.scaling.olmo import load_ladder


def curve_fit_loop(n, d, loss, resamples: int, seed: int, grid_stride: int):
    law = get_law("chinchilla")
    x = np.stack([n, d])
    lo, hi = np.array(law.bounds).T

    def log_model(xx, *theta):
        return law.log_predict(np.array(theta)[None, :], {"params": xx[0], "tokens": xx[1]})[0]

    def one(xx, yy, p0):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                p, _ = curve_fit(log_model, xx, np.log(yy), p0=p0, bounds=(lo, hi), method="trf", loss="huber",
                                 f_scale=1e-3, max_nfev=2000)
            except RuntimeError:
                return None
        return p

    grid = law.initial_grid({"params": n, "tokens": d}, loss)[::grid_stride]
    t0 = time.perf_counter()
    best, best_f = None, np.inf
    for p0 in grid:
        p = one(x, loss, p0)
        if p is None:
            continue
        r = log_model(x, *p) - np.log(loss)
        f = np.where(np.abs(r) <= 1e-3, 0.5 * r * r, 1e-3 * (np.abs(r) - 5e-4)).sum()
        if f < best_f:
            best, best_f = p, f
    t_grid = (time.perf_counter() - t0) * grid_stride
    counts = bootstrap_counts(np.arange(len(loss)), resamples, seed).astype(int)
    t0 = time.perf_counter()
    boot, failed = [], 0
    for c in counts:
        idx = np.repeat(np.arange(len(loss)), c)
        p = one(x[:, idx], loss[idx], best)
        if p is None:
            failed += 1
        else:
            boot.append(p)
    t_boot = time.perf_counter() - t0
    return best, np.array(boot), t_grid, t_boot, failed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", required=True, type=Path)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--grid-stride", type=int, default=10, help="curve_fit baseline: time every k-th grid start")
    args = ap.parse_args(argv)
    if not (Path(args.data_dir) / "olmo-ladder").is_dir():
        raise SystemExit(f"error: {args.data_dir}/olmo-ladder not found")
    rows = load_ladder(args.data_dir, sizes=("190M", "370M", "760M", "1B", "3B"))
    print(f"chinchilla on {len(rows)} OLMo ladder runs, {args.resamples} bootstrap resamples, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, load average {os.getloadavg()[0]:.1f}")
    t0 = time.perf_counter()
    res = fit_law("chinchilla", rows, y="loss", bootstrap=args.resamples, seed=args.seed)
    t_augury = time.perf_counter() - t0
    print(f"augury fit_law: {t_augury:.1f} s total (grid {res.info['seconds']:.1f} s), status {res.status}, "
          f"bootstrap converged {res.boot_info['converged_fraction']:.1%}")
    n, d, loss = (np.array([r[k] for r in rows]) for k in ("params", "tokens", "loss"))
    best, boot, t_grid, t_boot, failed = curve_fit_loop(n, d, loss, args.resamples, args.seed, args.grid_stride)
    print(f"curve_fit loop: {t_grid + t_boot:.1f} s total (grid {t_grid:.1f} s, extrapolated from every "
          f"{args.grid_stride}th start; bootstrap {t_boot:.1f} s), {failed} resamples failed")
    q = [5, 95]
    nat_a, nat_c = res.law.natural(res.boot_theta), res.law.natural(boot)
    for k in ("alpha", "beta", "E"):
        a, c = np.percentile(nat_a[k], q), np.percentile(nat_c[k], q)
        print(f"  {k:>5}: augury {res.params[k]:.4f} [{a[0]:.4f}, {a[1]:.4f}]   curve_fit "
              f"{float(res.law.natural(best)[k]):.4f} [{c[0]:.4f}, {c[1]:.4f}]")
    print(f"speed-up: {(t_grid + t_boot) / t_augury:.1f}x; augury under 30 s: {'yes' if t_augury < 30 else 'NO'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
