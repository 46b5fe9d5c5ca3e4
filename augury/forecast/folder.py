"""A forecast's output folder, checked before anything trains: writable, empty or holding this same forecast (its
plan.json, made on the same prepared data), and never a target without a registered forecast. Layout:

    plan.json  config.yaml  rungs/rung1..n/  capability/  forecast.json  target/  result.json  report.md/.html

    check_out_dir(out); check_plan(cfg, out, runs, data, train_tokens); check_trained_runs(cfg, out, runs, vocab)
    write_plan(cfg, out, runs, vocab, data, train_tokens)

plan.json records the prepared data's sha256 (`data_sha256`) and, once the forecast is registered, forecast.json's
sha256 (`forecast_sha256`); a resume compares both, and the precision and settings of the runs already trained
(their manifest.json) with the ones it would train them with.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import yaml

from augury.forecast.config import ForecastConfig, ForecastConfigError
from augury.forecast.ladder import RunPlan, rung_replicas, train_config
from augury.io import atomic_write_json, atomic_write_text, not_a_folder, to_jsonable, utc_now

# Config fields that do not change what is trained or forecast (may differ when resuming).
RUNTIME_FIELDS = ("out", "progress", "executor", "jobs", "target_procs", "ray_address", "ray_cpus_per_rung",
                  "rungs_per_gpu", "gpu_memory_gib", "threads", "device", "name")


def plan_identity(cfg: ForecastConfig, runs: list[RunPlan]) -> dict:
    """What makes two invocations the same forecast: the config without its RUNTIME_FIELDS, and the planned runs."""
    conf = {k: v for k, v in to_jsonable(cfg).items() if k not in RUNTIME_FIELDS}
    return {"config": conf, "runs": [dataclasses.asdict(r) for r in runs]}


def check_out_dir(out: Path) -> None:
    """The output folder must be writable and, if it exists with content, hold a forecast (checked later)."""
    if why := not_a_folder(out):
        raise ForecastConfigError(f"--out {why}")
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


def data_sha256(data) -> str:
    """The identity of a prepared corpus (augury.data.PreparedData): sha256 over its manifest's `sha256` (every
    document's id and text) and its train and val token files' sha256s (the tokens trained and validated on)."""
    m = data.manifest
    parts = {"documents": m.get("sha256"),
             "splits": {split: (m.get("splits", {}).get(split) or {}).get("sha256") for split in ("train", "val")}}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def check_same_data(out: Path, registered: str | None, now: str, where: str, data_dir) -> None:
    """ForecastConfigError unless the prepared data's sha256 `now` is the `registered` one (None: not recorded)."""
    if registered is not None and registered != now:
        raise ForecastConfigError(
            f"{out}: the prepared data has changed since this forecast began: {where} records data sha256 "
            f"{registered}, the data prepared now ({data_dir}) has sha256 {now}. Its rungs, forecast and target "
            f"must see one corpus: restore data.source as it was, or start a new forecast in another --out")


def check_plan(cfg: ForecastConfig, out: Path, runs: list[RunPlan], data, train_tokens: int) -> None:
    """Before anything trains or is written: `out` holds no other forecast's plan, no plan made on other data,
    and no target trained before its forecast was registered."""
    path = out / "plan.json"
    if path.is_file():
        try:
            saved = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ForecastConfigError(f"{path} is not valid JSON ({err}): restore it, or start a new forecast in "
                                      f"another --out") from None
        if not isinstance(saved, dict):
            raise ForecastConfigError(f"{path} is not a forecast's plan (not a JSON object); restore it, or start a "
                                      f"new forecast in another --out")
        identity = plan_identity(cfg, runs)
        if saved.get("identity") != identity:
            old, new = saved.get("identity", {}), identity
            diff = sorted(k for k in set(old.get("config", {})) | set(new["config"])
                          if old.get("config", {}).get(k) != new["config"].get(k))
            what = f"config keys {', '.join(diff)}" if diff else "the planned runs"
            raise ForecastConfigError(f"--out {out} holds another forecast's plan (it differs in {what}); choose "
                                      f"another --out, or rerun with the same settings to resume it")
        check_same_data(out, saved.get("data_sha256"), data_sha256(data), "plan.json", data.dir)
        if saved.get("forecast_sha256") and not (out / "forecast.json").is_file():
            raise ForecastConfigError(
                f"{out}/plan.json records the sha256 of a registered forecast.json ({saved['forecast_sha256']}), but "
                f"forecast.json is gone: a registered forecast is never fitted again; restore it, or start a new "
                f"forecast in another --out")
        if saved.get("data_sha256") is None and saved.get("train_tokens") not in (None, train_tokens):
            # a plan written before the data's sha256 was recorded: its training split's size still tells
            raise ForecastConfigError(
                f"{out}: the prepared data has changed since this forecast began: plan.json records a training "
                f"split of {saved['train_tokens']:,} tokens, the data prepared now ({data.dir}) has {train_tokens:,}; "
                f"restore data.source as it was, or start a new forecast in another --out")
    if (out / "target").exists() and not (out / "forecast.json").is_file():
        raise ForecastConfigError(f"{out}/target exists but no forecast.json: the target must not start before the "
                                  f"forecast is registered; start a new forecast in another folder")


def effective_dtype(cfg: ForecastConfig) -> str:
    """The precision this invocation trains in: recipe.dtype, with "auto" resolved as augury.train resolves it on
    this machine's device (bf16 where the hardware has it, else fp32)."""
    if cfg.recipe.dtype != "auto":
        return cfg.recipe.dtype
    import torch

    from augury.train.runtime import bf16_supported

    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    return "bf16" if bf16_supported(torch.device(device)) else "fp32"


def check_trained_runs(cfg: ForecastConfig, out: Path, runs: list[RunPlan], vocab: int) -> None:
    """ForecastConfigError when a run already in `out` (finished or interrupted) was trained in another precision
    than this invocation would train in (recipe.dtype auto resolves per machine), or with other settings than this
    forecast plans for it (an augury whose defaults or recipe rules differ, a folder edited by hand): the rungs'
    fit and the target's verification must see one recipe. Options that never change a run's updates (where it
    logs, the device, how the batch is split over processes) may differ, as on any resume."""
    from augury.train.config import resolve
    from augury.train.resume import RESUMABLE, SPLIT_OF_THE_BATCH

    now = effective_dtype(cfg)
    jobs = [(out / "rungs" / plan.name, plan, j) for plan, _, j in rung_replicas(cfg, runs[:-1])]
    for folder, plan, replica in jobs + [(out / "target", runs[-1], 0)]:
        try:
            manifest = json.loads((folder / "manifest.json").read_text())
        except (OSError, ValueError):
            continue  # not started (or no manifest to read): nothing trained yet
        trained = manifest.get("dtype")
        if trained is not None and trained != now:
            raise ForecastConfigError(
                f"{folder.name} was trained in {trained}, this invocation would train in {now} (recipe.dtype "
                f"{cfg.recipe.dtype}, device {cfg.device}): the ladder and the target must share one precision; "
                f"resume on a machine that trains in {trained}, or start a new forecast in another --out")
        tcfg = resolve(train_config(cfg, plan, str(folder), vocab, replica=replica))
        before, planned = _flat(manifest.get("config") or {}), _flat(to_jsonable(tcfg))
        diffs = [f"{key}: {before[key]!r} then, {value!r} now" for key, value in planned.items()
                 if key in before and key not in RESUMABLE | SPLIT_OF_THE_BATCH and before[key] != value]
        step_tokens = tcfg.batch_size * tcfg.seq_len * tcfg.grad_accum
        if manifest.get("tokens_per_step", step_tokens) != step_tokens:
            diffs.append(f"tokens per step: {manifest['tokens_per_step']} then, {step_tokens} now")
        if diffs:
            raise ForecastConfigError(
                f"{folder.name} was trained with other settings than this forecast plans for it ({'; '.join(diffs)}): "
                f"an augury of another version, or a run folder edited by hand; finish the forecast with the augury "
                f"that began it, or start a new forecast in another --out")


def _flat(config: dict, prefix: str = "") -> dict:
    """A nested config as {dotted key: value}."""
    out = {}
    for key, value in config.items():
        out.update(_flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


def write_plan(cfg: ForecastConfig, out: Path, runs: list[RunPlan], vocab: int, data, train_tokens: int) -> None:
    """plan.json and config.yaml (after check_plan). A forecast's sha256 that plan.json recorded is kept."""
    path = out / "plan.json"
    saved = json.loads(path.read_text()) if path.is_file() else {}
    plan = {"identity": plan_identity(cfg, runs), "vocab_size": vocab, "train_tokens": train_tokens,
            "data_sha256": data_sha256(data), "data_dir": str(data.dir), "planned_at": utc_now()}
    if saved.get("forecast_sha256"):
        plan["forecast_sha256"] = saved["forecast_sha256"]
    atomic_write_json(path, plan)
    atomic_write_text(out / "config.yaml", yaml.safe_dump(to_jsonable(cfg), sort_keys=False))


def pinned_forecast_sha256(out: Path) -> str | None:
    """The sha256 of forecast.json that plan.json recorded when the forecast was registered (None: none)."""
    path = out / "plan.json"
    return json.loads(path.read_text()).get("forecast_sha256") if path.is_file() else None


def pin_forecast(out: Path, sha256: str) -> None:
    """Record a registered forecast's sha256 in plan.json, before the target starts: a forecast.json edited later,
    its own sha256 recomputed, no longer matches it."""
    path = out / "plan.json"
    atomic_write_json(path, {**json.loads(path.read_text()), "forecast_sha256": sha256})
