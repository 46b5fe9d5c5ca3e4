"""One run in one process with every thread, or data-parallel in several one-thread processes (torchrun): the
forecast's `target_procs` setting, measured side by side on a preset's real target.

    python -m benchmarks.target_procs --preset cpu-demo --steps 60 --rounds 2 --out runs/target-procs

Trains the preset's target shape (its model, batch, data and optimizer; `--steps` steps instead of the planned
number, so it finishes in minutes) alternately (a) in one process with `--threads` torch threads and (b) under
torchrun in `--procs` processes of `--threads // --procs` threads, `--rounds` times each in fresh folders, so a
machine whose speed drifts affects both alike. Prints each run's seconds per step (from its metrics, the first
logged window left out: start-up and warm-up), the wall time with start-up, the ratio of the medians, and the
final losses of (a) and (b), which should agree to float rounding (the same windows, the gradients summed in
another order). Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import time
from pathlib import Path


def seconds_per_step(run_dir: Path) -> float:
    recs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    first, last = recs[0], recs[-1]
    if last["step"] == first["step"]:  # one logged window: start-up and warm-up included
        return last["elapsed_s"] / last["step"]
    return (last["elapsed_s"] - first["elapsed_s"]) / (last["step"] - first["step"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="cpu-demo")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", default="runs/target-procs")
    args = ap.parse_args()

    from augury.forecast.ladder import train_config
    from augury.forecast.runner import train_one
    from augury.forecast.torchrun import train_torchrun
    from benchmarks.preset_runs import load_preset_runs, scratch_folder

    out = scratch_folder(args.out)
    cfg, vocab, runs = load_preset_runs(args.preset)
    target = runs[-1]
    print(f"preset {args.preset}: target d_model {target.d_model}, depth {target.depth}, batch {target.batch_size} "
          f"x {cfg.recipe.seq_len} tokens, {args.steps} of its {target.steps} steps")

    def tcfg(tag: str):
        return dataclasses.replace(train_config(cfg, target, str(out / tag), vocab), steps=args.steps,
                                   ckpt_every=0, progress=False)

    rows: dict[str, list] = {"one": [], "procs": []}
    for i in range(args.rounds):
        for kind in ("one", "procs"):
            c = tcfg(f"{kind}{i}")
            t = time.perf_counter()
            if kind == "one":
                s = train_one(c, args.threads)
            else:
                s = train_torchrun(c, args.procs, max(1, args.threads // args.procs))
            wall = time.perf_counter() - t
            sps = seconds_per_step(Path(c.out))
            rows[kind].append((sps, wall, s["final_val_loss"]))
            print(f"  round {i} {kind:5s}: {sps:.3f} s/step, {wall:.1f} s wall, final loss {s['final_val_loss']:.5f}",
                  flush=True)
    a = statistics.median(r[0] for r in rows["one"])
    b = statistics.median(r[0] for r in rows["procs"])
    print(f"one process, {args.threads} threads: median {a:.3f} s/step")
    print(f"{args.procs} processes (torchrun), {max(1, args.threads // args.procs)} thread(s) each: median {b:.3f} "
          f"s/step")
    print(f"speedup {a / b:.2f}x; final losses {rows['one'][0][2]:.5f} vs {rows['procs'][0][2]:.5f}")


if __name__ == "__main__":
    main()
