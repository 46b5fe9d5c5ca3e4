"""One run trained data-parallel in several processes under torchrun on this machine (DDP: gloo on CPU, one GPU
per process on CUDA): the target on several GPUs, or on a small CPU. The processes' output goes to RUN/torchrun.log;
a launch that fails for another reason than a bad configuration is launched again and resumes from the last
checkpoint. The other executors (in this process, worker processes, Ray) are in `runner.py`.

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

from augury.forecast.runner import die_with_parent, finished_summary
from augury.io import to_jsonable

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
                                preexec_fn=die_with_parent if sys.platform.startswith("linux") else None)
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
