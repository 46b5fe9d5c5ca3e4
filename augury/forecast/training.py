"""Training a forecast's runs: every rung's seed replicas on the configured executor, then the target (in this
process, or data-parallel under torchrun). A run already finished with the same settings is never retrained.

    jobs = rung_jobs(cfg, out, rungs, vocab)
    summaries = train_rungs(cfg, out, rungs, jobs, progress, problems)   # {rung: [summary per seed]}
    target_summary = train_target(cfg, target, target_train_cfg, procs, progress, number=len(jobs) + 1)

The executors themselves are in `runner.py` and `torchrun.py`; this module decides which runs still need
training, in what order, and keeps the progress display in step.
"""

from __future__ import annotations

import os
from pathlib import Path

from augury.forecast.crossfit import capability_records
from augury.forecast.ladder import RunPlan, probe_throughput, rung_replicas, train_config
from augury.forecast.placement import gpu_share, local_gpus, training_memory_bytes, visible_gpu_ids
from augury.forecast.progress import Progress
from augury.forecast.runner import finished_summary, train_one, train_runs_parallel, train_runs_ray
from augury.forecast.torchrun import train_torchrun


def rung_jobs(cfg, out: Path, rungs: list[RunPlan], vocab: int) -> list[tuple[RunPlan, object]]:
    """(run, TrainConfig) of every rung replica (`ladder.seeds` per rung), in training order."""
    return [(plan, train_config(cfg, plan, str(out / "rungs" / plan.name), vocab, replica=j))
            for plan, _, j in rung_replicas(cfg, rungs)]


def probe_unfinished(cfg, jobs: list[tuple[RunPlan, object]], vocab: int) -> dict[str, float] | None:
    """Probed tokens/s of every run shape, for the ETA; None when every run is already trained (a resume)."""
    if all(finished_summary(Path(tcfg.out), tcfg) for _, tcfg in jobs):
        return None
    return probe_throughput(cfg, [plan for plan, _ in jobs], vocab, seconds=0.5)


def train_rungs(cfg, out: Path, rungs: list[RunPlan], jobs: list, progress: Progress,
                problems: list[dict] | None) -> dict[str, list]:
    """Train every rung replica of `jobs` (rung_jobs) not yet trained; {rung name: [summary per seed]}. With
    `cfg.jobs` > 1, each worker also samples its run's capability `problems` (the records pre-registration then
    reads from capability/)."""
    todo, done = [], {}
    for plan, tcfg in jobs:
        summary = finished_summary(out / "rungs" / plan.name, tcfg)
        if summary is not None:
            done[plan.name] = summary
            progress.finished(plan, False)
        else:
            todo.append((plan, tcfg))
    if todo and cfg.executor == "ray":
        by_name = {p.name: p for p, _ in todo}
        progress.starting(len(done) + 1, todo[0][0])

        def on_done(name, summary):
            progress.finished(by_name[name], True)

        shares = gpu_shares(cfg, todo, local_gpus(cfg.device)[1]) if cfg.device != "cpu" else None
        done.update(train_runs_ray(todo, out, cfg.ray_address, cfg.ray_cpus_per_rung, cfg.threads, on_done,
                                   gpu_shares=shares))
    elif todo and cfg.jobs > 1:
        threads = cfg.threads or max(1, (os.cpu_count() or 1) // cfg.jobs)
        n_gpus, gpu_memory = local_gpus(cfg.device)

        def sample_after(plan):  # the worker samples the run's capability problems while it has the model warm
            return (capability_records, (cfg, out, plan.name, out / "rungs" / plan.name, problems)) if problems \
                else None

        # longest first: the last run to finish is then a short one, not a largest rung training alone on one
        # thread while the other workers idle
        longest_first = sorted(todo, key=lambda job: -job[0].flops)
        already = len(done)  # trained before this invocation (a resume)
        done.update(train_runs_parallel(
            longest_first, cfg.jobs, threads, after=sample_after,
            on_start=lambda i, plan: progress.starting(already + i + 1, plan, parallel=cfg.jobs),
            on_done=lambda plan, summary: progress.finished(plan, False, summary.get("seconds")),
            gpu_shares=gpu_shares(cfg, todo, gpu_memory) if n_gpus else None,
            gpus=visible_gpu_ids(n_gpus) if n_gpus else None))
    else:
        order = [p.name for p, _ in jobs]
        for plan, tcfg in todo:
            progress.starting(order.index(plan.name) + 1, plan)
            done[plan.name] = train_one(tcfg, cfg.threads)
            progress.finished(plan, True)
    summaries: dict[str, list] = {r.name: [] for r in rungs}
    for plan, rung, _ in rung_replicas(cfg, rungs):
        summaries[rung].append(done[plan.name])
    return summaries


def gpu_shares(cfg, jobs: list, local_gpu_memory: int) -> dict[str, float]:
    """{run name: fraction of a GPU} by each run's estimated training memory (augury.forecast.placement)."""
    memory = (cfg.gpu_memory_gib * 2**30 if cfg.gpu_memory_gib else local_gpu_memory) or 80 * 2**30
    return {plan.name: gpu_share(training_memory_bytes(tcfg), memory, cfg.rungs_per_gpu) for plan, tcfg in jobs}


def train_target(cfg, target: RunPlan, tcfg, procs: int, progress: Progress, number: int, log=print) -> dict:
    """Train (or find trained) the target, run `number` of the progress display; its summary. With `procs` > 1
    it trains data-parallel under torchrun."""
    progress.starting(number, target)
    summary = finished_summary(tcfg.out, tcfg)
    trained = summary is None
    if trained and procs > 1:
        summary = train_torchrun(tcfg, procs, cfg.threads and max(1, cfg.threads // procs),
                                 poll=lambda record: progress.target_step(target, record), log=log)
    elif trained:
        summary = train_one(tcfg, cfg.threads, log=lambda *a, **k: None)
    progress.finished(target, trained)
    return summary
