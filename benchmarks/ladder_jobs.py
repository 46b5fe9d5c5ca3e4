"""Rungs one after another with all threads, or several at a time with one thread each: the local executor's
`jobs` setting, measured side by side on a preset's real rungs.

    python -m benchmarks.ladder_jobs --preset cpu-demo --rungs rung1 rung2 --replicas 2 --out runs/jobs

Trains each named rung's first `--replicas` seed replicas twice, in fresh folders: (a) one after another in this
process with `--threads-serial` torch threads (the default: every CPU), (b) with `train_runs_parallel`, `--jobs`
worker processes of `--threads-parallel` threads. Prints the wall time of each, their ratio, and checks both
trained the same runs (final losses equal when the thread counts are equal, close otherwise). Run it on an
otherwise idle machine: the point is the ratio, so both halves run in one invocation.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="cpu-demo")
    ap.add_argument("--rungs", nargs="+", default=["rung1", "rung2"])
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--threads-serial", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--threads-parallel", type=int, default=1)
    ap.add_argument("--out", default="runs/ladder-jobs")
    args = ap.parse_args()

    from augury.forecast.ladder import train_config
    from augury.forecast.runner import train_one, train_runs_parallel
    from benchmarks.preset_runs import load_preset_runs, scratch_folder

    out = scratch_folder(args.out)
    cfg, vocab, runs = load_preset_runs(args.preset)
    plans = {p.name: p for p in runs}

    def jobs(tag: str) -> list:
        return [(dataclasses.replace(plans[r], name=f"{r}-r{j}"),
                 dataclasses.replace(train_config(cfg, plans[r], str(out / tag / f"{r}-r{j}"), vocab, replica=j),
                                     progress=False))
                for r in args.rungs for j in range(args.replicas)]

    t = time.perf_counter()
    serial = {plan.name: train_one(tcfg, args.threads_serial) for plan, tcfg in jobs("serial")}
    t_serial = time.perf_counter() - t
    t = time.perf_counter()
    parallel = train_runs_parallel(jobs("parallel"), args.jobs, args.threads_parallel)
    t_parallel = time.perf_counter() - t
    n = len(serial)
    print(f"{n} runs ({', '.join(args.rungs)} x {args.replicas} seeds) of preset {args.preset}")
    print(f"  one after another, {args.threads_serial} threads: {t_serial:.1f} s")
    print(f"  {args.jobs} at a time, {args.threads_parallel} thread(s) each: {t_parallel:.1f} s "
          f"(worker start-up included)")
    print(f"  speedup {t_serial / t_parallel:.2f}x")
    for name in serial:
        a, b = serial[name]["final_val_loss"], parallel[name]["final_val_loss"]
        print(f"  {name}: final loss {a:.4f} (serial) vs {b:.4f} (parallel), {b / a - 1:+.3%}")


if __name__ == "__main__":
    main()
