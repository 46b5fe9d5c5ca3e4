"""Training throughput: augury's training step vs a minimal reference loop, side by side, at CPU-ladder sizes.

    python -m benchmarks.train_throughput                 # bf16 autocast, vocab 4096, seq 256, batch 16
    python -m benchmarks.train_throughput --dtype fp32 --sizes 3 --no-compile

For each size the reference (a plain nanoGPT-style PyTorch model of the same Llama-style shape, written below,
with a plain AdamW loop), augury eager (`augury.model.Transformer` + `augury.train.step`, as `augury train` runs
by default) and augury compiled (the same under `torch.compile`, as `augury train --compile true` runs) take
single steps in turn on the same random token batches; the median step time of each gives tokens/s. Achieved
FLOP/s uses augury's exact FLOPs per token at augury's faster setting; the peak is a measured large matmul in the
same dtype. The last line is `min ratio vs reference: X`: augury's faster setting over the reference, worst size.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from augury.model import ModelConfig, Transformer, flops_per_token, param_counts
from augury.train.config import OptimConfig
from augury.train.runtime import measure_matmul_peak
from augury.train.step import make_optimizer, train_step

# (depth, d_model, head_dim): ~0.02M to ~25M non-embedding parameters
SIZES = [(1, 32, 16), (2, 64, 32), (2, 128, 32), (4, 256, 64), (6, 384, 64), (8, 512, 64)]


# ---- the reference: deliberately plain PyTorch, the way a nanoGPT-style script writes it --------------------
class RefBlock(nn.Module):
    def __init__(self, d, n_head, d_ff):
        super().__init__()
        self.n_head = n_head
        self.ln1, self.ln2 = nn.Parameter(torch.ones(d)), nn.Parameter(torch.ones(d))
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.proj = nn.Linear(d, d, bias=False)
        self.w1, self.w3 = nn.Linear(d, d_ff, bias=False), nn.Linear(d, d_ff, bias=False)
        self.w2 = nn.Linear(d_ff, d, bias=False)

    @staticmethod
    def norm(x, w):
        return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5))

    def forward(self, x, cos, sin):
        B, T, C = x.shape
        q, k, v = self.qkv(self.norm(x, self.ln1)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))

        def rope(t):
            h = t.shape[-1] // 2
            return t * cos + torch.cat((-t[..., h:], t[..., :h]), -1) * sin

        y = F.scaled_dot_product_attention(rope(q), rope(k), v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, C))
        h = self.norm(x, self.ln2)
        return x + self.w2(F.silu(self.w1(h)) * self.w3(h))


class RefGPT(nn.Module):
    def __init__(self, vocab, depth, d, n_head, d_ff, seq_len):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList(RefBlock(d, n_head, d_ff) for _ in range(depth))
        self.ln_f = nn.Parameter(torch.ones(d))
        self.head = nn.Linear(d, vocab, bias=False)
        hd = d // n_head
        inv = 1.0 / (10000 ** (torch.arange(0, hd, 2).float() / hd))
        freqs = torch.outer(torch.arange(seq_len).float(), inv)
        emb = torch.cat((freqs, freqs), -1)
        self.register_buffer("cos", emb.cos(), persistent=False)
        self.register_buffer("sin", emb.sin(), persistent=False)
        for p in self.parameters():
            if p.ndim == 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, idx, targets):
        x = self.wte(idx)
        for b in self.blocks:
            x = b(x, self.cos, self.sin)
        logits = self.head(RefBlock.norm(x, self.ln_f))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def ref_step(model, opt, x, y, autocast):
    with autocast():
        loss = model(x, y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss.item()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16")
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=12, help="interleaved timed steps per variant")
    ap.add_argument("--sizes", type=int, default=len(SIZES), help="use the first N sizes")
    ap.add_argument("--no-compile", action="store_true", help="time augury eager only")
    args = ap.parse_args()

    torch.manual_seed(0)
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if args.dtype == "bf16" else contextlib.nullcontext
    peak = measure_matmul_peak(torch.device("cpu"), args.dtype, size=2048, seconds=1.0)
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, dtype {args.dtype}, vocab {args.vocab}, "
          f"seq {args.seq}, batch {args.batch}; measured {args.dtype} matmul peak {peak / 1e9:.0f} GFLOP/s; "
          f"median of {args.rounds} interleaved steps per variant")
    print(f"{'non-emb params':>14} {'depth':>5} {'d_model':>7} {'ref tok/s':>10} {'eager tok/s':>11} {'eager x':>7} "
          f"{'compiled tok/s':>14} {'compiled x':>10} {'GFLOP/s':>8} {'of peak':>7} {'compile s':>9}")
    ratios = []
    tokens = args.batch * args.seq
    for depth, d, hd in SIZES[:args.sizes]:
        cfg = ModelConfig(vocab_size=args.vocab, depth=depth, d_model=d, head_dim=hd, max_seq_len=args.seq).resolved()
        x = torch.randint(0, args.vocab, (args.batch, args.seq))
        y = torch.randint(0, args.vocab, (args.batch, args.seq))
        ref = RefGPT(args.vocab, depth, d, cfg.n_heads, cfg.d_ff, args.seq)
        ref_opt = torch.optim.AdamW(ref.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
        eager = Transformer(cfg)
        eager_opt = make_optimizer(eager, OptimConfig(lr=1e-3))
        variants = {"ref": lambda: ref_step(ref, ref_opt, x, y, autocast),
                    "eager": lambda: train_step(eager, eager_opt, [(x, y)], autocast=autocast, grad_clip=1.0)}
        compile_s = float("nan")
        if not args.no_compile:
            model = Transformer(cfg)
            opt = make_optimizer(model, OptimConfig(lr=1e-3))
            compiled = torch.compile(model)
            variants["compiled"] = lambda: train_step(compiled, opt, [(x, y)], autocast=autocast, grad_clip=1.0)
            start = time.perf_counter()
            variants["compiled"]()
            compile_s = time.perf_counter() - start
        for fn in variants.values():  # warm-up: allocator, oneDNN kernels
            fn(), fn()
        # Interleave single steps so a change in machine load hits every variant alike; report medians.
        times: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(args.rounds):
            for name, fn in variants.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
        rate = {k: tokens / statistics.median(v) for k, v in times.items()}
        best = max(rate.get("compiled", 0.0), rate["eager"])
        ratios.append(best / rate["ref"])
        flops = best * flops_per_token(cfg, args.seq)
        comp = rate.get("compiled", float("nan"))
        print(f"{param_counts(cfg).non_embedding:>14,} {depth:>5} {d:>7} {rate['ref']:>10,.0f} {rate['eager']:>11,.0f} "
              f"{rate['eager'] / rate['ref']:>7.2f} {comp:>14,.0f} {comp / rate['ref']:>10.2f} {flops / 1e9:>8.1f} "
              f"{flops / peak:>7.1%} {compile_s:>9.1f}", flush=True)
    print(f"min ratio vs reference: {min(ratios):.2f}")


if __name__ == "__main__":
    main()
