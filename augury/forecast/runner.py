"""Training the planned runs: skip the finished ones, resume the interrupted one, run the rest.

A run counts as finished when its folder's manifest.json says `complete` for the same configuration; such a run
is never retrained. Executors: `local` (one run after another in this process, or `jobs` runs at a time in worker
processes: `train_runs_parallel`) and `ray` (rungs as parallel Ray tasks on an existing cluster, or on a local Ray
instance whose temporary files stay inside the forecast folder).

    summary = train_one(train_cfg, threads=2)
    summaries = train_runs_parallel([(plan, train_cfg), ...], workers=2, threads=1)
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from augury.io import to_jsonable


def finished_summary(run_dir: str | Path, train_cfg) -> dict | None:
    """The summary of a complete run in `run_dir` made with `train_cfg`'s shape and length, else None."""
    path = Path(run_dir) / "manifest.json"
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if manifest.get("status") != "complete":
        return None
    saved, now = manifest.get("config", {}), to_jsonable(train_cfg)
    for key in ("steps", "batch_size", "seq_len", "seed"):
        if saved.get(key) != now.get(key):
            return None
    if saved.get("model", {}).get("depth") != now["model"]["depth"]:
        return None
    summary = dict(manifest.get("summary") or {})
    summary["seconds"] = summary.get("train_seconds")
    return summary


def train_one(train_cfg, threads: int | None = None, log=None) -> dict:
    """Train (or resume) one run to completion and return its summary with the wall time it took here."""
    import time

    import torch

    from augury.train import train

    if threads:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    summary = train(train_cfg, resume="auto", log=log or (lambda *a, **k: None))
    summary["seconds"] = time.perf_counter() - start
    return summary


class WorkerDied(RuntimeError):
    """A worker process of the local executor ended without an answer (killed, out of memory)."""


def _train_then(train_cfg, threads: int | None, after) -> dict:
    """A worker's job: train one run, then call `after` = (function, args) on it (e.g. sample its capability
    problems), in the same process and with the same threads."""
    summary = train_one(train_cfg, threads)
    if after is not None:
        fn, args = after
        fn(*args)
    return summary


def train_runs_parallel(jobs: list, workers: int, threads: int | None, after=None, on_start=None,
                        on_done=None) -> dict[str, dict]:
    """Train `jobs` [(plan, train_cfg)] in `workers` spawned processes, `threads` torch threads each; `after(plan)`
    gives an optional (function, args) each worker runs after training that plan. Returns {name: summary}.

    A failure in one run (a NaN loss, a bad config) is raised here and the other workers are stopped; a worker
    killed from outside (out of memory) is one clear error. On Ctrl-C too the workers are stopped at once. The
    finished runs stay complete and the interrupted ones resume from their last checkpoint."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    out: dict[str, dict] = {}
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"))
    try:
        pending = {}
        for plan, cfg in jobs:
            fut = pool.submit(_train_then, dataclasses.replace(cfg, progress=False), threads,
                              after(plan) if after else None)
            pending[fut] = plan
        started = 0
        while pending:
            if on_start:
                while started < min(len(jobs), len(out) + workers):
                    on_start(started, jobs[started][0])
                    started += 1
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for fut in done:
                plan = pending.pop(fut)
                try:
                    out[plan.name] = fut.result()
                except BrokenProcessPool:
                    raise WorkerDied(f"the worker process training {plan.name} died (killed, or out of memory); "
                                     f"rerun the same command to resume") from None
                if on_done:
                    on_done(plan, out[plan.name])
        return out
    except BaseException:
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            proc.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)


def _ray_train(train_cfg, threads: int | None) -> dict:
    from augury.forecast.runner import train_one

    return train_one(train_cfg, threads)


def train_runs_ray(jobs: list, out_dir: str | Path, address: str | None, cpus_per_run: int,
                   threads: int | None, on_done=None) -> dict[str, dict]:
    """Train `jobs` [(plan, train_cfg)] as parallel Ray tasks; returns {name: summary}."""
    try:
        import ray
    except ImportError:
        from augury.forecast.config import ForecastConfigError

        raise ForecastConfigError("executor 'ray' needs the ray package: pip install 'augury[ray]'") from None
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    started = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            tmp = Path(out_dir).resolve() / "ray"
            # Ray puts Unix sockets under its temp dir (session_<date>_<pid>/sockets/plasma_store: ~60 more bytes)
            # and a socket path may not exceed 107 bytes.
            if len(str(tmp)) > 45:
                from augury.forecast.config import ForecastConfigError

                raise ForecastConfigError(f"executor 'ray' keeps its temporary files in {tmp}, a path too long for "
                                          f"Ray's Unix sockets (keep --out under ~40 characters, absolute) or pass "
                                          f"ray_address of a running cluster")
            tmp.mkdir(parents=True, exist_ok=True)
            import augury

            # workers must import this augury (also when it runs from a checkout, not an install)
            root = str(Path(augury.__file__).resolve().parents[1])
            path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
            ray.init(num_cpus=max(1, os.cpu_count() or 1), include_dashboard=False, _temp_dir=str(tmp),
                     log_to_driver=False, runtime_env={"env_vars": {"RAY_USAGE_STATS_ENABLED": "0",
                                                                    "PYTHONPATH": path}})
        started = True
    try:
        task = ray.remote(num_cpus=cpus_per_run)(_ray_train)
        refs = {task.remote(dataclasses.replace(cfg, progress=False), threads): plan.name for plan, cfg in jobs}
        out: dict[str, dict] = {}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            name = refs[done[0]]
            out[name] = ray.get(done[0])
            if on_done:
                on_done(name, out[name])
        return out
    finally:
        if started:
            ray.shutdown()
