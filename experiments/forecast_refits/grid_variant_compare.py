"""Two recipe variants of a forecast grid, width by width: how much one variant's runs lose or gain against the
other's at every rung width and at the target (for instance the learning rate halved: if µP transferred it
perfectly across the ladder, the penalty would be the same at every width).

    python -m experiments.forecast_refits.grid_variant_compare runs/gpu/forecast-grid b95 b95lr5

Reads every `VARIANT/seed*/forecast.json` (its ladder's per-seed rung losses) and `result.json` (the target's
actual loss) under the grid folder (`benchmarks/gpu/gpu_forecast_grid.sh` writes them), and prints per width the mean
loss of each variant over its seeds and runs, with the relative difference of the second against the first.
"""

from __future__ import annotations

import argparse
import glob
import json
from pathlib import Path

import numpy as np


def losses_by_width(folder: Path) -> dict:
    rows: dict = {}
    for path in sorted(glob.glob(str(folder / "seed*" / "forecast.json"))):
        forecast = json.loads(Path(path).read_text())
        result = Path(path).with_name("result.json")
        for r in forecast["ladder"]:
            rows.setdefault(r["d_model"], []).extend(r.get("seed_losses") or [r["loss"]])
        if result.is_file():
            rows.setdefault(f"target {forecast['target']['d_model']}", []).append(
                json.loads(result.read_text())["loss"]["actual"])
    if not rows:
        raise SystemExit(f"{folder}: no seed*/forecast.json (not a variant of this grid, or none registered yet)")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("grid")
    ap.add_argument("first")
    ap.add_argument("second")
    args = ap.parse_args()
    a = losses_by_width(Path(args.grid) / args.first)
    b = losses_by_width(Path(args.grid) / args.second)
    print(f"{'width':>10} {args.first:>18} {args.second:>18} {'difference':>10}")
    for key in [k for k in a if k in b]:
        ma, mb = np.mean(a[key]), np.mean(b[key])
        print(f"{key!s:>10} {ma:>10.4f} (n={len(a[key]):>2}) {mb:>10.4f} (n={len(b[key]):>2}) {mb / ma - 1:>+10.2%}")


if __name__ == "__main__":
    main()
