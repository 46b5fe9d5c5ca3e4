"""Runs between a preset's ladder and its target: where does the loss curve leave the rungs' line?

    python -m experiments.recipe.intermediate_widths --preset cpu-demo --widths 64 96 96:0.022 120 --out runs/mid
    python -m experiments.recipe.intermediate_widths --widths 24 48 96 136 \\
        --set data.source=DIR --set data.max_bytes=N ...

Each WIDTH (or WIDTH:LR) is planned exactly as the preset's target would be at that width (same recipe, tokens
per parameter, batch and step rules: `plan_target` with `target.d_model` overridden) and trained once (seed
`--seed`) in this process. Its learning rate is LR when given, else lr_base · (batch tokens /
lr_base_batch_tokens)^lr_batch_exponent (defaults: the cpu-demo rung4 and target optima measured in
BENCHMARKS.md). Prints one JSON line per run: width, batch, steps, tokens, compute (6 · non-embedding params ·
tokens, the cpu-demo fit's axis), lr, final validation loss, seconds. Finished runs are reused (one finished at
another learning rate in the same --out is an error).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="cpu-demo")
    ap.add_argument("--widths", nargs="+", required=True, help="WIDTH or WIDTH:LR")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr-base", type=float, default=0.0128)
    ap.add_argument("--lr-base-batch-tokens", type=int, default=2048)
    ap.add_argument("--lr-batch-exponent", type=float, default=0.2)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a dotted override of the preset, e.g. data.max_bytes=50000000")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", default="runs/intermediate-widths")
    args = ap.parse_args()

    from augury.data import prepare_data
    from augury.forecast.config import load_forecast_config
    from augury.forecast.ladder import plan_target, train_config
    from augury.forecast.runner import train_one
    from benchmarks.preset_runs import dotted_overrides, reusable_summary

    overrides = dotted_overrides(args.set)
    for arg in args.widths:
        width_text, _, lr_text = arg.partition(":")
        width = int(width_text)
        cfg = load_forecast_config(args.preset, overrides={**overrides, "progress": False, "seed": args.seed,
                                                           "target": {"d_model": width}})
        vocab = prepare_data(cfg.data, log=lambda *a, **k: None).tokenizer().get_vocab_size()
        run = plan_target(cfg, vocab)
        batch_tokens = run.batch_size * cfg.recipe.seq_len
        lr = float(lr_text) if lr_text else \
            args.lr_base * (batch_tokens / args.lr_base_batch_tokens) ** args.lr_batch_exponent
        out = os.path.join(args.out, f"w{width}" + (f"-lr{lr_text}" if lr_text else ""))
        tcfg = train_config(cfg, run, out, vocab)
        tcfg = dataclasses.replace(tcfg, optim=dataclasses.replace(tcfg.optim, lr=lr), progress=False)
        summary = reusable_summary(out, tcfg) or train_one(tcfg, args.threads)
        print(json.dumps({"width": width, "batch": run.batch_size, "steps": run.steps, "tokens": run.tokens,
                          "compute": 6 * run.params_non_embedding * run.tokens, "lr": lr,
                          "loss": summary["final_val_loss"], "seconds": summary.get("seconds")}), flush=True)


if __name__ == "__main__":
    main()
