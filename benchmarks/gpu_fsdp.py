"""FSDP2 against DDP on a real training run: the same losses, tokens/s and MFU, and an FSDP2 run stopped halfway
and resumed from its sharded (DCP) checkpoint.

    python -m benchmarks.gpu_fsdp --out runs/gpu-fsdp       # one GPU: 124M class (depth 12, d_model 768), bf16, compile
    python -m benchmarks.gpu_fsdp --out runs/fsdp-cpu --device cpu --dtype fp32 --depth 2 --vocab 512 --seq 64 \
        --batch 4 --steps 6 --no-compile --procs 2 --max-bytes 2000000          # a CPU smoke check (gloo)

Trains one run several ways (--variants), each under `torchrun --nproc_per_node PROCS -m augury train`:
`parallel: ddp` (the reference), ddp again (run-to-run nondeterminism), `parallel: fsdp`, fsdp with parameters
gathered in bf16 (`fsdp_param_dtype: bf16`), and fsdp stopped after half the steps and continued with `--resume`.
Prints per variant the median tokens/s and MFU of the logged windows after the first of each start (which holds
compilation; the resumed run starts twice), against the peak the trainer uses (augury.train.runtime: the GPU's
data-sheet dense bf16 peak), the last train and validation loss, and the largest per-step |difference| of train
loss from the ddp run. The corpus is the
machine's Python standard library (`data.source: stdlib`), capped at --max-bytes. Writes OUT/summary.json;
the runs stay in OUT.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

# Each variant's parallel settings. ddp-repeat measures run-to-run nondeterminism (GPU kernels with atomics), the
# floor under which a difference between two variants means nothing; fsdp-resumed stops halfway and resumes.
VARIANTS = {"ddp": ("--parallel", "ddp"), "ddp-repeat": ("--parallel", "ddp"), "fsdp": ("--parallel", "fsdp"),
            "fsdp-bf16": ("--parallel", "fsdp", "--fsdp_param_dtype", "bf16"), "fsdp-resumed": ("--parallel", "fsdp")}


def train(out: Path, common: list[str], procs: int, *extra: str) -> float:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs),
           "-m", "augury", "train", *common, "--out", str(out), *extra]
    start = time.perf_counter()
    with open(out.parent / f"{out.name}.log", "a") as log:
        log.write(" ".join(cmd) + "\n")
        log.flush()
        rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode
    if rc:
        raise SystemExit(f"{out.name}: augury train failed (exit {rc}); see {out.parent / (out.name + '.log')}")
    return time.perf_counter() - start


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def describe(run: Path, reference: dict[int, float] | None, wall: float, restarts: list[int] = ()) -> dict:
    """One variant's row; `restarts`: the steps a run was resumed from. The first logged window of every start (the
    first of the run, and the first after each resume) holds start-up and compilation and is left out of the
    medians."""
    recs = records(run)
    starts = [0, *restarts]
    first_windows = {min((r["step"] for r in recs if r["step"] > s), default=None) for s in starts}
    steady = [r for r in recs if r["step"] not in first_windows] or recs
    losses = {r["step"]: r["train_loss"] for r in recs}
    val = [r for r in recs if "val_loss" in r]
    manifest = json.loads((run / "manifest.json").read_text())
    row = {"run": run.name, "parallel": manifest.get("parallel"), "processes": manifest["world_size"],
           "tokens_per_s": statistics.median(r["tokens_per_s"] for r in steady),
           "mfu": statistics.median(r["mfu"] for r in steady), "peak_flops": manifest.get("peak_flops"),
           "last_train_loss": recs[-1]["train_loss"], "val_loss": val[-1]["val_loss"] if val else None,
           "wall_s": wall}
    if reference is not None:
        row["max_abs_train_loss_diff_vs_ddp"] = max(abs(losses[s] - reference[s]) for s in reference)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bf16")
    ap.add_argument("--procs", type=int, default=1)
    ap.add_argument("--depth", type=int, default=12)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=16, help="sequences per process per micro-batch")
    ap.add_argument("--grad-accum", type=int, default=2)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--max-bytes", type=int, default=30_000_000)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--variants", default="ddp,fsdp,fsdp-resumed",
                    help=f"comma-separated, ddp first (the reference): {', '.join(VARIANTS)}")
    args = ap.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    log_every = max(1, args.steps // 6)
    common = ["--model.depth", str(args.depth), "--model.max_seq_len", str(args.seq),
              "--data.source", "stdlib", "--data.vocab_size", str(args.vocab), "--data.max_bytes", str(args.max_bytes),
              "--data.cache_dir", str(out / "cache"), "--seq_len", str(args.seq), "--batch_size", str(args.batch),
              "--grad_accum", str(args.grad_accum), "--steps", str(args.steps), "--optim.lr", "0.001",
              "--optim.warmup_steps", str(max(1, args.steps // 10)), "--log_every", str(log_every),
              "--eval_every", "0", "--eval_batches", "4", "--eval_batch_size", "8", "--dtype", args.dtype,
              "--device", args.device, "--compile", "false" if args.no_compile else "true", "--progress", "false"]
    os.environ.setdefault("OMP_NUM_THREADS", "1" if args.device == "cpu" else "4")
    half = str(max(1, args.steps // 2))
    rows, losses = [], {}
    for name in args.variants.split(","):
        if name not in VARIANTS:
            raise SystemExit(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")
        run, extra = out / name, VARIANTS[name]
        if name == "fsdp-resumed":
            wall = train(run, common, args.procs, *extra, "--stop_after", half, "--ckpt_every", half)
            wall += train(run, common, args.procs, *extra, "--resume")
        else:
            wall = train(run, common, args.procs, *extra)
        losses[name] = {r["step"]: r["train_loss"] for r in records(run)}
        rows.append(describe(run, losses.get("ddp") if name != "ddp" else None, wall,
                             restarts=[int(half)] if name == "fsdp-resumed" else []))
        if name == "fsdp-resumed" and "fsdp" in losses:
            rows[-1]["max_abs_train_loss_diff_vs_fsdp_straight"] = max(
                abs(losses[name][s] - losses["fsdp"][s]) for s in losses["fsdp"])
        row = rows[-1]
        extra = "".join(f", {k} {v:.2e}" for k, v in row.items() if k.startswith("max_abs"))
        print(f"{row['run']:>13}: {row['processes']} proc, {row['tokens_per_s']:,.0f} tokens/s, MFU {row['mfu']:.1%} "
              f"(peak {row['peak_flops'] / 1e12:.1f} TFLOP/s), last train loss {row['last_train_loss']:.4f}, "
              f"val {row['val_loss']:.4f}, wall {row['wall_s']:.0f} s{extra}", flush=True)
    (out / "summary.json").write_text(json.dumps({"args": vars(args), "runs": rows, "train_loss": losses}, indent=2))


if __name__ == "__main__":
    main()
