"""The forecast pipeline: plan → train the rungs → evaluate them → pre-register → train the target → verify → report.

    from augury.forecast.config import load_forecast_config
    from augury.forecast.pipeline import run_forecast
    result = run_forecast(load_forecast_config("smoke", overrides={"out": "runs/f"}))

Every step is resumable: finished runs are never retrained, capability records and the pre-registered
forecast.json are reused (forecast.json is verified against its sha256, never refitted), and the target starts
only after forecast.json exists. Layout of the output folder:

    plan.json  config.yaml  rungs/rung1..n/  capability/  forecast.json  target/  result.json  report.md/.html
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np
import yaml

from augury.forecast.config import ForecastConfig, ForecastConfigError, validate
from augury.forecast.crossfit import capability_forecast, capability_problems, capability_records
from augury.forecast.ladder import (
    RunPlan,
    format_plan,
    learning_rates,
    plan_runs,
    probe_throughput,
    rung_replicas,
    train_config,
)
from augury.forecast.placement import gpu_share, local_gpus, training_memory_bytes, visible_gpu_ids
from augury.forecast.preregister import (
    COMPUTE_DEFINITIONS,
    fit_compute,
    fit_loss,
    load_forecast,
    write_forecast,
)
from augury.forecast.progress import Progress
from augury.forecast.runner import (
    finished_summary,
    train_one,
    train_runs_parallel,
    train_runs_ray,
    train_torchrun,
)
from augury.forecast.verify import run_row, summary_text, text_ids, verify_forecast
from augury.io import atomic_write_json, atomic_write_text, to_jsonable, utc_now

# Config fields that do not change what is trained or forecast (may differ when resuming).
_RUNTIME_FIELDS = ("out", "progress", "executor", "jobs", "target_procs", "ray_address", "ray_cpus_per_rung",
                   "rungs_per_gpu", "gpu_memory_gib", "threads", "device", "name")


def plan_identity(cfg: ForecastConfig, runs: list[RunPlan]) -> dict:
    conf = {k: v for k, v in to_jsonable(cfg).items() if k not in _RUNTIME_FIELDS}
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


def _check_plan(out: Path, identity: dict) -> None:
    path = out / "plan.json"
    if not path.is_file():
        return
    saved = json.loads(path.read_text())
    if saved.get("identity") != identity:
        old, new = saved.get("identity", {}), identity
        diff = sorted(k for k in set(old.get("config", {})) | set(new["config"])
                      if old.get("config", {}).get(k) != new["config"].get(k))
        what = f"config keys {', '.join(diff)}" if diff else "the planned runs"
        raise ForecastConfigError(f"--out {out} holds another forecast's plan (it differs in {what}); choose another "
                                  f"--out, or rerun with the same settings to resume it")




def run_forecast(cfg: ForecastConfig, log=print) -> dict:
    """Run (or resume) a whole forecast; returns result.json's content. Errors in the input raise
    ForecastConfigError before any training starts."""
    from augury.data import prepare_data

    t0 = time.perf_counter()
    validate(cfg)
    out = Path(cfg.out)
    check_out_dir(out)
    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    data = prepare_data(cfg.data, log=log)
    tokenizer = data.tokenizer()
    vocab = tokenizer.get_vocab_size()
    runs = plan_runs(cfg, vocab)
    train_tokens = data.split_tokens("train")
    for r in runs:
        epochs = r.tokens / train_tokens
        if epochs > cfg.recipe.max_epochs:
            raise ForecastConfigError(
                f"{r.name} would train on {r.tokens:,} tokens = {epochs:.2f} passes over the {train_tokens:,}-token "
                f"training split (recipe.max_epochs={cfg.recipe.max_epochs:g}): repeated data bends the curve; use "
                f"a larger corpus, a smaller target or raise recipe.max_epochs")
    procs = target_processes(cfg, log)
    if runs[-1].batch_size % procs:
        raise ForecastConfigError(f"target_procs={procs} does not divide the target's batch of "
                                  f"{runs[-1].batch_size} sequences; choose a divisor of it (or 1)")
    identity = plan_identity(cfg, runs)
    _check_plan(out, identity)
    if (out / "target").exists() and not (out / "forecast.json").is_file():
        raise ForecastConfigError(f"{out}/target exists but no forecast.json: the target must not start before the "
                                  f"forecast is registered; start a new forecast in another folder")
    atomic_write_json(out / "plan.json", {"identity": identity, "vocab_size": vocab,
                                          "train_tokens": train_tokens, "planned_at": utc_now()})
    atomic_write_text(out / "config.yaml", yaml.safe_dump(to_jsonable(cfg), sort_keys=False))
    log(format_plan(runs, lrs=learning_rates(cfg, runs, vocab)))
    # a suite too small is a bad input: fail before any training
    problems = capability_problems(cfg, out, data) if cfg.capability.enabled else None
    timings = {"data and plan": time.perf_counter() - t0}
    rungs, target = runs[:-1], runs[-1]
    rung_jobs = _rung_jobs(cfg, out, rungs, vocab)
    tcfg = train_config(cfg, target, str(out / "target"), vocab)
    trained_runs = [plan for plan, _ in rung_jobs] + [target]
    progress = Progress(trained_runs, cfg.progress, log,
                         _probe_unfinished(cfg, rung_jobs + [(target, tcfg)], vocab))
    try:
        t = time.perf_counter()
        summaries = _train_rungs(cfg, out, rungs, rung_jobs, progress, problems)
        timings["ladder training"] = sum(s.get("seconds") or 0 for ss in summaries.values() for s in ss)
        if cfg.executor == "local" and cfg.jobs > 1:
            timings["ladder training and capability sampling, wall"] = time.perf_counter() - t
        t = time.perf_counter()
        forecast = _preregister(cfg, out, data, rungs, target, summaries, vocab, log)
        timings["rung evaluation and fit"] = time.perf_counter() - t
        # ---- the target: only now, after forecast.json exists ---------------------------------------------
        progress.starting(len(trained_runs), target)
        tsum = finished_summary(out / "target", tcfg)
        trained = tsum is None
        if trained and procs > 1:
            tsum = train_torchrun(tcfg, procs, cfg.threads and max(1, cfg.threads // procs),
                                  poll=lambda record: progress.target_step(target, record), log=log)
        elif trained:
            tsum = train_one(tcfg, cfg.threads, log=lambda *a, **k: None)
        progress.finished(target, trained)
    except KeyboardInterrupt:
        progress.close()
        log(f"\ninterrupted: {out} keeps every finished run, the last checkpoint of the interrupted one and any "
            f"registered forecast. Resume with:\n  augury forecast --config {out}/config.yaml")
        raise
    progress.close()
    timings["target training"] = tsum.get("seconds") or 0
    t = time.perf_counter()
    result = verify_forecast(cfg, out, data, forecast, target, tsum, vocab)
    timings["target evaluation"] = time.perf_counter() - t
    timings["this invocation (wall)"] = time.perf_counter() - t0
    result["timings"] = timings
    if tsum.get("failed_launches"):  # the target's processes failed and were launched again: said, not hidden
        result["target_failed_launches"] = tsum["failed_launches"]
    atomic_write_json(out / "result.json", result)
    from augury.forecast.report import write_report

    _, html_path = write_report(out, forecast, result)
    log(summary_text(forecast, result) + f"\nreport: {html_path}")
    return result


def target_processes(cfg: ForecastConfig, log=print) -> int:
    """How many processes train the target: `target_procs`, but at most one per GPU when the runs use CUDA (a
    CPU-oriented preset such as cpu-demo then still runs on a one-GPU machine)."""
    procs = cfg.target_procs
    if procs > 1 and cfg.device in ("auto", "cuda"):
        import torch

        if torch.cuda.is_available() and procs > torch.cuda.device_count():
            procs = torch.cuda.device_count()
            log(f"target_procs={cfg.target_procs} lowered to {procs}: one process per GPU on this machine")
    return procs


def _rung_jobs(cfg, out: Path, rungs: list[RunPlan], vocab: int) -> list[tuple[RunPlan, object]]:
    """(run, TrainConfig) of every rung replica (`ladder.seeds` per rung), in training order."""
    return [(plan, train_config(cfg, plan, str(out / "rungs" / plan.name), vocab, replica=j))
            for plan, _, j in rung_replicas(cfg, rungs)]


def _probe_unfinished(cfg, jobs: list[tuple[RunPlan, object]], vocab: int) -> dict[str, float] | None:
    """Probed tokens/s of every run shape, for the ETA; None when every run is already trained (a resume)."""
    if all(finished_summary(Path(tcfg.out), tcfg) for _, tcfg in jobs):
        return None
    return probe_throughput(cfg, [plan for plan, _ in jobs], vocab, seconds=0.5)


def _train_rungs(cfg, out: Path, rungs: list[RunPlan], rung_jobs: list, progress: Progress,
                 problems: list[dict] | None) -> dict[str, list]:
    """Train every rung replica not yet trained; {rung name: [summary per seed]}. With `jobs` > 1, each worker
    also samples its run's capability `problems` (the records pre-registration then reads from capability/)."""
    jobs, done = [], {}
    for plan, tcfg in rung_jobs:
        summary = finished_summary(out / "rungs" / plan.name, tcfg)
        if summary is not None:
            done[plan.name] = summary
            progress.finished(plan, False)
        else:
            jobs.append((plan, tcfg))
    if jobs and cfg.executor == "ray":
        by_name = {p.name: p for p, _ in jobs}
        progress.starting(len(done) + 1, jobs[0][0])

        def on_done(name, summary):
            progress.finished(by_name[name], True)

        shares = _gpu_shares(cfg, jobs, local_gpus(cfg.device)[1]) if cfg.device != "cpu" else None
        done.update(train_runs_ray(jobs, out, cfg.ray_address, cfg.ray_cpus_per_rung, cfg.threads, on_done,
                                   gpu_shares=shares))
    elif jobs and cfg.jobs > 1:
        threads = cfg.threads or max(1, (os.cpu_count() or 1) // cfg.jobs)
        n_gpus, gpu_memory = local_gpus(cfg.device)

        def sample_after(plan):  # the worker samples the run's capability problems while it has the model warm
            return (capability_records, (cfg, out, plan.name, out / "rungs" / plan.name, problems)) if problems \
                else None

        # longest first: the last run to finish is then a short one, not a largest rung training alone on one
        # thread while the other workers idle
        longest_first = sorted(jobs, key=lambda job: -job[0].flops)
        already = len(done)  # trained before this invocation (a resume)
        done.update(train_runs_parallel(
            longest_first, cfg.jobs, threads, after=sample_after,
            on_start=lambda i, plan: progress.starting(already + i + 1, plan, parallel=cfg.jobs),
            on_done=lambda plan, summary: progress.finished(plan, False, summary.get("seconds")),
            gpu_shares=_gpu_shares(cfg, jobs, gpu_memory) if n_gpus else None,
            gpus=visible_gpu_ids(n_gpus) if n_gpus else None))
    else:
        order = [p.name for p, _ in rung_jobs]
        for plan, tcfg in jobs:
            progress.starting(order.index(plan.name) + 1, plan)
            done[plan.name] = train_one(tcfg, cfg.threads)
            progress.finished(plan, True)
    summaries: dict[str, list] = {r.name: [] for r in rungs}
    for plan, rung, _ in rung_replicas(cfg, rungs):
        summaries[rung].append(done[plan.name])
    return summaries




def _gpu_shares(cfg, jobs: list, local_gpu_memory: int) -> dict[str, float]:
    """{run name: fraction of a GPU} by each run's estimated training memory (augury.forecast.placement)."""
    memory = (cfg.gpu_memory_gib * 2**30 if cfg.gpu_memory_gib else local_gpu_memory) or 80 * 2**30
    return {plan.name: gpu_share(training_memory_bytes(tcfg), memory, cfg.rungs_per_gpu) for plan, tcfg in jobs}


def _preregister(cfg, out: Path, data, rungs, target, summaries, vocab, log) -> dict:
    path = out / "forecast.json"
    if path.is_file():
        log(f"using the pre-registered forecast {path} (verified against its sha256)")
        return load_forecast(path)
    how = cfg.fit.compute
    xs = {p.name: fit_compute(p, how) for p in [*rungs, target]}  # compute on the laws' x axis
    rows = [{**run_row(p, summaries[p.name]), "compute": xs[p.name]} for p in rungs]
    content = {"name": cfg.name, "protocol": "docs/forecast.md",
               "target": {**dataclasses.asdict(target), "role": "target", "compute": xs[target.name]},
               "ladder": rows, "compute": how, "compute_definition": COMPUTE_DEFINITIONS[how],
               "N_definition": "matmul parameters (incl. output layer)"}
    loss, _ = fit_loss(rows, xs[target.name], cfg.fit, cfg.seed, x="compute")
    step_flag = step_extrapolation_flag(rungs, target)
    if step_flag:
        loss["flags"].append(step_flag)
        loss["reliable"] = False
    content["loss"] = loss
    content["data_coverage"] = data_coverage([*rungs, target], data.split_tokens("train"))
    if cfg.capability.enabled:
        try:
            content["capability"] = capability_forecast(cfg, out, data, rungs, xs, xs[target.name])
        except ValueError as err:  # e.g. too few problems solved by every rung
            content["capability_skipped"] = f"capability forecast not possible: {err}"
    if cfg.text_folder:
        ids = text_ids(cfg, data)
        trows = []
        from augury.forecast.heldout_text import heldout_loss

        for p in rungs:
            losses = [heldout_loss(out / "rungs" / r.name, ids, cfg.recipe.seq_len)
                      for r, _, _ in rung_replicas(cfg, [p])]
            trows.append({"name": p.name, "flops": p.flops, "compute": xs[p.name], "loss": float(np.mean(losses))})
        text, _ = fit_loss(trows, xs[target.name], cfg.fit, cfg.seed, x="compute")
        text.update(folder=str(cfg.text_folder), rungs=trows, y_label="held-out text loss (nats/token)")
        content["text"] = text
        content["text_ladder"] = trows
    content = write_forecast(path, content)
    status = "reliable" if loss["reliable"] else "FLAGGED (see flags)"
    log(f"pre-registered {path}: target loss {loss['predicted']:.4f} "
        f"[{loss['interval'][0]:.4f}, {loss['interval'][1]:.4f}] nats/token, {status}")
    for f in loss["flags"]:
        log(f"  flag: {f}")
    cov = content["data_coverage"]["share"]
    log(f"  the target trains on {cov[target.name]:.0%} of the training split, the largest rung on "
        f"{cov[rungs[-1].name]:.0%}")
    return content


# A target may take at most this many times the optimizer steps of the rung with the most before the forecast is
# flagged (the evidence: step_extrapolation_flag's docstring).
MAX_TARGET_STEP_RATIO = 1.5


def step_extrapolation_flag(rungs: list[RunPlan], target: RunPlan) -> str | None:
    """A flag when the target takes many more optimizer steps than any rung: what the extra updates give is
    outside the ladder's data. On cpu-demo's ladder a target with 1.85x rung4's steps (a batch growing as D^(2/3))
    beat the rungs' line by 3.3% and 6.6%, one with 6.5x (a fixed batch) by 2.3-6.7%; at 0.93x (the batch rule)
    the mean error over its seeds is about -1% (BENCHMARKS.md)."""
    most = max(rungs, key=lambda r: r.steps)
    ratio = target.steps / most.steps
    if ratio <= MAX_TARGET_STEP_RATIO:
        return None
    return (f"the target takes {target.steps:,} optimizer steps, {ratio:.1f}x the most of any rung ({most.name}: "
            f"{most.steps:,}): the gain from the extra updates is outside the ladder's data (with 1.85-6.5x its "
            f"rung4's steps cpu-demo's target beat its rungs' line by 2-7%); give every run about as many steps "
            f"(recipe.steps_per_run with recipe.batch_exponent 1) instead")


def data_coverage(runs: list[RunPlan], train_tokens: int) -> dict:
    """The share of the training split each run trains on (every run is single-epoch). Recorded, not flagged: on
    cpu-demo's stdlib corpus the loss curve steepened where the runs neared the whole split (BENCHMARKS.md), a
    change of regime the rungs, which see a small share, cannot show."""
    return {"train_tokens": int(train_tokens), "share": {r.name: r.tokens / train_tokens for r in runs}}



