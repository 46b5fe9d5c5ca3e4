"""A forecast's output folder, checked before anything trains: writable, empty or holding this same forecast (its
plan.json), and never a target without a registered forecast. Layout:

    plan.json  config.yaml  rungs/rung1..n/  capability/  forecast.json  target/  result.json  report.md/.html

    check_out_dir(out); write_plan(cfg, out, runs, vocab, train_tokens)
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import yaml

from augury.forecast.config import ForecastConfig, ForecastConfigError
from augury.forecast.ladder import RunPlan
from augury.io import atomic_write_json, atomic_write_text, to_jsonable, utc_now

# Config fields that do not change what is trained or forecast (may differ when resuming).
RUNTIME_FIELDS = ("out", "progress", "executor", "jobs", "target_procs", "ray_address", "ray_cpus_per_rung",
                  "rungs_per_gpu", "gpu_memory_gib", "threads", "device", "name")


def plan_identity(cfg: ForecastConfig, runs: list[RunPlan]) -> dict:
    """What makes two invocations the same forecast: the config without its RUNTIME_FIELDS, and the planned runs."""
    conf = {k: v for k, v in to_jsonable(cfg).items() if k not in RUNTIME_FIELDS}
    return {"config": conf, "runs": [dataclasses.asdict(r) for r in runs]}


def check_out_dir(out: Path) -> None:
    """The output folder must be writable and, if it exists with content, hold a forecast (checked later)."""
    if out.exists() and not out.is_dir():
        raise ForecastConfigError(f"--out {out} exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not (out / "plan.json").is_file():
        raise ForecastConfigError(f"--out {out} exists and is not a forecast folder (no plan.json); "
                                  "choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise ForecastConfigError(f"--out {out} cannot be written: {err.strerror or err}") from None


def write_plan(cfg: ForecastConfig, out: Path, runs: list[RunPlan], vocab: int, train_tokens: int) -> None:
    """plan.json and config.yaml, after checking that `out` holds no other forecast's plan and no target trained
    before its forecast was registered."""
    identity = plan_identity(cfg, runs)
    path = out / "plan.json"
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved.get("identity") != identity:
            old, new = saved.get("identity", {}), identity
            diff = sorted(k for k in set(old.get("config", {})) | set(new["config"])
                          if old.get("config", {}).get(k) != new["config"].get(k))
            what = f"config keys {', '.join(diff)}" if diff else "the planned runs"
            raise ForecastConfigError(f"--out {out} holds another forecast's plan (it differs in {what}); choose "
                                      f"another --out, or rerun with the same settings to resume it")
    if (out / "target").exists() and not (out / "forecast.json").is_file():
        raise ForecastConfigError(f"{out}/target exists but no forecast.json: the target must not start before the "
                                  f"forecast is registered; start a new forecast in another folder")
    atomic_write_json(path, {"identity": identity, "vocab_size": vocab, "train_tokens": train_tokens,
                             "planned_at": utc_now()})
    atomic_write_text(out / "config.yaml", yaml.safe_dump(to_jsonable(cfg), sort_keys=False))
