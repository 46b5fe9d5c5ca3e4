"""Capability cross-fitting: the rungs' sampled capability records, split into folds over their seed replicas,
one capability fit per fold and their mean (forecast.json's `capability` section), with the checks of that mean.

    from augury.forecast.crossfit import capability_forecast
    section = capability_forecast(cfg, out, data, rungs, xs, xs[target.name])

Records are sampled once per run and cached under <out>/capability/ (problems.json, <run>.json); a cache names
the checkpoint it scored and is sampled again when the run folder now holds another one (a run retrained).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from augury.forecast import capability as capmod
from augury.forecast.fits import (
    capability_backtest_flag,
    capability_backtest_misses,
    fit_capability_forecast,
    relative,
)
from augury.forecast.ladder import RunPlan, rung_replicas
from augury.forecast.records import CapabilityFold, CapabilityForecast
from augury.io import atomic_write_json


def capability_folds(cfg, out: Path, rungs: list[RunPlan], problems: list[dict]) -> list[dict]:
    """The capability protocol's cross-fitting folds over the rungs' seed replicas: {select, estimate} records and
    the replica indices each uses. With several seeds per rung the replicas split in two halves (even and odd
    replica indices): fold 1 keeps problems on the first half's samples and estimates pass rates on the second
    half's, pooled; fold 2 does the reverse. Selection and estimation then never share samples (no selection
    bias), and averaging the two folds uses every sample for both. With one seed, one fold where the same
    samples do both (select None)."""
    per_rung = {rung.name: [capability_records(cfg, out, plan.name, out / "rungs" / plan.name, problems)
                            for plan, _, _ in rung_replicas(cfg, [rung])] for rung in rungs}

    def pooled(rung: str, replicas: list[int]) -> list[dict]:
        acc: dict[str, dict] = {}
        for j in replicas:
            for r in per_rung[rung][j]:
                a = acc.setdefault(r["problem"], {"run": rung, "problem": r["problem"], "n": 0, "c": 0})
                a["n"] += r["n"]
                a["c"] += r["c"]
        return list(acc.values())

    def records(replicas: list[int]) -> list[dict]:
        return [r for rung in rungs for r in pooled(rung.name, replicas)]

    k = cfg.ladder.seeds
    if k == 1:
        return [{"select_replicas": [0], "estimate_replicas": [0], "estimate": records([0]), "select": None}]
    even, odd = list(range(0, k, 2)), list(range(1, k, 2))
    return [{"select_replicas": sel, "estimate_replicas": est, "estimate": records(est), "select": records(sel)}
            for sel, est in ((even, odd), (odd, even))]


def capability_records(cfg, out: Path, run_name: str, run_dir: Path, problems: list[dict]) -> list[dict]:
    """A run's {run, problem, n, c} records, sampled once and cached in capability/<run>.json with the identity of
    the checkpoint they scored (checkpoint_identity). The cache is reused only while the run's newest checkpoint
    is still that one: a rung or target folder deleted and trained again is sampled again, as is a cache that
    names no checkpoint."""
    path = out / "capability" / f"{run_name}.json"
    if path.is_file():
        cached = json.loads(path.read_text())
        newest = newest_checkpoint(run_dir)
        if cached.get("checkpoint") == (checkpoint_identity(newest) if newest is not None else None):
            return cached["records"]
    from augury.model.weights import find_latest_checkpoint

    t = time.perf_counter()
    ckpt = find_latest_checkpoint(run_dir)  # the checkpoint load_run would pick: the newest intact one
    device = "cuda" if cfg.device == "cuda" or (cfg.device == "auto" and _cuda()) else "cpu"
    records = capmod.evaluate_run(run_dir, problems, cfg.capability, run_name, device=device, checkpoint=ckpt)
    atomic_write_json(path, {"run": run_name, "checkpoint": checkpoint_identity(ckpt) if ckpt is not None else None,
                             "records": records, "seconds": time.perf_counter() - t})
    return records


def newest_checkpoint(run_dir: Path) -> Path | None:
    """The run's newest checkpoint folder that has a manifest (not re-hashed: the cache check stays cheap)."""
    from augury.model.weights import step_checkpoints

    return next((p for _, p in reversed(step_checkpoints(Path(run_dir) / "checkpoints"))
                 if (p / "manifest.json").is_file()), None)


def checkpoint_identity(ckpt: Path) -> dict:
    """{checkpoint, step, manifest_sha256}: the checkpoint manifest lists the sha256 of every file in the
    checkpoint, so its own sha256 tells two checkpoints of the same step (another training) apart."""
    from augury.io import sha256_file

    manifest = ckpt / "manifest.json"
    try:
        step = json.loads(manifest.read_text()).get("step")
    except (ValueError, AttributeError):  # a damaged manifest: its sha256 alone still tells it apart
        step = None
    return {"checkpoint": ckpt.name, "step": step, "manifest_sha256": sha256_file(manifest)}


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def capability_problems(cfg, out: Path, data, write: bool = True) -> list[dict]:
    """The capability suite: capability/problems.json, else drawn from the data (and, with `write`, saved there;
    the pipeline draws it before plan.json exists, a suite too small being a bad input, and saves it after)."""
    path = out / "capability" / "problems.json"
    if path.is_file():
        return json.loads(path.read_text())
    problems = capmod.build_problems(data, cfg.capability)
    if write:
        atomic_write_json(path, problems)
    return problems


def write_problems(out: Path, problems: list[dict]) -> None:
    """Save the suite capability_problems drew (once: a suite already saved is the forecast's)."""
    path = out / "capability" / "problems.json"
    if not path.is_file():
        atomic_write_json(path, problems)


def capability_forecast(cfg, out: Path, data, rungs: list[RunPlan], xs: dict, target_x: float) -> CapabilityForecast:
    """forecast.json's capability section: one fit of the report's protocol per cross-fitting fold, and their
    mean (the forecast that is verified)."""
    problems = capability_problems(cfg, out, data)
    rung_x = {p.name: xs[p.name] for p in rungs}
    folds = []
    for i, fold in enumerate(capability_folds(cfg, out, rungs, problems), 1):
        cap, _ = fit_capability_forecast(fold["estimate"], rung_x, target_x, cfg.capability, cfg.fit, cfg.seed,
                                         select_records=fold["select"])
        by_rung = {p.name: [r for r in fold["estimate"] if r["run"] == p.name] for p in rungs}
        cap.per_run = {p.name: {"flops": p.flops, "compute": xs[p.name],
                                "buckets": [capmod.neg_log_pass_rate(by_rung[p.name], b.problems)[0]
                                            for b in cap.buckets]} for p in rungs}
        cap.fold, cap.select_replicas, cap.estimate_replicas = i, fold["select_replicas"], fold["estimate_replicas"]
        folds.append(cap)
    mean = float(np.mean([f.predicted for f in folds]))
    interval = [float(np.mean([f.interval[j] for f in folds])) for j in (0, 1)]
    flags = cross_fit_flags(folds, cfg.fit) if len(folds) > 1 else list(folds[0].flags)
    status, reason = capability_status(folds, cfg.fit.level)
    section = CapabilityForecast(status=status, predicted=mean, interval=interval, cross_fitted=len(folds) > 1,
                                 folds=folds, flags=flags, reliable=not flags, n_problems=len(problems),
                                 samples=cfg.capability.samples, temperature=cfg.capability.temperature,
                                 kind=cfg.capability.span)
    if status == "not-forecastable":
        # no point forecast is registered; the number the fits would give is kept, marked as unsupported
        section.reason, section.unsupported_predicted = reason, mean
        section.predicted, section.interval, section.reliable = None, None, False
    return section


def capability_status(folds: list[CapabilityFold], level: float) -> tuple[str, str]:
    """("not-forecastable", reason) when no difficulty bucket improves measurably with compute in any fold (the
    rule of `augury fit --law capability`, improvement_verdict: every bucket's exponent k has a `level` interval
    that does not lie above 0). Otherwise ("ok", "") - single flat buckets stay flags."""
    from augury.scaling.diagnostics import improvement_verdict

    return improvement_verdict([b.k_interval for f in folds for b in f.buckets], level,
                               " in every difficulty bucket and cross-fitting fold")


def cross_fit_flags(folds: list[CapabilityFold], fit_cfg) -> list[str]:
    """The checks of a forecast that is the mean of its folds. A fit that failed or data at the sampling floor
    in any fold flags it. The two statistical checks are judged the way the forecast is made: a bucket's exponent
    k only when its interval does not lie above 0 in every fold (one fold's 90% interval does so by chance often
    enough that six such tests per forecast would flag most good ones), and the leave-largest-out backtest on the
    mean of the folds' backtests."""
    flags = []
    k_flags: dict[str, list[str]] = {}
    for f in folds:
        for kind, msg in zip(f.flag_kinds, f.flags):
            if kind.startswith("k:"):
                k_flags.setdefault(kind, []).append(f"fold {f.fold}: {msg}")
            elif kind != "backtest":
                flags.append(f"fold {f.fold}: {msg}")
    flags += [m for msgs in k_flags.values() if len(msgs) == len(folds) for m in msgs]
    tests = [f.backtest_largest_rung for f in folds]
    if all(t and "error" not in t for t in tests):
        pred = float(np.mean([t["predicted"] for t in tests]))
        actual = float(np.mean([t["actual"] for t in tests]))
        mean_test = {"held_out": tests[0]["held_out"], "predicted": pred, "actual": actual,
                     "rel_error": relative(pred, actual)}
        if capability_backtest_misses(mean_test, fit_cfg):
            flags.append(f"mean of the folds: {capability_backtest_flag(mean_test, fit_cfg)}")
    return flags
