"""`augury serve` under load: continuous batching against the same server serving one request at a time.

    python -m benchmarks.serve_load [--clients 1 4 16 64] [--requests 64] [--max_tokens 32] [--depth 4]
                                    [--rounds 3] [--threads 1] [--out runs/bench/serve_load.json]

Makes a random-weight augury run (the size dial's `--depth`; depth 4 is 4.1M parameters with the 2,048-token
tokenizer trained here on this Python's standard library docstrings) and starts it twice as separate
`augury serve` processes on loopback, `--max_batch 32` and `--max_batch 1`, both running for the whole benchmark.
For each client count it sends `--requests` streamed chat completions from that many concurrent clients (each
client sends its next request when the previous one ends), alternating between the two servers for `--rounds`
rounds, so both see the same machine load; the figures are the median round. The load generator is this process,
so its own work does not share an interpreter with a server's.

Prints, per server and client count: requests and output tokens per second, time to first token and time per
output token (mean, p50, p99), end-to-end latency (p50, p99), as `vllm bench serve` defines them, and the server
process's CPU time per output token; then the batched/one-at-a-time throughput ratio per round. Writes every round
to `--out` as JSON, with the load average before and after. Traffic stays on 127.0.0.1; every loop is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_run(out: Path, depth: int) -> Path:
    import inspect

    import torch
    import yaml

    from augury.data.tokenizer import train_tokenizer
    from augury.io import to_jsonable
    from augury.model import ModelConfig, Transformer
    from augury.train.checkpoint import save_checkpoint

    texts = [inspect.getdoc(m) or "" for m in (os, json, shutil, socket, subprocess, asyncio, argparse)]
    tok = train_tokenizer(texts * 4, vocab_size=2048)
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    cfg = ModelConfig(vocab_size=tok.get_vocab_size(), depth=depth, max_seq_len=512).resolved()
    torch.manual_seed(0)
    model = Transformer(cfg)
    (out / "config.yaml").write_text(yaml.safe_dump({"model": to_jsonable(cfg)}))
    save_checkpoint(out, 1, model, torch.optim.AdamW(model.parameters()), {"step": 1})
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`augury serve RUN --max_batch B` in its own process, limits off."""

    def __init__(self, run: Path, log: Path, max_batch: int, threads: int):
        self.port = free_port()
        cmd = [sys.executable, "-m", "augury", "serve", str(run), "--port", str(self.port), "--log", str(log),
               "--max_batch", str(max_batch), "--max_queued", "256", "--threads", str(threads),
               "--limits.requests_per_minute", "0", "--limits.concurrent_requests", "0"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.base = f"http://127.0.0.1:{self.port}/v1"

    def wait_ready(self, timeout_s: float = 120) -> None:
        import httpx

        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stderr.read().decode()[-2000:]}")
            try:
                httpx.get(f"{self.base}/models", timeout=1).raise_for_status()
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("server did not start")

    def cpu_s(self) -> float:
        """User + system CPU seconds of the server process so far (Linux /proc; NaN elsewhere)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return float("nan")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def one_request(client, base: str, i: int, max_tokens: int) -> dict:
    body = {"messages": [{"role": "user", "content": f"Explain the module number {i}."}], "max_tokens": max_tokens,
            "temperature": 0.8, "seed": i, "stream": True, "stream_options": {"include_usage": True}}
    sent = time.perf_counter()
    first, chunks, usage = None, 0, None
    async with client.stream("POST", f"{base}/chat/completions", json=body) as resp:
        resp.raise_for_status()
        async for line in resp.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            obj = json.loads(line[6:])
            if obj.get("usage"):
                usage = obj["usage"]
            if any((c.get("delta") or {}).get("content") for c in obj.get("choices", [])):
                first = first or time.perf_counter()
                chunks += 1
    end = time.perf_counter()
    tokens = usage["completion_tokens"] if usage else chunks
    ttft = (first or end) - sent
    return {"latency": end - sent, "ttft": ttft, "tokens": tokens,
            "tpot": (end - sent - ttft) / (tokens - 1) if tokens > 1 else float("nan")}


async def load(base: str, clients: int, requests: int, max_tokens: int) -> tuple[list[dict], float]:
    import httpx

    queue = list(range(requests))
    results: list[dict] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        async def worker():
            while queue:
                results.append(await one_request(client, base, queue.pop(), max_tokens))

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        return results, time.perf_counter() - start


def summarise(results: list[dict], wall: float, cpu_s: float) -> dict:
    lat = np.array([r["latency"] for r in results])
    ttft = np.array([r["ttft"] for r in results])
    tpot = np.array([r["tpot"] for r in results if np.isfinite(r["tpot"])])
    toks = sum(r["tokens"] for r in results)
    pct = lambda a, q: float(np.percentile(a, q)) if len(a) else float("nan")  # noqa: E731
    return {"requests_per_s": len(results) / wall, "tokens_per_s": toks / wall, "output_tokens": toks,
            "ttft_ms": {"mean": float(ttft.mean()) * 1e3, "p50": pct(ttft, 50) * 1e3, "p99": pct(ttft, 99) * 1e3},
            "tpot_ms": {"mean": float(tpot.mean()) * 1e3 if len(tpot) else float("nan"),
                        "p50": pct(tpot, 50) * 1e3, "p99": pct(tpot, 99) * 1e3},
            "latency_s": {"p50": pct(lat, 50), "p99": pct(lat, 99)},
            "server_cpu_ms_per_token": cpu_s * 1e3 / max(1, toks)}


def row(name: str, clients: int, s: dict) -> str:
    t, p, lat = s["ttft_ms"], s["tpot_ms"], s["latency_s"]
    return (f"{name:<10} {clients:>7} {s['requests_per_s']:>7.2f} {s['tokens_per_s']:>8.0f}  "
            f"{t['mean']:>6.0f} {t['p50']:>6.0f} {t['p99']:>7.0f}  "
            f"{p['mean']:>6.1f} {p['p50']:>6.1f} {p['p99']:>6.1f}  "
            f"{lat['p50']:>6.2f} {lat['p99']:>6.2f}  {s['server_cpu_ms_per_token']:>6.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16, 64])
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--max_tokens", "--max-tokens", type=int, default=32)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per client count (median reported)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per server (0: torch's default)")
    ap.add_argument("--out", default="runs/bench/serve_load.json")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="augury-serve-load-"))
    servers: dict[str, Server] = {}
    record = {"args": vars(args), "loadavg_before": os.getloadavg(), "rounds": []}
    try:
        run = make_run(work / "run", args.depth)
        for name, max_batch in (("batched", 32), ("one-by-one", 1)):
            servers[name] = Server(run, work / f"{name}.db", max_batch, args.threads)
        for server in servers.values():
            server.wait_ready()
        for name, server in servers.items():  # warm-up: first requests pay for lazy imports and allocations
            asyncio.run(load(server.base, 4, 8, args.max_tokens))
        print(f"{'server':<10} {'clients':>7} {'req/s':>7} {'tok/s':>8}  {'TTFT ms: mean':>13} {'p50':>6} {'p99':>7}"
              f"  {'TPOT ms: mean':>13} {'p50':>6} {'p99':>6}  {'lat s p50':>9} {'p99':>6}  {'cpu ms/tok':>10}")
        for clients in args.clients:
            per_server: dict[str, list[dict]] = {name: [] for name in servers}
            for r in range(args.rounds):
                for name, server in servers.items():
                    cpu0 = server.cpu_s()
                    results, wall = asyncio.run(load(server.base, clients, args.requests, args.max_tokens))
                    summary = summarise(results, wall, server.cpu_s() - cpu0)
                    per_server[name].append(summary)
                    record["rounds"].append({"server": name, "clients": clients, "round": r, **summary})
            ratios = [b["tokens_per_s"] / o["tokens_per_s"]
                      for b, o in zip(per_server["batched"], per_server["one-by-one"])]
            for name, summaries in per_server.items():
                median = sorted(summaries, key=lambda s: s["tokens_per_s"])[len(summaries) // 2]
                print(row(name, clients, median), flush=True)
            print(f"{'ratio':<10} {clients:>7}  batched / one-by-one tok/s per round: "
                  + ", ".join(f"{x:.2f}x" for x in ratios) + f" (median {float(np.median(ratios)):.2f}x)", flush=True)
        record["loadavg_after"] = os.getloadavg()
        print(f"load average before {record['loadavg_before'][0]:.1f}, after {record['loadavg_after'][0]:.1f}")
        from augury.io import atomic_write_json

        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(Path(args.out), record)
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
