"""Where a training step's time goes: torch.profiler over a few steps of a preset's run shape (the target by
default), with the model, batch and optimizer the forecast would use, on random tokens.

    python -m benchmarks.step_profile --preset cpu-demo --run target --steps 2 --threads 2

Prints the seconds per step (after warm-up steps) and the profiler's table of the ops with the most CPU time.
"""

from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="cpu-demo")
    ap.add_argument("--run", default="target", help="a planned run's name: target, rung1, ...")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--rows", type=int, default=12)
    args = ap.parse_args()

    import torch
    from torch.profiler import profile

    from augury.forecast.config import load_forecast_config
    from augury.forecast.ladder import plan_runs, run_model_config, train_config
    from augury.model import Transformer
    from augury.train.runtime import setup_runtime
    from augury.train.step import make_optimizer, train_step

    torch.set_num_threads(args.threads)
    cfg = load_forecast_config(args.preset, overrides={"progress": False})
    vocab = cfg.data.vocab_size
    run = {r.name: r for r in plan_runs(cfg, vocab)}[args.run]
    tcfg = train_config(cfg, run, "/nonexistent", vocab)
    rt = setup_runtime(cfg.device, cfg.recipe.dtype)
    torch.manual_seed(0)
    model = Transformer(run_model_config(cfg, run, vocab)).to(rt.device)
    optimizer = make_optimizer(model, tcfg.optim, rt.device.type)
    x = torch.randint(0, vocab, (run.batch_size, cfg.recipe.seq_len), device=rt.device)
    y = torch.randint(0, vocab, (run.batch_size, cfg.recipe.seq_len), device=rt.device)

    def step() -> None:
        train_step(model, optimizer, [(x, y)], autocast=rt.autocast, grad_clip=tcfg.optim.grad_clip)

    for _ in range(2):
        step()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    print(f"{args.preset} {args.run}: d_model {run.d_model}, batch {run.batch_size} x {cfg.recipe.seq_len}, "
          f"{rt.dtype}, {args.threads} threads: {(time.perf_counter() - start) / args.steps:.3f} s/step")
    with profile() as prof:
        for _ in range(args.steps):
            step()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
