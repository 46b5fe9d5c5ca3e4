"""Attention in bf16 or fp32 on CPU under bf16 autocast: the training step's seconds, side by side in one process.

    python -m benchmarks.cpu_attention_dtype --threads 1 --repeats 3

Shapes: cpu-demo's target and largest rung (head_dim 8; the target's batch halved, as each of its two torchrun
processes takes half), and the size dial's default head_dim 64 at depth 4 (d_model 256). Each repeat times a few
steps of each mode in turn (alternating, so drift in the machine's speed hits both); prints the median per mode.
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=3)
    args = ap.parse_args()

    import torch

    import augury.model.transformer as transformer
    from augury.forecast.config import load_forecast_config
    from augury.forecast.ladder import plan_runs, run_model_config
    from augury.model import ModelConfig, Transformer

    torch.set_num_threads(args.threads)
    cfg = load_forecast_config("cpu-demo", overrides={"progress": False})
    vocab = cfg.data.vocab_size
    runs = {r.name: r for r in plan_runs(cfg, vocab)}
    shapes = [
        ("cpu-demo target (half batch)", run_model_config(cfg, runs["target"], vocab), runs["target"].batch_size // 2),
        ("cpu-demo rung4", run_model_config(cfg, runs["rung4"], vocab), runs["rung4"].batch_size),
        ("depth 4, head_dim 64", ModelConfig(depth=4, vocab_size=vocab), 16),
    ]
    seq = cfg.recipe.seq_len
    print(f"torch {torch.__version__}, {args.threads} threads, seq {seq}, bf16 autocast, AdamW")
    for label, mcfg, batch in shapes:
        torch.manual_seed(0)
        model = Transformer(mcfg)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        x = torch.randint(0, vocab, (batch, seq))
        y = torch.randint(0, vocab, (batch, seq))

        def step() -> None:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = model(x, targets=y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        times = {"bf16": [], "fp32": []}
        for _ in range(args.repeats):
            for mode in times:
                transformer.CPU_ATTENTION_FP32 = mode == "fp32"
                step()  # warm-up for this mode
                start = time.perf_counter()
                for _ in range(args.steps):
                    step()
                times[mode].append((time.perf_counter() - start) / args.steps)
        bf16, fp32 = statistics.median(times["bf16"]), statistics.median(times["fp32"])
        print(f"{label:30s} d_model {mcfg.resolved().d_model:4d} batch {batch:3d}: attention bf16 {bf16:.3f} s/step, "
              f"fp32 {fp32:.3f} s/step, fp32 {bf16 / fp32:.2f}x faster")


if __name__ == "__main__":
    main()
