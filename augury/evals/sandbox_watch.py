"""Watching one sandboxed run: its output read with a bound and a deadline, its tree killed, its verdict read.

The launching half is `augury.evals.sandbox` (which picks the isolation mode and starts the supervisor); this
module takes over once the supervisor is running: `collect` reads stdout/stderr until exit, flood or timeout,
`kill_marked` sweeps stray processes by the run's token, `drain` reads what the program said on its channel,
and `interpret` turns the supervisor's status report into an `ExecResult`. Not run directly.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field

TOKEN_VAR = "AUGURY_SANDBOX_TOKEN"  # marks every sandboxed process, so strays can be found and killed
CHANNEL_MAX_BYTES = 64 * 1024  # a test file; more would need a writer thread


@dataclass
class ExecResult:
    """What one sandboxed program did."""

    passed: bool
    """Exited with status 0 within all limits."""
    status: str
    """"passed", "failed" (non-zero exit or killed for a limit), "timeout" (wall or CPU time), "error"
    (the sandbox itself could not run the program)."""
    stdout: str
    stderr: str
    returncode: int | None
    """Exit status; negative signal number when killed; None when it never ran."""
    duration_s: float
    reason: str = ""
    """Detail of a non-pass: "exit", "memory", "output-limit", "wall-clock", "cpu-time", "killed",
    "sandbox-error"."""
    layers: tuple[str, ...] = field(default_factory=tuple)
    """Isolation layers that were active for this run."""


def kill_marked(token: str) -> int:
    """SIGKILL every process carrying this run's token (strays that escaped the process group)."""
    needle = f"{TOKEN_VAR}={token}".encode()
    killed = 0
    for _ in range(50):  # a fork bomb may spawn while we sweep: repeat until a sweep finds nothing
        found = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if needle not in f.read().split(b"\0"):
                        continue
                os.kill(int(entry), signal.SIGKILL)
                found += 1
            except (OSError, ValueError):
                continue
        killed += found
        if not found:
            break
        time.sleep(0.02)
    return killed


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process group the supervisor leads (its session, started with start_new_session)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def drain(sock: socket.socket) -> bytes:
    """What the program wrote to its end of the channel (it has exited; a stray writer is not waited for)."""
    sock.setblocking(False)
    data = bytearray()
    while len(data) <= CHANNEL_MAX_BYTES:
        try:
            chunk = sock.recv(65536)
        except (BlockingIOError, InterruptedError, ConnectionResetError):  # reset: it left without reading
            break
        if not chunk:
            break
        data += chunk
    return bytes(data)


def collect(proc: subprocess.Popen, timeout_s: float, max_output_bytes: int, start: float,
            mode: str) -> tuple[bytes, bytes, str]:
    """Read stdout/stderr with a bound and a deadline; stop the program on flood or timeout."""
    chunks = {proc.stdout: bytearray(), proc.stderr: bytearray()}
    reason = ""
    deadline = start + timeout_s
    stop_sent = None  # when the supervisor was told to stop

    def stop(why: str) -> None:
        nonlocal reason, stop_sent
        reason, stop_sent = why, time.monotonic()
        if mode.startswith("plain"):
            # Without a pid namespace, let the subreaper supervisor kill and reap the tree itself; killing
            # it first would orphan the tree to init, whose slow reaping keeps RLIMIT_NPROC slots busy.
            try:
                proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        else:  # pid 1 of the namespace dies with its group, and the kernel kills the whole namespace
            kill_group(proc)

    with selectors.DefaultSelector() as sel:
        for stream in chunks:
            os.set_blocking(stream.fileno(), False)
            sel.register(stream, selectors.EVENT_READ)
        exited_at = None
        while sel.get_map():
            now = time.monotonic()
            if now >= deadline and not reason:
                stop("wall-clock")
            if stop_sent is not None and now - stop_sent > 2.0:
                kill_group(proc)  # the supervisor did not finish in time (or was itself attacked)
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at > 1.0:
                break  # a stray still holds the pipes open; it is swept by token afterwards
            for key, _ in sel.select(timeout=0.05):
                data = key.fileobj.read(65536)
                if not data:
                    sel.unregister(key.fileobj)
                    continue
                chunks[key.fileobj] += data
                if sum(map(len, chunks.values())) > max_output_bytes and not reason:
                    stop("output-limit")
    try:
        proc.wait(timeout=max(0.1, max(deadline, stop_sent or 0.0) + 3.0 - time.monotonic()))
    except subprocess.TimeoutExpired:
        if not reason:
            reason = "wall-clock"
        kill_group(proc)
        proc.wait()
    proc.stdout.close()
    proc.stderr.close()
    stdout = bytes(chunks[proc.stdout][:max_output_bytes])  # together at most max_output_bytes
    stderr = bytes(chunks[proc.stderr][:max_output_bytes - len(stdout)])
    return stdout, stderr, reason


def interpret(proc: subprocess.Popen, raw: bytes, stdout: bytes, stderr: bytes, reason: str, duration: float,
              oom_killed: bool, mode_layers: tuple[str, ...]) -> ExecResult:
    """The result of a finished run from the supervisor's report; `mode_layers` stands in when there is none."""
    out = stdout.decode("utf-8", errors="replace")
    err = stderr.decode("utf-8", errors="replace")
    try:
        report = json.loads(raw) if raw else None
    except json.JSONDecodeError:
        report = None
    # A program killed on timeout leaves no report; its layers are those the probe saw for this mode.
    layers = tuple(report["layers"]) if report else mode_layers
    if reason == "wall-clock":
        return ExecResult(False, "timeout", out, err, None, duration, reason, layers)
    if reason == "output-limit":
        return ExecResult(False, "failed", out, err, None, duration, reason, layers)
    if report is None or report.get("fatal"):
        detail = report["fatal"] if report else f"supervisor exited with {proc.returncode} and no report"
        # Without a report the program may have killed its supervisor (plain mode): a failure, not ours.
        status = "error" if report else "failed"
        return ExecResult(False, status, out, err + f"\naugury sandbox: {detail}", None, duration,
                          "sandbox-error" if report else "killed", layers)
    if report["signal"] is not None:
        sig = report["signal"]
        if sig == signal.SIGXCPU:  # RLIMIT_CPU's soft limit
            return ExecResult(False, "timeout", out, err, -sig, duration, "cpu-time", layers)
        return ExecResult(False, "failed", out, err, -sig, duration, "memory" if oom_killed else "killed", layers)
    code = report["returncode"]
    if code == 0:
        return ExecResult(True, "passed", out, err, 0, duration, "", layers)
    memory = oom_killed or "MemoryError" in err[-2000:]
    return ExecResult(False, "failed", out, err, code, duration, "memory" if memory else "exit", layers)
