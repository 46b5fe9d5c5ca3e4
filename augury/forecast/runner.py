"""Training the planned runs: skip the finished ones, resume the interrupted one, run the rest.

A run counts as finished when its folder's manifest.json says `complete` for the same configuration; such a run
is never retrained. Executors: `local` (one run after another in this process, or `jobs` runs at a time in worker
processes: `train_runs_parallel`) and `ray` (rungs as parallel Ray tasks on an existing cluster, or on a local Ray
instance whose temporary files stay inside the forecast folder). On GPUs both place the runs by size
(`augury.forecast.placement`): Ray gets a fraction of a GPU per run as `num_gpus`, the local executor packs them
onto the GPUs itself (CUDA_VISIBLE_DEVICES per worker process). One run can also train data-parallel in several
processes under torchrun on this machine (`train_torchrun`: the target on several GPUs, or on a small CPU).

    summary = train_one(train_cfg, threads=2)
    summaries = train_runs_parallel([(plan, train_cfg), ...], workers=2, threads=1)
    summaries = train_runs_parallel(jobs, workers=8, threads=2, gpu_shares={name: 0.25, ...}, gpus=["0", "1"])
    summary = train_torchrun(train_cfg, procs=2, threads=1)     # the same run, DDP over 2 processes
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
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
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    out: dict[str, dict] = {}
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                               max_tasks_per_child=1 if gpus else None)
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


LAUNCH_MARK = "=== augury: torchrun launched:"


class TorchrunFailed(RuntimeError):
    """The processes of a torchrun-launched run exited with an error (the run keeps its last checkpoint)."""


def train_torchrun(train_cfg, procs: int, threads: int | None = None, poll=None, log=print,
                   launches: int = 2) -> dict:
    """Train (or resume) one run data-parallel in `procs` processes under torchrun on this machine (DDP; gloo on
    CPU, one GPU per process on CUDA). `train_cfg.batch_size` is the global batch: each process takes
    batch_size / procs sequences of the same windows, so the run is the one a single process would train, up to
    the rounding of the gradients' sum. `threads`: torch threads per process (None: the CPUs divided among them).
    `poll(last_metrics_record)` is called every few seconds while it trains. The processes' output goes to
    RUN/torchrun.log. If they fail, they are launched again (up to `launches` launches in all) and resume from the
    last checkpoint, unless the failure is `augury train`'s own error (a bad configuration fails again); the last
    failure raises TorchrunFailed quoting the workers' error. Ctrl-C (or an error here) stops every process; the
    run resumes from its last checkpoint, also with another number of processes."""
    import yaml

    from augury.io import atomic_write_text

    if train_cfg.batch_size % procs:
        raise ValueError(f"{procs} processes cannot share a batch of {train_cfg.batch_size} sequences evenly")
    out = Path(train_cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    launch = out / "torchrun.yaml"
    per_process = dataclasses.replace(train_cfg, batch_size=train_cfg.batch_size // procs, progress=False)
    atomic_write_text(launch, yaml.safe_dump(to_jsonable(per_process), sort_keys=False))
    threads = threads or max(1, (os.cpu_count() or 1) // procs)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    import augury

    # the processes must import this augury (also when it runs from a checkout, not an install)
    root = str(Path(augury.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    # All processes are on this machine: they meet on the loopback address, not on whatever the host name resolves
    # to (torchrun's default; a host name that resolves to nothing, or to another address, hangs or fails them).
    if sys.platform.startswith("linux") and Path("/sys/class/net/lo").exists():
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--local-addr", "127.0.0.1",
           "--nproc_per_node", str(procs),
           "-m", "augury", "train", "--config", str(launch), "--resume", "auto"]
    start = time.perf_counter()
    failures = []
    for attempt in range(1, launches + 1):
        rc = run_logged(cmd, env, out / "torchrun.log", out / "metrics.jsonl", poll)
        if rc == 0:
            break
        error = worker_error(out / "torchrun.log")
        failures.append(error)
        # torchrun's own --max-restarts reuses the rendezvous, and gloo then fails to connect: a new launch instead
        if attempt == launches or error.startswith("augury train: error:"):
            raise TorchrunFailed(f"training {out} in {procs} processes (torchrun) failed with exit status {rc}: "
                                 f"{error} (the whole output: {out / 'torchrun.log'}); its last checkpoint is "
                                 f"kept, rerun the same command to resume")
        log(f"training {out} in {procs} processes failed ({error}); launching them again from the last checkpoint "
            f"(the whole output: {out / 'torchrun.log'})")
    summary = finished_summary(out, train_cfg)
    if summary is None:
        raise TorchrunFailed(f"torchrun finished but {out}/manifest.json does not record the run as complete")
    summary["seconds"] = time.perf_counter() - start
    summary["failed_launches"] = failures
    return summary


def run_logged(cmd: list, env: dict, log_path: Path, metrics: Path, poll) -> int:
    """Run torchrun with its output appended to `log_path` (after a launch mark); returns its exit status."""
    with open(log_path, "a") as logf:
        logf.write(f"{LAUNCH_MARK} {' '.join(cmd)}\n")
        logf.flush()
        # its own process group, so that stopping it reaches torchrun's workers too; on Linux the group also
        # gets SIGTERM if this process dies
        proc = subprocess.Popen(cmd, env=env, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        try:
            while True:
                try:
                    return proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    if poll is not None:
                        poll(_last_record(metrics))
        except BaseException:
            _stop_group(proc)
            raise


def _die_with_parent() -> None:
    import ctypes

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _stop_group(proc) -> None:
    """SIGTERM to torchrun and its workers (torchrun passes it on), SIGKILL if they are still there in 30 s."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except Exception:
            continue


def worker_error(log: Path) -> str:
    """The workers' own error in a torchrun log (not torchrun's summary of it): the last error line written by the
    rank torchrun names as the root cause (workers prefix their lines with "[rankN]: "), else by any process; with
    none, the log's last lines."""
    text = log.read_text(errors="replace") if log.is_file() else ""
    text = text[text.rfind(LAUNCH_MARK):]  # this launch's output only
    lines = text.splitlines()[1:]
    pattern = re.compile(r"^(augury train: error: |error: |[A-Za-z_.]*(Error|Diverged|Exception): )")
    # a peer's crash seen from the other processes: a consequence, quoted only if nothing else is there
    secondary = re.compile(r"Connection (closed|reset) by peer|remote worker crash|closing signal")
    errors = []  # (rank or None, line)
    for line in lines:
        m = re.match(r"^\[rank(\d+)\]:\s?(.*)$", line.strip())
        rank, body = (int(m.group(1)), m.group(2).strip()) if m else (None, line.strip())
        if pattern.match(body) and "torch.distributed.elastic" not in body:
            errors.append((rank, body))
    primary = [(r, b) for r, b in errors if not secondary.search(b)] or errors
    root = re.search(r"Root Cause.*?\n\s*rank\s*:\s*(\d+)", text, re.S)
    if root and any(r == int(root.group(1)) for r, _ in primary):
        return [b for r, b in primary if r == int(root.group(1))][-1]
    if primary:
        return primary[-1][1]
    tail = [ln for ln in lines if ln.strip() and not ln.startswith("*")][-12:]
    return ("no error message (killed?); its last lines:\n  " + "\n  ".join(tail)) if tail else "no output at all"


def _last_record(path: Path) -> dict | None:
    try:
        lines = path.read_text().strip().splitlines()
        return json.loads(lines[-1]) if lines else None
    except (OSError, json.JSONDecodeError):
        return None


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
