"""benchmarks/gpu_fsdp.py's figures (BENCHMARKS.md, "FSDP2 against DDP") from hand-made run records."""

from __future__ import annotations

import json

from benchmarks import gpu_fsdp


def _run(tmp_path, tokens_per_s):
    run = tmp_path / "fsdp-resumed"
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(
        json.dumps({"step": 10 * (i + 1), "train_loss": 5.0, "tokens_per_s": v, "mfu": v / 1e6}) + "\n"
        for i, v in enumerate(tokens_per_s)))
    (run / "manifest.json").write_text(json.dumps({"world_size": 1, "peak_flops": 1e15, "parallel": "fsdp"}))
    return run


def test_the_window_after_a_resume_is_left_out_like_the_first(tmp_path):
    """The first logged window of each start holds start-up and compilation, and is left out of the median; the
    resumed variant's second start (its first window after step 30 here) was counted, pulling its median down."""
    run = _run(tmp_path, [10.0, 100.0, 90.0, 10.0, 110.0, 120.0])  # windows ending at steps 10, 20, ..., 60
    row = gpu_fsdp.describe(run, None, 1.0, restarts=[30])
    assert row["tokens_per_s"] == 105.0 and row["mfu"] == 105.0 / 1e6  # median of 100, 90, 110, 120
    assert gpu_fsdp.describe(run, None, 1.0)["tokens_per_s"] == 100.0  # one start: window 40 counted
