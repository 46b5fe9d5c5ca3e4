"""Model FLOPs utilisation of augury's training step on one GPU, at GPT-2-small size (124M parameters).

    python -m benchmarks.gpu_mfu                          # depth 12, d_model 768, vocab 50304, seq 1024, batch 16
    python -m benchmarks.gpu_mfu --variants compiled --batch 32 --profile
    python -m benchmarks.gpu_mfu --device cpu --depth 2 --d-model 64 --vocab 512 --seq 64 --batch 2 --steps 2 \
        --profile                                         # a CPU smoke check of the script itself (no MFU figure)

Times `augury.train.step.train_step` (fused AdamW, grad clipping, bf16 autocast) on random tokens, eager and/or under
`torch.compile`, and reports tokens/s, achieved FLOP/s from augury's exact FLOPs per token
(`augury.model.counts.flops_per_token`: 6·N_matmul + attention) and MFU against two peaks: the card's dense bf16
datasheet figure (augury.train.runtime.GPU_BF16_PEAKS: 989.4 TFLOP/s for an H100/H200 SXM, 756 for an H100 PCIe)
and a measured 8192³ bf16 matmul. `--profile` then profiles a few steps of the last variant and prints where the
device time goes: matrix products, attention, fused element-wise kernels, the optimizer, and the time the device
sat idle waiting for the host.
"""

from __future__ import annotations

import argparse
import collections
import functools
import re
import time

import torch

from augury.model import ModelConfig, Transformer, flops_per_token, param_counts
from augury.train.config import OptimConfig
from augury.train.runtime import gpu_bf16_peak, measure_matmul_peak
from augury.train.step import make_optimizer, train_step

# Kernel-name patterns, first match wins: what a kernel is, for the device-time breakdown.
KERNEL_KINDS = (
    ("attention", r"flash|fmha|attention|sdpa|cudnn"),
    ("optimizer", r"adam|multi_tensor|foreach|clip|norm_kernel"),
    ("matmul", r"gemm|sm90|sm80|cutlass|nvjet|cublas|xmma|matmul|triton_tem|\bmm\b|addmm|bmm"),
    ("fused (triton)", r"triton"),
    ("copy", r"memcpy|memset|copy"),
)


def synchronize(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def time_steps(step, steps: int, dev: torch.device) -> float:
    """Seconds per step: the mean over `steps` steps between two synchronisations."""
    synchronize(dev)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(dev)
    return (time.perf_counter() - start) / steps


def kernel_kind(name: str) -> str:
    for kind, pattern in KERNEL_KINDS:
        if re.search(pattern, name, re.IGNORECASE):
            return kind
    return "other"


def profile(step, steps: int, dev: torch.device) -> None:
    """Device time per kind of kernel over `steps` steps, and the share of wall time the device was idle."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if dev.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    synchronize(dev)
    with torch.profiler.profile(activities=activities) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            step()
        synchronize(dev)
        wall_us = (time.perf_counter() - start) * 1e6
    events = prof.key_averages()
    attr = "self_device_time_total" if dev.type == "cuda" else "self_cpu_time_total"
    if dev.type == "cuda" and not hasattr(events[0], attr):
        attr = "self_cuda_time_total"
    if dev.type == "cuda":  # the kernels themselves, not the host-side operators that launched them, nor the
        # device-side spans of record_function ranges ("Optimizer.step#AdamW.step"), which would count twice
        kept = [ev for ev in events if getattr(ev, "device_type", None) == torch.autograd.DeviceType.CUDA
                and "#" not in ev.key and not ev.key.startswith(("ProfilerStep", "Torch-Compiled Region"))]
        events = kept or events
    else:
        events = [ev for ev in events if ev.key.startswith("aten::")]
    kinds: collections.Counter = collections.Counter()
    top = []
    for ev in events:
        t = getattr(ev, attr, 0.0) or 0.0
        if t <= 0:
            continue
        kinds[kernel_kind(ev.key)] += t
        top.append((t, ev.count, ev.key))
    busy = sum(kinds.values())
    print(f"# profile of {steps} steps: wall {wall_us / steps / 1e3:.1f} ms/step, device busy "
          f"{busy / steps / 1e3:.1f} ms/step ({busy / wall_us:.0%} of wall)")
    for kind, t in kinds.most_common():
        print(f"#   {kind:>15}: {t / steps / 1e3:7.2f} ms/step  {t / busy:6.1%} of device time")
    for t, count, key in sorted(top, reverse=True)[:12]:
        print(f"#   {t / steps / 1e3:7.2f} ms/step  x{count // steps:<4} {key[:110]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--depth", type=int, default=12)
    ap.add_argument("--d-model", type=int, default=768)
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--vocab", type=int, default=50304)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--variants", default="eager,compiled", help="comma-separated: eager, compiled")
    ap.add_argument("--no-compile", action="store_true", help="same as --variants eager")
    ap.add_argument("--profile", action="store_true", help="profile the last variant after timing it")
    ap.add_argument("--device", default="cuda", help="cuda, or cpu for a smoke check of this script")
    args = ap.parse_args()
    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_mfu.py needs a CUDA GPU (or --device cpu for a smoke check)")
    variants = ["eager"] if args.no_compile else args.variants.split(",")
    if unknown := set(variants) - {"eager", "compiled"}:
        raise SystemExit(f"unknown --variants {sorted(unknown)}; choose from eager, compiled")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=args.vocab, depth=args.depth, d_model=args.d_model, head_dim=args.head_dim,
                      max_seq_len=args.seq).resolved()
    counts, fpt = param_counts(cfg), flops_per_token(cfg, args.seq)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    known = gpu_bf16_peak(name) if dev.type == "cuda" else None
    sheet = known[1] if known else None
    measured = measure_matmul_peak(dev, "bf16", size=8192 if dev.type == "cuda" else 512, seconds=1.0)
    print(f"# {name}, torch {torch.__version__}; model depth {args.depth} d_model {args.d_model} vocab {args.vocab}: "
          f"{counts.total / 1e6:.1f}M params ({counts.non_embedding / 1e6:.1f}M non-embedding), "
          f"{fpt / 1e9:.3f} GFLOP/token at seq {args.seq}; batch {args.batch}x{args.seq}")
    print(f"# bf16 peak: datasheet {sheet / 1e12 if sheet else float('nan'):.1f} TFLOP/s "
          f"({known[0] if known else 'not listed'}), measured 8192^3 matmul "
          f"{measured / 1e12:.0f} TFLOP/s")
    x = torch.randint(0, args.vocab, (args.batch, args.seq), device=dev)
    y = torch.randint(0, args.vocab, (args.batch, args.seq), device=dev)
    autocast = lambda: torch.autocast(dev.type, dtype=torch.bfloat16)  # noqa: E731
    for variant in variants:
        model = Transformer(cfg).to(dev)
        opt = make_optimizer(model, OptimConfig(lr=3e-4), device_type=dev.type)
        run = torch.compile(model) if variant == "compiled" else model
        step = functools.partial(train_step, run, opt, [(x, y)], autocast=autocast, grad_clip=1.0)
        start = time.perf_counter()
        for _ in range(3):  # warm-up (and compilation)
            step()
        synchronize(dev)
        warm = time.perf_counter() - start
        sec = time_steps(step, args.steps, dev)
        tps = args.batch * args.seq / sec
        achieved = tps * fpt
        mfu_sheet = f"{achieved / sheet:.1%}" if sheet else "n/a"
        memory = torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else float("nan")
        print(f"{variant:>9}: {tps:,.0f} tokens/s, {sec * 1e3:.1f} ms/step, {achieved / 1e12:.1f} TFLOP/s, "
              f"MFU {mfu_sheet} of datasheet, {achieved / measured:.1%} of measured peak "
              f"(warm-up {warm:.1f} s, peak memory {memory:.1f} GiB)", flush=True)
        if args.profile and variant == variants[-1]:
            profile(step, min(args.steps, 5), dev)
        del model, opt, run
        if dev.type == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
