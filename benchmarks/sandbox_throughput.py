"""Sandbox throughput: start-up cost of one sandboxed program, and HumanEval's 164 canonical solutions.

    python -m benchmarks.sandbox_throughput --data-dir ../shared/data [--workers 1 2]

Prints the sandbox mode and layers in use, the mean wall time of a trivial program run alone, and for each
worker count the wall time and programs per second of checking all 164 canonical solutions.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import time
from pathlib import Path

from augury.evals.code_exec import check_humaneval_many
from augury.evals.sandbox import isolation_layers, run_python, sandbox_mode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="folder holding humaneval/HumanEval.jsonl.gz")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--trivial-runs", type=int, default=30)
    args = parser.parse_args()
    path = args.data_dir / "humaneval" / "HumanEval.jsonl.gz"
    if not path.exists():
        parser.error(f"HumanEval file not found: {path}")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        problems = [json.loads(line) for line in f if line.strip()]

    print(f"mode: {sandbox_mode()}")
    print("layers: " + ", ".join(isolation_layers()))
    times = []
    for _ in range(args.trivial_runs):
        start = time.perf_counter()
        run_python("pass")
        times.append(time.perf_counter() - start)
    print(f"trivial program: mean {statistics.mean(times) * 1000:.1f} ms, "
          f"median {statistics.median(times) * 1000:.1f} ms over {args.trivial_runs} runs")
    pairs = [(p, p["canonical_solution"]) for p in problems]
    for workers in args.workers:
        start = time.perf_counter()
        results = check_humaneval_many(pairs, timeout=20.0, workers=workers)
        elapsed = time.perf_counter() - start
        passed = sum(r.passed for r in results)
        print(f"humaneval canonical, workers={workers}: {passed}/{len(results)} passed in {elapsed:.2f} s "
              f"({len(results) / elapsed:.1f} programs/s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
