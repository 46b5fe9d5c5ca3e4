"""Benchmark: prepare the default corpus (CPython's standard library, no tests) from scratch, then read it.

    python -m benchmarks.data_prepare [--vocab_size 4096] [--source stdlib]

Prepares into a fresh temporary cache (nothing cached is reused), prints the wall time of each stage, the
corpus size in bytes and tokens per split, then the TokenLoader's read rate for a typical CPU batch, and the
peak RSS.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time

from augury.data import DataConfig, TokenLoader, iter_val_batches, prepare_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="stdlib")
    parser.add_argument("--vocab_size", type=int, default=4096)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--seq_len", type=int, default=256)
    args = parser.parse_args()

    cache = tempfile.mkdtemp(prefix="augury-bench-")
    try:
        lines: list[str] = []

        def log(msg: str) -> None:
            lines.append(msg)
            print(f"  [{time.perf_counter() - t0:6.2f}s] {msg}")

        t0 = time.perf_counter()
        cfg = DataConfig(source=args.source, vocab_size=args.vocab_size, cache_dir=cache)
        data = prepare_data(cfg, log=log)
        prepare_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        prepare_data(cfg, log=lambda _: None)
        cached_s = time.perf_counter() - t1

        m = data.manifest
        total_bytes = sum(data.split_bytes(s) for s in ("train", "val"))
        total_tokens = sum(data.split_tokens(s) for s in ("train", "val"))
        print(f"source: {m['source']['root']} ({m['source']['kind']}), vocab_size {args.vocab_size}")
        for split in ("train", "val"):
            nbytes, ntokens = data.split_bytes(split), data.split_tokens(split)
            print(f"{split}: {m['splits'][split]['documents']} documents, {nbytes:,} bytes, "
                  f"{ntokens:,} tokens, {nbytes / ntokens:.3f} bytes/token")
        print(f"total: {total_bytes:,} bytes, {total_tokens:,} tokens; on disk "
              f"{sum(f.stat().st_size for f in data.dir.iterdir()):,} bytes")
        print(f"prepare from scratch: {prepare_s:.2f} s; reuse from cache: {cached_s * 1000:.1f} ms")

        loader = TokenLoader(data.split_path("train"), args.batch_size, args.seq_len, seed=0)
        n = 200
        t2 = time.perf_counter()
        for _ in range(n):
            loader.next_batch()
        rate = n * args.batch_size * args.seq_len / (time.perf_counter() - t2)
        print(f"TokenLoader: {rate / 1e6:.1f} M tokens/s (batch {args.batch_size} x seq_len {args.seq_len})")
        t3 = time.perf_counter()
        nval = sum(1 for _ in iter_val_batches(data.split_path("val"), args.batch_size, args.seq_len, None))
        print(f"iter_val_batches: {nval} full batches in {time.perf_counter() - t3:.3f} s")
        print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    finally:
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
