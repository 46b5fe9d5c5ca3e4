"""Model FLOPs utilisation of augury's training step on one GPU, at GPT-2-small size (124M parameters).

    python -m benchmarks.gpu_mfu                          # depth 12, d_model 768, vocab 50304, seq 1024, batch 16
    python -m benchmarks.gpu_mfu --no-compile --batch 8

Times `augury.train.step.train_step` (fused AdamW, grad clipping, bf16 autocast) on random tokens, eager and under
`torch.compile`, and reports tokens/s, achieved FLOP/s from augury's exact FLOPs per token
(`augury.model.counts.flops_per_token`: 6·N_matmul + attention) and MFU against two peaks: the card's dense bf16
datasheet figure (augury.train.runtime.GPU_BF16_PEAKS: 989.4 TFLOP/s for an H100/H200 SXM, 756 for an H100 PCIe)
and a measured 8192³ bf16 matmul. Needs a CUDA GPU.
"""

from __future__ import annotations

import argparse
import functools
import time

import torch

from augury.model import ModelConfig, Transformer, flops_per_token, param_counts
from augury.train.config import OptimConfig
from augury.train.runtime import gpu_bf16_peak, measure_matmul_peak
from augury.train.step import make_optimizer, train_step


def time_steps(step, steps: int) -> float:
    """Seconds per step: median-free mean over `steps` steps after a synchronised start."""
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--depth", type=int, default=12)
    ap.add_argument("--d-model", type=int, default=768)
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--vocab", type=int, default=50304)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--no-compile", action="store_true")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_mfu.py needs a CUDA GPU")
    dev = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=args.vocab, depth=args.depth, d_model=args.d_model, head_dim=args.head_dim,
                      max_seq_len=args.seq).resolved()
    counts, fpt = param_counts(cfg), flops_per_token(cfg, args.seq)
    name = torch.cuda.get_device_name(dev)
    known = gpu_bf16_peak(name)
    sheet = known[1] if known else None
    measured = measure_matmul_peak(dev, "bf16", size=8192, seconds=1.0)
    print(f"# {name}, torch {torch.__version__}; model depth {args.depth} d_model {args.d_model} vocab {args.vocab}: "
          f"{counts.total / 1e6:.1f}M params ({counts.non_embedding / 1e6:.1f}M non-embedding), "
          f"{fpt / 1e9:.3f} GFLOP/token at seq {args.seq}; batch {args.batch}x{args.seq}")
    print(f"# bf16 peak: datasheet {sheet / 1e12 if sheet else float('nan'):.1f} TFLOP/s "
          f"({known[0] if known else 'not listed'}), measured 8192^3 matmul "
          f"{measured / 1e12:.0f} TFLOP/s")
    x = torch.randint(0, args.vocab, (args.batch, args.seq), device=dev)
    y = torch.randint(0, args.vocab, (args.batch, args.seq), device=dev)
    autocast = lambda: torch.autocast("cuda", dtype=torch.bfloat16)  # noqa: E731
    variants = ["eager"] + ([] if args.no_compile else ["compiled"])
    for variant in variants:
        model = Transformer(cfg).to(dev)
        opt = make_optimizer(model, OptimConfig(lr=3e-4), device_type="cuda")
        run = torch.compile(model) if variant == "compiled" else model
        step = functools.partial(train_step, run, opt, [(x, y)], autocast=autocast, grad_clip=1.0)
        start = time.perf_counter()
        for _ in range(3):  # warm-up (and compilation)
            step()
        torch.cuda.synchronize()
        warm = time.perf_counter() - start
        sec = time_steps(step, args.steps)
        tps = args.batch * args.seq / sec
        achieved = tps * fpt
        mfu_sheet = f"{achieved / sheet:.1%}" if sheet else "n/a"
        print(f"{variant:>9}: {tps:,.0f} tokens/s, {sec * 1e3:.1f} ms/step, {achieved / 1e12:.0f} TFLOP/s, "
              f"MFU {mfu_sheet} of datasheet, {achieved / measured:.1%} of measured peak "
              f"(warm-up {warm:.1f} s, peak memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB)", flush=True)
        del model, opt, run
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
