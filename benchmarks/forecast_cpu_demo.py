"""The cpu-demo forecast benchmark: run `augury forecast --preset cpu-demo` with several seeds, print every figure.

    PYTHONPATH=. python benchmarks/forecast_cpu_demo.py --seeds 0 1 2 --out-root runs/bench-forecast [--threads 1]

Goal (forecast issue): largest fitted rung <= 1/30 of the target's compute, loss forecast error <= 3% with the actual
inside the 90% interval, capability forecast (mean -log pass rate) within 10%, all in <= 15 min per seed on a 2-core
CPU. Every seed is reported, not the best. A finished seed folder is reused (the forecast resumes), so an
interrupted benchmark can be rerun.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out-root", default="runs/bench-forecast")
    ap.add_argument("--preset", default="cpu-demo")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (1 on a busy machine)")
    args = ap.parse_args()

    from augury.forecast import load_forecast_config, run_forecast

    rows = []
    for seed in args.seeds:
        out = Path(args.out_root) / f"{args.preset}-seed{seed}"
        cfg = load_forecast_config(args.preset, overrides={"out": str(out), "seed": seed, "threads": args.threads,
                                                           "progress": False})
        start = time.perf_counter()
        result = run_forecast(cfg, log=lambda *a, **k: None)
        wall = time.perf_counter() - start
        forecast = json.loads((out / "forecast.json").read_text())
        cap = result.get("capability", {})
        rows.append({"seed": seed, "fraction": result["largest_rung_fraction"], **result["loss"],
                     "cap_err": cap.get("rel_error"), "flags": len(forecast["loss"]["flags"]),
                     "wall_s": wall, "train_s": result["timings"]["target training"]
                     + result["timings"]["ladder training"]})
    print(f"{'seed':>4} {'C_rung/C_t':>10} {'predicted':>9} {'90% interval':>17} {'actual':>7} {'error':>7} "
          f"{'covered':>7} {'flags':>5} {'cap err':>7} {'wall':>6}")
    for r in rows:
        cap = f"{r['cap_err']:+.1%}" if r["cap_err"] is not None else "–"
        print(f"{r['seed']:>4} {r['fraction']:>10.3g} {r['predicted']:>9.4f} [{r['interval'][0]:.4f}, "
              f"{r['interval'][1]:.4f}] {r['actual']:>7.4f} {r['rel_error']:>+7.2%} {str(r['covered']):>7} "
              f"{r['flags']:>5} {cap:>7} {r['wall_s']:>5.0f}s")
    errs = [abs(r["rel_error"]) for r in rows]
    print(f"loss |error| mean {sum(errs) / len(errs):.2%}, max {max(errs):.2%}; covered "
          f"{sum(r['covered'] for r in rows)}/{len(rows)}; flagged {sum(r['flags'] > 0 for r in rows)}/{len(rows)}")


if __name__ == "__main__":
    main()
