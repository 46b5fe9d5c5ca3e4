"""benchmarks/generate_throughput.py (BENCHMARKS.md, "Batched generation"): what its ratio compares, on a fake clock."""

from __future__ import annotations

import sys
from types import SimpleNamespace

from benchmarks import generate_throughput


def test_the_first_batch_size_does_not_pay_for_the_first_call(monkeypatch, capsys):
    """The first timed `generate` call of the process (batch 1, batched) also paid its one-time costs, so batch 1
    read as slower batched than alone (0.6x on a tiny model). Here every call takes one tick and the first of the
    process ten more: batch 1, the same work either way, is now 1.0x."""
    clock = {"now": 0.0, "calls": 0}

    def fake_generate(model, tok, prompts, params):
        clock["now"] += 1.0 + (10.0 if clock["calls"] == 0 else 0.0)
        clock["calls"] += 1
        params = params if isinstance(params, list) else [params] * len(prompts)
        return [SimpleNamespace(token_ids=[0] * p.max_tokens) for p in params]

    monkeypatch.setattr(generate_throughput, "generate", fake_generate)
    monkeypatch.setattr(generate_throughput.time, "perf_counter", lambda: clock["now"])
    monkeypatch.setattr(sys, "argv", ["generate_throughput", "--batches", "1", "4", "--depth", "1",
                                      "--max-tokens", "4", "--threads", "1"])
    assert generate_throughput.main() == 0
    rows = {line.split()[0]: line.split()[-1] for line in capsys.readouterr().out.splitlines()
            if line.strip()[:1].isdigit()}
    assert rows == {"1": "1.0x", "4": "4.0x"}
