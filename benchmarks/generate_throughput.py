"""Batched generation against one prompt at a time: generated tokens per second at batch 1, 8 and 32 (CPU).

    python -m benchmarks.generate_throughput [--batches 1 8 32] [--depth 4] [--max-tokens 64]

A random-weight model (the size dial's depth, vocabulary 4096, context 512) continues prompts of 16-96 tokens
with temperature 0.8 and a seed per prompt; each batch size runs `augury.model.generate.generate` on the whole
batch and then on each prompt alone, side by side (after one untimed warm-up call), and prints both rates and their
ratio. Weights are random, so every row runs to max_tokens (no early stops flatter the batch).
"""

from __future__ import annotations

import argparse
import time

import torch

from augury.model import ModelConfig, Transformer
from augury.model.generate import SamplingParams, generate


class _Ids:
    def decode(self, ids):
        return " ".join(map(str, ids))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=4096, depth=args.depth, max_seq_len=512)).eval()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: depth {args.depth}, d_model {model.cfg.d_model}, {n_params / 1e6:.1f}M params; "
          f"{torch.get_num_threads()} threads; max_tokens {args.max_tokens}")
    print(f"{'batch':>5}  {'batched tok/s':>13}  {'one-at-a-time tok/s':>19}  {'ratio':>6}")
    gen = torch.Generator().manual_seed(1)
    # warm-up: the process's first call pays one-time costs (allocations, kernel selection) that would otherwise
    # fall on the first timed call, the first batch size's batched side
    generate(model, _Ids(), [list(range(1, 17))], SamplingParams(max_tokens=2, temperature=0.8, seed=0))
    for b in args.batches:
        lengths = torch.randint(16, 97, (b,), generator=gen).tolist()
        prompts = [torch.randint(1, 4096, (n,), generator=gen).tolist() for n in lengths]
        params = [SamplingParams(max_tokens=args.max_tokens, temperature=0.8, seed=i) for i in range(b)]
        start = time.perf_counter()
        outs = generate(model, _Ids(), prompts, params)
        batched = sum(len(o.token_ids) for o in outs) / (time.perf_counter() - start)
        start = time.perf_counter()
        n = sum(len(generate(model, _Ids(), [p], s)[0].token_ids) for p, s in zip(prompts, params))
        alone = n / (time.perf_counter() - start)
        print(f"{b:>5}  {batched:>13.0f}  {alone:>19.0f}  {batched / alone:>5.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
