"""Training throughput: augury's training step vs a minimal reference loop, side by side, at CPU-ladder sizes.

    python benchmarks/train_throughput.py                 # bf16 autocast, vocab 4096, seq 256, batch 16
    python benchmarks/train_throughput.py --dtype fp32 --sizes 3

For each size the reference (a plain nanoGPT-style PyTorch model of the same Llama-style shape, written below,
with a plain AdamW loop) and augury (`augury.model.Transformer` + `augury.train.step`) are timed alternately,
several rounds each, on the same random token batches; the median tokens/s of each is reported. Achieved FLOP/s
uses augury's exact FLOPs per token; the peak is a measured large matmul in the same dtype.
The last line is `min ratio vs reference: X` (augury tokens/s over reference tokens/s, the worst size).
"""

from __future__ import annotations

import argparse
import contextlib
import math
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


def timed(fn, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16")
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2.0, help="target seconds per timed measurement")
    ap.add_argument("--sizes", type=int, default=len(SIZES), help="use the first N sizes")
    args = ap.parse_args()

    torch.manual_seed(0)
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if args.dtype == "bf16" else contextlib.nullcontext
    peak = measure_matmul_peak(torch.device("cpu"), args.dtype, size=2048, seconds=1.0)
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, dtype {args.dtype}, vocab {args.vocab}, "
          f"seq {args.seq}, batch {args.batch}; measured {args.dtype} matmul peak {peak / 1e9:.0f} GFLOP/s")
    header = (f"{'non-emb params':>14} {'depth':>5} {'d_model':>7} {'ref tok/s':>10} {'augury tok/s':>12} "
              f"{'ratio':>6} {'GFLOP/s':>8} {'of peak':>7}")
    print(header)
    ratios = []
    tokens = args.batch * args.seq
    for depth, d, hd in SIZES[:args.sizes]:
        cfg = ModelConfig(vocab_size=args.vocab, depth=depth, d_model=d, head_dim=hd, max_seq_len=args.seq).resolved()
        x = torch.randint(0, args.vocab, (args.batch, args.seq))
        y = torch.randint(0, args.vocab, (args.batch, args.seq))
        ref = RefGPT(args.vocab, depth, d, cfg.n_heads, cfg.d_ff, args.seq)
        ref_opt = torch.optim.AdamW(ref.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
        ours = Transformer(cfg)
        our_opt = make_optimizer(ours, OptimConfig(lr=1e-3))

        def run_ref():
            ref_step(ref, ref_opt, x, y, autocast)

        def run_ours():
            train_step(ours, our_opt, [(x, y)], autocast=autocast, grad_clip=1.0)

        t_ref, t_ours = timed(run_ref, 2), timed(run_ours, 2)  # warm-up (allocator, oneDNN kernels)
        steps = max(2, math.ceil(args.seconds / max(t_ref / 2, 1e-3)))
        ref_rates, our_rates = [], []
        for _ in range(args.rounds):
            ref_rates.append(steps * tokens / timed(run_ref, steps))
            our_rates.append(steps * tokens / timed(run_ours, steps))
        r, o = statistics.median(ref_rates), statistics.median(our_rates)
        ratio = o / r
        ratios.append(ratio)
        flops = o * flops_per_token(cfg, args.seq)
        print(f"{param_counts(cfg).non_embedding:>14,} {depth:>5} {d:>7} {r:>10,.0f} {o:>12,.0f} {ratio:>6.2f} "
              f"{flops / 1e9:>8.1f} {flops / peak:>7.1%}", flush=True)
    print(f"min ratio vs reference: {min(ratios):.2f}")


if __name__ == "__main__":
    main()
