"""Run `augury forecast` for several seeds (and recipe variants) side by side, then tabulate what each forecast
predicted against what its target reached: every seed reported, in one command.

    python -m benchmarks.forecast_seeds --out runs/seeds --seeds 0 1 2               # cpu-demo, 3 seeds
    python -m benchmarks.forecast_seeds --out runs/grid --seeds 0 1 2 3 --parallel 8 \\
        --variant b95="--recipe.optim.beta2 0.95 --recipe.optim.min_lr_ratio 0.1" --variant base=""

Each (variant, seed) is one `python -m augury forecast --preset P --out OUT/VARIANT/seedS --seed S` process
(log in OUT/VARIANT/seedS.log; `--threads` torch threads each, so N in parallel share the cores fairly), with the
variant's overrides and anything after `--` appended. Rerunning resumes every forecast (finished runs are never
retrained).
Writes OUT/summary.json (one row per forecast) and OUT/summary.md (the table), from each forecast's
forecast.json and result.json: predicted loss and interval, actual, relative error, coverage, the flags, the
other law's prediction, the capability forecast.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_one(out: Path, preset: str, seed: int, overrides: list[str], threads: int | None) -> dict:
    out.parent.mkdir(parents=True, exist_ok=True)  # the forecast makes `out` itself; its log goes beside it
    cmd = [sys.executable, "-m", "augury", "forecast", "--preset", preset, "--out", str(out), "--seed", str(seed),
           *(["--threads", str(threads)] if threads else []), "--progress", "false", *overrides]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    t0 = time.time()
    with open(out.with_suffix(".log"), "a") as log:
        log.write("$ " + shlex.join(cmd) + "\n")
        log.flush()
        rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    return {"rc": rc, "wall_s": round(time.time() - t0, 1)}


def summarize(out: Path, variant: str, seed: int, run: dict) -> dict:
    from augury.forecast.records import Forecast, Result

    row = {"variant": variant, "seed": seed, **run}
    try:
        fc = Forecast.from_json(json.loads((out / "forecast.json").read_text()))
    except (OSError, ValueError):
        return row
    loss = fc.loss
    row.update(predicted=loss.predicted, interval=loss.interval, law=loss.law["law"],
               flags=loss.flags, reliable=loss.reliable, rung_losses=loss.law["data"]["y"],
               rung_flops=loss.law["data"]["flops"], target_flops=fc.target["flops"],
               other_law=loss.law_form_sensitivity.get("other_law"),
               other_prediction=loss.law_form_sensitivity.get("prediction"),
               seed_losses=[r.get("seed_losses") for r in fc.ladder])
    cap = fc.capability
    row.update(capability_predicted=cap and cap.predicted, capability_reliable=cap and cap.reliable,
               capability_flags=cap and cap.flags)
    try:
        res = Result.from_json(json.loads((out / "result.json").read_text()))
    except (OSError, ValueError):
        return row
    checked = res.capability
    row.update(actual=res.loss.actual, rel_error=res.loss.rel_error, covered=res.loss.covered,
               capability_actual=checked and checked.actual, capability_rel_error=checked and checked.rel_error,
               largest_rung_fraction=res.largest_rung_fraction)
    if row.get("other_prediction") is not None and row["actual"]:  # no relative error to an actual of 0
        row["other_rel_error"] = row["other_prediction"] / row["actual"] - 1
    return row


def table(rows: list[dict]) -> str:
    def pct(x):
        return "–" if x is None else f"{100 * x:+.2f}%"

    lines = ["| variant | seed | predicted [90%] | actual | error | covered | reliable | other law | capability |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "predicted" not in r:
            lines.append(f"| {r['variant']} | {r['seed']} | failed (rc {r.get('rc')}) | | | | | | |")
            continue
        lo, hi = r["interval"]
        cap = (f"{r['capability_predicted']:.3f} / {r.get('capability_actual') or float('nan'):.3f} "
               f"({pct(r.get('capability_rel_error'))})" if r.get("capability_predicted") is not None else "–")
        lines.append(f"| {r['variant']} | {r['seed']} | {r['predicted']:.4f} [{lo:.4f}, {hi:.4f}] | "
                     f"{r.get('actual', float('nan')):.4f} | {pct(r.get('rel_error'))} | {r.get('covered')} | "
                     f"{r['reliable']} | {pct(r.get('other_rel_error'))} | {cap} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--preset", default="cpu-demo")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--variant", action="append", default=[],
                    help="NAME=OVERRIDES (quoted augury forecast options); default: one variant 'preset'")
    ap.add_argument("--parallel", type=int, default=1, help="forecasts at a time")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch threads per run (0: cores / parallel; with --parallel 1, the preset's own setting)")
    ap.add_argument("extra", nargs="*", help="after --: options appended to every forecast")
    args = ap.parse_args()
    variants = [v.split("=", 1) for v in args.variant] or [["preset", ""]]
    # one forecast at a time keeps the preset's threads (cpu-demo splits the cores between its `jobs` workers)
    threads = args.threads or (max(1, (os.cpu_count() or 1) // args.parallel) if args.parallel > 1 else None)
    jobs = [(name, seed, shlex.split(ov) + args.extra) for name, ov in variants for seed in args.seeds]
    done: dict[tuple[str, int], dict] = {}
    with ThreadPoolExecutor(args.parallel) as pool:
        futures = {pool.submit(run_one, args.out / name / f"seed{seed}", args.preset, seed, ov, threads):
                   (name, seed) for name, seed, ov in jobs}
        for fut in as_completed(futures):  # the summary is rewritten as each forecast ends (partial results)
            name, seed = futures[fut]
            done[name, seed] = summarize(args.out / name / f"seed{seed}", name, seed, fut.result())
            rows = [done[n, s] for n, s, _ in jobs if (n, s) in done]
            (args.out / "summary.json").write_text(json.dumps(rows, indent=1))
            (args.out / "summary.md").write_text(table(rows))
            print(f"[{len(done)}/{len(jobs)}] {name} seed {seed}: rc {done[name, seed]['rc']}, "
                  f"{done[name, seed]['wall_s']} s", flush=True)
    print(table(rows))
    return 0 if all(r.get("rc") == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
