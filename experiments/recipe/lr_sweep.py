"""Where is each rung's best learning rate? Trains a preset's rungs at several multiples of the learning rate its
recipe gives them, and fits the optimum per rung and its trend with the batch.

    python -m experiments.recipe.lr_sweep --preset cpu-demo --mults 0.5 1 2 4 --seeds 2 --out runs/lr-sweep
    python -m experiments.recipe.lr_sweep --preset cpu-demo --set recipe.lr_batch_exponent=0.5 --out runs/lr-sweep-b05

Each rung x multiple x seed is one run of the recipe (seed replicas as the forecast trains them), trained
`--jobs` at a time with one thread each. Per rung it prints the mean final validation loss at each multiple, the
best multiple from a parabola in log2(lr) through the three points around the lowest mean, and the optimum's slope
against the batch (tokens per step) over the rungs: 0 means the recipe's lr rule already tracks the optimum along
the ladder; s > 0 means the best lr grows as batch^s faster than the rule. Writes every run's loss to
OUT/lr_sweep.json (finished runs are reused when rerun with the same --out; one trained at another learning
rate there is an error).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
from pathlib import Path

import numpy as np


def best_multiple(mults: list[float], losses: list[float]) -> tuple[float, bool]:
    """The argmin of a parabola in log2(multiple) through the lowest mean and its neighbours; (value, inside),
    inside False when the lowest mean is at an end of the sweep (the optimum lies beyond it). Neighbours are by
    learning rate, whatever order the multiples were given in."""
    order = np.argsort(mults)
    mults, losses = [float(mults[k]) for k in order], [float(losses[k]) for k in order]
    i = int(np.argmin(losses))
    if i in (0, len(losses) - 1):
        return mults[i], False
    x = np.log2(mults[i - 1:i + 2])
    a, b, _ = np.polyfit(x, losses[i - 1:i + 2], 2)
    return float(2 ** (-b / (2 * a))), True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="cpu-demo")
    ap.add_argument("--rungs", nargs="*", default=None, help="rung names (default: every rung)")
    ap.add_argument("--mults", nargs="+", type=float, default=[0.5, 1.0, 2.0, 4.0])
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a dotted override of the preset, e.g. recipe.lr_batch_exponent=0.5")
    ap.add_argument("--out", default="runs/lr-sweep")
    args = ap.parse_args()

    from augury.data import prepare_data
    from augury.forecast.config import load_forecast_config
    from augury.forecast.ladder import plan_runs, train_config
    from augury.forecast.runner import train_runs_parallel
    from benchmarks.preset_runs import dotted_overrides, reusable_summary

    overrides = {**dotted_overrides(args.set), "progress": False}
    cfg = load_forecast_config(args.preset, overrides=overrides)
    vocab = prepare_data(cfg.data, log=lambda *a, **k: None).tokenizer().get_vocab_size()
    rungs = [r for r in plan_runs(cfg, vocab) if r.role != "target" and (not args.rungs or r.name in args.rungs)]
    out = Path(args.out)
    jobs, done = [], {}
    for rung in rungs:
        for m in args.mults:
            for j in range(args.seeds):
                name = f"{rung.name}-x{m:g}-s{j}"
                tcfg = train_config(cfg, rung, str(out / name), vocab, replica=j)
                tcfg = dataclasses.replace(tcfg, progress=False,
                                           optim=dataclasses.replace(tcfg.optim, lr=tcfg.optim.lr * m))
                summary = reusable_summary(out / name, tcfg)
                if summary is not None:
                    done[name] = summary
                else:
                    jobs.append((dataclasses.replace(rung, name=name), tcfg))
    jobs.sort(key=lambda job: -job[0].flops)  # longest first
    if jobs:
        print(f"training {len(jobs)} runs ({len(done)} already done), {args.jobs} at a time", flush=True)
        done.update(train_runs_parallel(jobs, args.jobs, 1,
                                        on_done=lambda plan, s: print(f"  {plan.name}: {s['final_val_loss']:.4f}",
                                                                      flush=True)))
    rows, opt = [], []
    print(f"\npreset {args.preset} {' '.join(args.set)}; loss = mean over {args.seeds} seeds")
    print(f"{'rung':6} {'d_model':>7} {'batch tok':>9} {'lr x1':>9} " + " ".join(f"{'x' + format(m, 'g'):>8}"
                                                                            for m in args.mults) + "   best x")
    for rung in rungs:
        lr = train_config(cfg, rung, "/unused", vocab).optim.lr
        losses = [float(np.mean([done[f"{rung.name}-x{m:g}-s{j}"]["final_val_loss"] for j in range(args.seeds)]))
                  for m in args.mults]
        best, inside = best_multiple(args.mults, losses)
        batch_tokens = rung.batch_size * cfg.recipe.seq_len
        rows.append({"rung": rung.name, "d_model": rung.d_model, "batch_tokens": batch_tokens, "lr": lr,
                     "mults": args.mults, "mean_loss": losses, "best_mult": best, "optimum_inside_sweep": inside,
                     "runs": {n: done[n]["final_val_loss"] for n in done if n.startswith(rung.name + "-")}})
        if inside:
            opt.append((batch_tokens, best))
        print(f"{rung.name:6} {rung.d_model:>7} {batch_tokens:>9} {lr:>9.4g} "
              + " ".join(f"{v:>8.4f}" for v in losses) + f"   {best:.2f}{'' if inside else ' (at the edge)'}")
    slope = None
    if len(opt) >= 2:
        slope = float(np.polyfit(np.log([b for b, _ in opt]), np.log([m for _, m in opt]), 1)[0])
        print(f"best multiple ~ batch^{slope:.2f} over {len(opt)} rungs with an interior optimum "
              f"(0: the lr rule tracks the optimum)")
    result = {"preset": args.preset, "set": args.set, "seeds": args.seeds, "rungs": rows,
              "best_mult_batch_slope": slope, "cpus": os.cpu_count()}
    out.mkdir(parents=True, exist_ok=True)
    (out / "lr_sweep.json").write_text(json.dumps(result, indent=1))
    if slope is not None and math.isfinite(slope):
        print(f"-> {out / 'lr_sweep.json'}")


if __name__ == "__main__":
    main()
