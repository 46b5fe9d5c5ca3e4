"""`augury serve` under load: continuous batching against the same server serving one request at a time.

    python -m benchmarks.serve_load [--clients 1 4 16 64] [--requests 64] [--max-tokens 32] [--depth 2]

Makes a random-weight augury run (the size dial's depth, a tokenizer trained on this Python's standard library
docstrings), starts it behind `augury serve` on loopback twice — `--max_batch 32` and `--max_batch 1` — and
for each client count sends `--requests` streamed chat completions from that many concurrent clients (each
client sends its next request when the previous one ends). Prints, per server and client count: requests and
output tokens per second, time to first token and time per output token (mean, p50, p99), end-to-end latency
(p50, p99), as `vllm bench serve` defines them. Traffic stays on 127.0.0.1; every loop is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def make_run(out: Path, depth: int) -> Path:
    import inspect
    import os

    import torch
    import yaml

    from augury.data.tokenizer import train_tokenizer
    from augury.io import to_jsonable
    from augury.model import ModelConfig, Transformer
    from augury.train.checkpoint import save_checkpoint

    texts = [inspect.getdoc(m) or "" for m in (os, json, shutil, socket, threading, asyncio, argparse)]
    tok = train_tokenizer(texts * 4, vocab_size=2048)
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    cfg = ModelConfig(vocab_size=tok.get_vocab_size(), depth=depth, max_seq_len=512).resolved()
    torch.manual_seed(0)
    model = Transformer(cfg)
    (out / "config.yaml").write_text(yaml.safe_dump({"model": to_jsonable(cfg)}))
    save_checkpoint(out, 1, model, torch.optim.AdamW(model.parameters()), {"step": 1})
    return out


def start_server(run: Path, log: Path, max_batch: int):
    import uvicorn

    from augury.serve.cli import build_app
    from augury.serve.config import ServeConfig
    from augury.serve.limits import LimitsConfig

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = ServeConfig(model=str(run), log=str(log), port=port, max_batch=max_batch, max_queued=256,
                      limits=LimitsConfig(requests_per_minute=0, concurrent_requests=0))
    server = uvicorn.Server(uvicorn.Config(build_app(cfg), host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}/v1"


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
    async with httpx.AsyncClient(timeout=600) as client:
        async def worker():
            while queue:
                results.append(await one_request(client, base, queue.pop(), max_tokens))

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        return results, time.perf_counter() - start


def row(name: str, clients: int, results: list[dict], wall: float) -> str:
    lat = np.array([r["latency"] for r in results])
    ttft = np.array([r["ttft"] for r in results])
    tpot = np.array([r["tpot"] for r in results if np.isfinite(r["tpot"])])
    toks = sum(r["tokens"] for r in results)
    return (f"{name:<10} {clients:>7} {len(results) / wall:>7.2f} {toks / wall:>8.0f}  "
            f"{ttft.mean() * 1e3:>6.0f} {np.percentile(ttft, 50) * 1e3:>6.0f} {np.percentile(ttft, 99) * 1e3:>7.0f}  "
            f"{tpot.mean() * 1e3:>6.1f} {np.percentile(tpot, 50) * 1e3:>6.1f} {np.percentile(tpot, 99) * 1e3:>6.1f}  "
            f"{np.percentile(lat, 50):>6.2f} {np.percentile(lat, 99):>6.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16, 64])
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--depth", type=int, default=2)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="augury-serve-load-"))
    try:
        run = make_run(work / "run", args.depth)
        print(f"{'server':<10} {'clients':>7} {'req/s':>7} {'tok/s':>8}  {'TTFT ms: mean':>13} {'p50':>6} {'p99':>7}"
              f"  {'TPOT ms: mean':>13} {'p50':>6} {'p99':>6}  {'lat s p50':>9} {'p99':>6}")
        for name, max_batch in (("batched", 32), ("one-by-one", 1)):
            server, thread, base = start_server(run, work / f"{name}.db", max_batch)
            try:
                for clients in args.clients:
                    results, wall = asyncio.run(load(base, clients, args.requests, args.max_tokens))
                    print(row(name, clients, results, wall), flush=True)
            finally:
                server.should_exit = True
                thread.join(10)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
