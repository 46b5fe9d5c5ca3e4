"""The forecast's progress display: one overall line (run i of n, ETA for the whole forecast) above the
trainer's per-run bar. Used by `augury.forecast.pipeline.run_forecast`; not a command of its own.

    progress = Progress(runs, enabled=True, log=print, rates=probe_throughput(cfg, runs, vocab))
    progress.starting(1, runs[0]); ...; progress.finished(runs[0], trained_here=True); progress.close()
"""

from __future__ import annotations

import time

import numpy as np

from augury.forecast.ladder import RunPlan, format_seconds


class Progress:
    """One overall line (run i of n, ETA for the whole forecast) above the trainer's per-run bar.

    The ETA adds each remaining run's tokens / its shape's probed tokens/s (`probe_throughput`, a few real steps
    per shape before training), scaled by how the runs trained so far compared with their own probe estimate."""

    def __init__(self, runs: list[RunPlan], enabled: bool, log, rates: dict[str, float] | None = None):
        self.total = sum(r.flops for r in runs)
        self.n = len(runs)
        self.log = log
        self.bar = None
        self.pending = {r.name: r for r in runs}
        self.rates = rates or {}
        self.ratios: list[float] = []   # measured / probe-estimated seconds of the runs trained here
        self.side_ratios: list[float] = []  # the same for runs trained side by side (`jobs` > 1)
        self.last_start = None
        self.target_seen: tuple[float, int] | None = None  # (time, step) of the first record polled
        self.target_base: float | None = None  # the bar's FLOPs when the polled target started
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, position=0, leave=True, dynamic_ncols=True, unit="FLOP",
                            unit_scale=True, bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} FLOPs")

    def _estimate(self, plan: RunPlan) -> float | None:
        rate = self.rates.get(plan.name)
        return plan.tokens / rate if rate else None

    def eta(self, parallel: int = 1) -> float | None:
        """Seconds left; with `parallel` runs at a time, the rungs' share divided by it (the target runs alone)."""
        est = [(self._estimate(p), p.role == "target") for p in self.pending.values()]
        if not est or any(e is None for e, _ in est):
            return None
        scale = float(np.median(self.ratios)) if self.ratios else 1.0
        # runs side by side train slower each (fewer threads) than the probe, which used all of them
        side = float(np.median(self.side_ratios)) if self.side_ratios else scale
        return sum(e * scale if alone else e * side / parallel for e, alone in est)

    def starting(self, i: int, plan: RunPlan, parallel: int = 1) -> None:
        eta = self.eta(parallel)
        self.last_start = time.perf_counter()
        at_once = f", {parallel} at a time" if parallel > 1 else ""
        desc = f"forecast: {plan.name} (run {i} of {self.n}{at_once})" + (f", ETA {format_seconds(eta)}" if eta else "")
        if self.bar is not None:
            self.bar.set_description_str(desc)
        else:
            self.log(desc)

    def target_step(self, plan: RunPlan, record: dict | None) -> None:
        """The target's progress while it trains in other processes (torchrun): its last metrics record."""
        if not record or not record.get("step"):
            return
        now, done = time.perf_counter(), record["step"]
        if self.target_seen is None:
            self.target_seen = (now, done)
        t0, s0 = self.target_seen
        desc = f"forecast: {plan.name} (run {self.n} of {self.n}), step {done} of {plan.steps}"
        if done > s0:  # the rate since this process started watching (a resumed run starts mid-way)
            desc += f", ETA {format_seconds((now - t0) / (done - s0) * (plan.steps - done))}"
        if self.bar is not None:
            if self.target_base is None:
                self.target_base = self.bar.n
            self.bar.n = self.target_base + plan.flops * done / plan.steps
            self.bar.set_description_str(desc)
            self.bar.refresh()

    def finished(self, plan: RunPlan, trained_here: bool, side_by_side_seconds: float | None = None) -> None:
        self.pending.pop(plan.name, None)
        est = self._estimate(plan)
        if side_by_side_seconds and est:
            self.side_ratios.append(side_by_side_seconds / est)
        elif trained_here and self.last_start is not None and est:
            self.ratios.append((time.perf_counter() - self.last_start) / est)
        if self.bar is not None and self.target_base is not None:  # the target, its bar already advanced
            self.bar.n = self.target_base + plan.flops
            self.bar.refresh()
        elif self.bar is not None:
            self.bar.update(plan.flops)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
