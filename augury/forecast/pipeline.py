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

from augury.forecast import capability as capmod
from augury.forecast.config import ForecastConfig, ForecastConfigError, validate
from augury.forecast.ladder import (
    RunPlan,
    format_plan,
    format_seconds,
    learning_rates,
    plan_runs,
    probe_throughput,
    rung_replicas,
    train_config,
)
from augury.forecast.preregister import (
    COMPUTE_DEFINITIONS,
    fit_capability_forecast,
    fit_compute,
    fit_loss,
    load_forecast,
    relative,
    write_forecast,
)
from augury.forecast.runner import finished_summary, train_one, train_runs_parallel, train_runs_ray, train_torchrun
from augury.io import atomic_write_json, atomic_write_text, to_jsonable, utc_now

# Config fields that do not change what is trained or forecast (may differ when resuming).
_RUNTIME_FIELDS = ("out", "progress", "executor", "jobs", "target_procs", "ray_address", "ray_cpus_per_rung",
                   "threads", "device", "name")


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


def run_row(plan: RunPlan, summary: dict | list[dict]) -> dict:
    """A run's record in forecast.json; a rung trained with several seeds gets their mean loss (and each one)."""
    sums = summary if isinstance(summary, list) else [summary]
    row = {**dataclasses.asdict(plan), "loss": float(np.mean([s["final_val_loss"] for s in sums])),
           "bpb": float(np.mean([s["final_val_bpb"] for s in sums])), "epochs": sums[0].get("epochs"),
           "seconds": sum(s.get("seconds") or 0 for s in sums)}
    if len(sums) > 1:
        row["seed_losses"] = [s["final_val_loss"] for s in sums]
    return row


class _Progress:
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
    problems = _problems(cfg, out, data) if cfg.capability.enabled else None
    timings = {"data and plan": time.perf_counter() - t0}
    rungs, target = runs[:-1], runs[-1]
    rung_jobs = _rung_jobs(cfg, out, rungs, vocab)
    tcfg = train_config(cfg, target, str(out / "target"), vocab)
    trained_runs = [plan for plan, _ in rung_jobs] + [target]
    progress = _Progress(trained_runs, cfg.progress, log,
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
    result = _verify(cfg, out, data, forecast, target, tsum, vocab)
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


def _train_rungs(cfg, out: Path, rungs: list[RunPlan], rung_jobs: list, progress: _Progress,
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

        done.update(train_runs_ray(jobs, out, cfg.ray_address, cfg.ray_cpus_per_rung, cfg.threads, on_done))
    elif jobs and cfg.jobs > 1:
        threads = cfg.threads or max(1, (os.cpu_count() or 1) // cfg.jobs)

        def sample_after(plan):  # the worker samples the run's capability problems while it has the model warm
            return (_capability_records, (cfg, out, plan.name, out / "rungs" / plan.name, problems)) if problems \
                else None

        # longest first: the last run to finish is then a short one, not a largest rung training alone on one
        # thread while the other workers idle
        longest_first = sorted(jobs, key=lambda job: -job[0].flops)
        already = len(done)  # trained before this invocation (a resume)
        done.update(train_runs_parallel(
            longest_first, cfg.jobs, threads, after=sample_after,
            on_start=lambda i, plan: progress.starting(already + i + 1, plan, parallel=cfg.jobs),
            on_done=lambda plan, summary: progress.finished(plan, False, summary.get("seconds"))))
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


def _capability_folds(cfg, out: Path, rungs: list[RunPlan], problems: list[dict]) -> list[dict]:
    """The capability protocol's cross-fitting folds over the rungs' seed replicas: {select, estimate} records and
    the replica indices each uses. With several seeds per rung the replicas split in two halves (even and odd
    replica indices): fold 1 keeps problems on the first half's samples and estimates pass rates on the second
    half's, pooled; fold 2 does the reverse. Selection and estimation then never share samples (no selection
    bias), and averaging the two folds uses every sample for both. With one seed, one fold where the same
    samples do both (select None)."""
    per_rung = {rung.name: [_capability_records(cfg, out, plan.name, out / "rungs" / plan.name, problems)
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


def _capability_records(cfg, out: Path, run_name: str, run_dir: Path, problems: list[dict]) -> list[dict]:
    """A run's {run, problem, n, c} records, sampled once and cached in capability/<run>.json."""
    path = out / "capability" / f"{run_name}.json"
    if path.is_file():
        return json.loads(path.read_text())["records"]
    t = time.perf_counter()
    device = "cuda" if cfg.device == "cuda" or (cfg.device == "auto" and _cuda()) else "cpu"
    records = capmod.evaluate_run(run_dir, problems, cfg.capability, run_name, device=device)
    atomic_write_json(path, {"run": run_name, "records": records, "seconds": time.perf_counter() - t})
    return records


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _problems(cfg, out: Path, data) -> list[dict]:
    path = out / "capability" / "problems.json"
    if path.is_file():
        return json.loads(path.read_text())
    problems = capmod.build_problems(data, cfg.capability)
    atomic_write_json(path, problems)
    return problems


def _text_ids(cfg, data):
    from augury.forecast.heldout_text import encode_folder

    return encode_folder(cfg.text_folder, data.tokenizer(), cfg.recipe.eval_tokens)


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
            content["capability"] = _capability_forecast(cfg, out, data, rungs, xs, xs[target.name])
        except ValueError as err:  # e.g. too few problems solved by every rung
            content["capability_skipped"] = f"capability forecast not possible: {err}"
    if cfg.text_folder:
        ids = _text_ids(cfg, data)
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


def _capability_forecast(cfg, out: Path, data, rungs: list[RunPlan], xs: dict, target_x: float) -> dict:
    """forecast.json's capability section: one fit of the report's protocol per cross-fitting fold, and their
    mean (the forecast that is verified)."""
    problems = _problems(cfg, out, data)
    rung_x = {p.name: xs[p.name] for p in rungs}
    folds = []
    for i, fold in enumerate(_capability_folds(cfg, out, rungs, problems), 1):
        cap, _ = fit_capability_forecast(fold["estimate"], rung_x, target_x, cfg.capability, cfg.fit, cfg.seed,
                                         select_records=fold["select"])
        cap.pop("fit")  # the per-bucket parameters are what the forecast needs; keep the file small
        by_rung = {p.name: [r for r in fold["estimate"] if r["run"] == p.name] for p in rungs}
        cap["per_run"] = {p.name: {"flops": p.flops, "compute": xs[p.name],
                                   "buckets": [capmod.neg_log_pass_rate(by_rung[p.name], b["problems"])[0]
                                               for b in cap["buckets"]]} for p in rungs}
        cap.update(fold=i, select_replicas=fold["select_replicas"], estimate_replicas=fold["estimate_replicas"])
        folds.append(cap)
    mean = float(np.mean([f["predicted_mean_neg_log_pass_rate"] for f in folds]))
    interval = [float(np.mean([f["interval_bucket_weighted"][j] for f in folds])) for j in (0, 1)]
    flags = _cross_fit_flags(folds, cfg.fit) if len(folds) > 1 else list(folds[0]["flags"])
    status, reason = capability_status(folds, cfg.fit.level)
    out = {"status": status, "predicted_mean_neg_log_pass_rate": mean, "interval_bucket_weighted": interval,
           "cross_fitted": len(folds) > 1, "folds": folds, "flags": flags, "reliable": not flags,
           "n_problems": len(problems), "samples": cfg.capability.samples,
           "temperature": cfg.capability.temperature, "kind": cfg.capability.span}
    if status == "not-forecastable":
        # no point forecast is registered; the number the fits would give is kept, marked as unsupported
        out.update(reason=reason, unsupported_predicted=mean, predicted_mean_neg_log_pass_rate=None,
                   interval_bucket_weighted=None, reliable=False)
    return out


def capability_status(folds: list[dict], level: float) -> tuple[str, str]:
    """("not-forecastable", reason) when no difficulty bucket improves measurably with compute in any fold (every
    bucket's exponent k has a `level` interval that includes 0): capability that has not emerged on the rungs
    cannot be extrapolated. Otherwise ("ok", "") - single flat buckets stay flags."""
    flat = [f"k:{b['bucket']}" in f["flag_kinds"] for f in folds for b in f["buckets"]]
    if flat and all(flat):
        return ("not-forecastable", f"no difficulty bucket's pass rate improves measurably across the rungs (every "
                                    f"exponent k's {level:.0%} interval includes 0, in every fold)")
    return "ok", ""


def _cross_fit_flags(folds: list[dict], fit_cfg) -> list[str]:
    """The checks of a forecast that is the mean of its folds. A fit that failed or data at the sampling floor
    in any fold flags it. The two statistical checks are judged the way the forecast is made: a bucket's exponent
    k only when its interval includes 0 in every fold (one fold's 90% interval does so by chance often enough that
    six such tests per forecast would flag most good ones), and the leave-largest-out backtest on the mean of the
    folds' backtests."""
    from augury.forecast.preregister import capability_backtest_flag

    flags = []
    k_flags: dict[str, list[str]] = {}
    for f in folds:
        for kind, msg in zip(f["flag_kinds"], f["flags"]):
            if kind.startswith("k:"):
                k_flags.setdefault(kind, []).append(f"fold {f['fold']}: {msg}")
            elif kind != "backtest":
                flags.append(f"fold {f['fold']}: {msg}")
    flags += [m for msgs in k_flags.values() if len(msgs) == len(folds) for m in msgs]
    tests = [f.get("backtest_largest_rung") for f in folds]
    if all(t and "error" not in t for t in tests):
        pred = float(np.mean([t["predicted"] for t in tests]))
        actual = float(np.mean([t["actual"] for t in tests]))
        mean_test = {"held_out": tests[0]["held_out"], "predicted": pred, "actual": actual,
                     "rel_error": relative(pred, actual)}
        if abs(mean_test["rel_error"]) > fit_cfg.capability_backtest_tolerance:
            flags.append(f"mean of the folds: {capability_backtest_flag(mean_test, fit_cfg)}")
    return flags


def _verify(cfg, out: Path, data, forecast: dict, target: RunPlan, tsum: dict, vocab: int) -> dict:
    loss = forecast["loss"]
    actual = tsum["final_val_loss"]
    lo, hi = loss["interval"]
    result = {"name": cfg.name, "forecast_sha256": forecast["sha256"], "verified_at": utc_now(),
              "loss": {"predicted": loss["predicted"], "interval": loss["interval"], "actual": actual,
                       "rel_error": relative(loss["predicted"], actual), "covered": bool(lo <= actual <= hi),
                       "forecast_flagged": not loss["reliable"]},
              "target_run": {**run_row(target, tsum), "fraction": 1.0},
              "largest_rung_fraction": forecast["ladder"][-1]["fraction"]}
    if "capability" in forecast:
        cap = forecast["capability"]
        problems = json.loads((out / "capability" / "problems.json").read_text())
        recs = _capability_records(cfg, out, "target", out / "target", problems)
        result["capability"] = verify_capability(cap, recs)
    if "text" in forecast:
        from augury.forecast.heldout_text import heldout_loss

        ids = _text_ids(cfg, data)
        a = heldout_loss(out / "target", ids, cfg.recipe.seq_len)
        tx = forecast["text"]
        result["text"] = {"predicted": tx["predicted"], "interval": tx["interval"], "actual": a,
                          "rel_error": relative(tx["predicted"], a),
                          "covered": bool(tx["interval"][0] <= a <= tx["interval"][1])}
    return result


def verify_capability(cap: dict, records: list[dict]) -> dict:
    """result.json's capability section: the target's `records` scored on each fold's kept problems, their
    mean against the registered forecast."""
    folds = []
    for fold in cap.get("folds") or [cap]:  # a forecast registered before cross-fitting has one fold
        kept = [p for b in fold["buckets"] for p in b["problems"]]
        mean, zeros = capmod.neg_log_pass_rate(records, kept)
        folds.append({"predicted": fold["predicted_mean_neg_log_pass_rate"], "actual": mean,
                      "actual_buckets": [capmod.neg_log_pass_rate(records, b["problems"])[0] for b in fold["buckets"]],
                      "predicted_buckets": [b["predicted"] for b in fold["buckets"]], "unsolved_kept_problems": zeros})
    pred = cap["predicted_mean_neg_log_pass_rate"]
    actual = float(np.mean([f["actual"] for f in folds]))
    return {"status": cap.get("status", "ok"), "predicted": pred, "actual": actual,
            "rel_error": relative(pred, actual) if pred is not None else None, "folds": folds,
            "forecast_flagged": not cap["reliable"],
            "note": "mean -log pass rate over the problems every rung solved at least once (per fold: kept on one "
                    "half of the rungs' samples), averaged over the folds; a problem the target never solved "
                    "counts at pass rate 1/(2n)"}


def summary_text(forecast: dict, result: dict) -> str:
    r = result["loss"]
    lines = [(f"target loss: predicted {r['predicted']:.4f} [{r['interval'][0]:.4f}, {r['interval'][1]:.4f}], "
             f"actual {r['actual']:.4f}, error {r['rel_error']:+.2%}, "
             f"interval {'covers' if r['covered'] else 'MISSES'} it"
             + (" (the forecast was FLAGGED as unreliable before the target ran)" if r["forecast_flagged"] else ""))]
    if "capability" in result:
        c = result["capability"]
        if c.get("predicted") is None:
            lines.append(f"capability (mean -log pass rate): NOT FORECASTABLE ({forecast['capability']['reason']}); "
                         f"actual {c['actual']:.3f}")
        else:
            lines.append(f"capability (mean -log pass rate): predicted {c['predicted']:.3f}, actual "
                         f"{c['actual']:.3f}, error {c['rel_error']:+.1%}"
                         + (" (FLAGGED before the target ran)" if c["forecast_flagged"] else ""))
    if "text" in result:
        t = result["text"]
        lines.append(f"held-out text loss: predicted {t['predicted']:.4f}, actual {t['actual']:.4f}, "
                     f"error {t['rel_error']:+.2%}")
    return "\n".join(lines)
