"""Training the planned runs: skip the finished ones, resume the interrupted one, run the rest.

A run counts as finished when its folder's manifest.json says `complete` for the same configuration; such a run
is never retrained. Executors: `local` (one run after another in this process, or `jobs` runs at a time in worker
processes: `train_runs_parallel`) and `ray` (rungs as parallel Ray tasks on an existing cluster, or on a local Ray
instance whose temporary files stay inside the forecast folder). On GPUs both place the runs by size
(`augury.forecast.placement`): Ray gets a fraction of a GPU per run as `num_gpus`, the local executor packs them
onto the GPUs itself (CUDA_VISIBLE_DEVICES per worker process). One run can also train data-parallel in several
processes under torchrun on this machine (`torchrun.py`: the target on several GPUs, or on a small CPU).

    summary = train_one(train_cfg, threads=2)
    summaries = train_runs_parallel([(plan, train_cfg), ...], workers=2, threads=1)
    summaries = train_runs_parallel(jobs, workers=8, threads=2, gpu_shares={name: 0.25, ...}, gpus=["0", "1"])
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import time
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
    for key in ("steps", "seq_len", "seed"):
        if saved.get(key) != now.get(key):
            return None
    # the global batch, however many data-parallel processes trained it
    if manifest.get("tokens_per_step") != train_cfg.batch_size * train_cfg.seq_len * train_cfg.grad_accum:
        return None
    if saved.get("model", {}).get("depth") != now["model"]["depth"]:
        return None
    summary = dict(manifest.get("summary") or {})
    summary["seconds"] = summary.get("train_seconds")
    return summary


def train_one(train_cfg, threads: int | None = None, log=None) -> dict:
    """Train (or resume) one run to completion and return its summary with the wall time it took here."""
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


def _train_on_gpu(gpu: str, train_cfg, threads: int | None, after) -> dict:
    """A worker's job on a GPU: a fresh process (one per job), so CUDA_VISIBLE_DEVICES set before CUDA starts
    gives it that GPU as cuda:0."""
    os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    summary = _train_then(train_cfg, threads, after)
    summary["gpu"] = gpu
    return summary


def die_with_parent() -> None:
    """Have Linux send this process SIGTERM when its parent dies (PR_SET_PDEATHSIG), however the parent died:
    `kill` (Python ends without its cleanup), `kill -9`, the out-of-memory killer. Elsewhere, nothing."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def worker_pool(workers: int, gpus: list[str] | None):
    """The local executor's pool of `workers` spawned processes (with `gpus`: a fresh process per job). Each worker
    dies with this process: one left training after it was killed would train beside the rerun, in the same run
    folder."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                               initializer=die_with_parent, max_tasks_per_child=1 if gpus else None)


def train_runs_parallel(jobs: list, workers: int, threads: int | None, after=None, on_start=None,
                        on_done=None, gpu_shares: dict[str, float] | None = None,
                        gpus: list[str] | None = None) -> dict[str, dict]:
    """Train `jobs` [(plan, train_cfg)] in `workers` spawned processes, `threads` torch threads each; `after(plan)`
    gives an optional (function, args) each worker runs after training that plan. Returns {name: summary}.

    With `gpus` (CUDA_VISIBLE_DEVICES ids) and `gpu_shares` ({name: fraction of a GPU}), a job starts only when
    a GPU has room for its share (placement.GpuSlots, in the order given: largest first), in a fresh process that
    sees only that GPU; its summary records it as `gpu`. At most `workers` train at once either way.

    A failure in one run (a NaN loss, a bad config) is raised here and the other workers are stopped; a worker
    killed from outside (out of memory) is one clear error. On Ctrl-C too the workers are stopped at once. The
    finished runs stay complete and the interrupted ones resume from their last checkpoint."""
    from concurrent.futures import FIRST_COMPLETED, wait
    from concurrent.futures.process import BrokenProcessPool

    out: dict[str, dict] = {}
    pool = worker_pool(workers, gpus)
    try:
        if gpus:
            return _train_packed(pool, jobs, workers, threads, after, on_start, on_done, gpu_shares, gpus, out)
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


def _train_packed(pool, jobs, workers, threads, after, on_start, on_done, shares, gpus, out) -> dict[str, dict]:
    """train_runs_parallel's GPU loop: start each waiting job (in order) once a GPU has room for its share."""
    from concurrent.futures import FIRST_COMPLETED, wait
    from concurrent.futures.process import BrokenProcessPool

    from augury.forecast.placement import GpuSlots

    slots = GpuSlots(len(gpus))
    waiting, running, started = list(jobs), {}, 0
    while waiting or running:
        for job in list(waiting):
            if len(running) >= workers:
                break
            plan, cfg = job
            gpu = slots.place(shares[plan.name])
            if gpu is None:
                continue  # a smaller job further down may still fit
            waiting.remove(job)
            fut = pool.submit(_train_on_gpu, gpus[gpu], dataclasses.replace(cfg, progress=False), threads,
                              after(plan) if after else None)
            running[fut] = (plan, gpu)
            if on_start:
                on_start(started, plan)
            started += 1
        done, _ = wait(list(running), return_when=FIRST_COMPLETED)
        for fut in done:
            plan, gpu = running.pop(fut)
            slots.release(gpu, shares[plan.name])
            try:
                out[plan.name] = fut.result()
            except BrokenProcessPool:
                raise WorkerDied(f"the worker process training {plan.name} died (killed, or out of memory); "
                                 f"rerun the same command to resume") from None
            if on_done:
                on_done(plan, out[plan.name])
    return out


def _ray_train(train_cfg, threads: int | None) -> dict:
    from augury.forecast.runner import train_one

    summary = train_one(train_cfg, threads)
    import ray

    gpu_ids = ray.get_runtime_context().get_accelerator_ids().get("GPU", [])
    if gpu_ids:
        summary["gpu"] = ",".join(str(g) for g in gpu_ids)
    return summary


def train_runs_ray(jobs: list, out_dir: str | Path, address: str | None, cpus_per_run: int,
                   threads: int | None, on_done=None, gpu_shares: dict[str, float] | None = None,
                   num_gpus: int | None = None) -> dict[str, dict]:
    """Train `jobs` [(plan, train_cfg)] as parallel Ray tasks; returns {name: summary}.

    `gpu_shares` {name: fraction of a GPU}: each task asks Ray for that many GPUs (Ray packs fractions onto one
    GPU and sets the task's CUDA_VISIBLE_DEVICES; without a GPU request Ray hides every GPU from a task), and the
    tasks are submitted largest first; a summary records the GPU it trained on as `gpu`. None: CPUs only.
    `num_gpus`: the GPUs a local Ray instance offers (None: those it finds)."""
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
            ray.init(num_cpus=max(1, os.cpu_count() or 1), num_gpus=num_gpus, include_dashboard=False,
                     _temp_dir=str(tmp),
                     log_to_driver=False, runtime_env={"env_vars": {"RAY_USAGE_STATS_ENABLED": "0",
                                                                    "PYTHONPATH": path}})
        started = True
    try:
        if gpu_shares and not ray.cluster_resources().get("GPU"):
            if any(cfg.device == "cuda" for _, cfg in jobs):
                from augury.forecast.config import ForecastConfigError

                raise ForecastConfigError("device: cuda, but the Ray cluster offers no GPUs")
            gpu_shares = None  # device "auto" on a cluster of CPUs: CPUs only
        task = ray.remote(num_cpus=cpus_per_run)(_ray_train)
        if gpu_shares:
            jobs = sorted(jobs, key=lambda job: -gpu_shares[job[0].name])  # stable: the given order within a size
            refs = {task.options(num_gpus=gpu_shares[plan.name]).remote(dataclasses.replace(cfg, progress=False),
                                                                        threads): plan.name
                    for plan, cfg in jobs}
        else:
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
