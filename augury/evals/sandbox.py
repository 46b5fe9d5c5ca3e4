"""Sandbox for untrusted Python programs (model-written code): one fresh, isolated, time-limited process each.

`run_python(program, limits)` writes the program into a new temporary directory and runs it with a fresh
`python -I` (never a fork of the harness, which may hold a model) under `_sandbox_supervisor.py`. The
strongest isolation this machine allows is picked once per process by a probe, in this order:

1. `root-namespaces` (harness is root): `unshare --net --mount --pid --ipc --uts --fork --kill-child`; the
   supervisor hides homes, temp dirs and where answers lie (the checkout, the harness's cwd, the shared data,
   `SandboxLimits.hidden_dirs`), makes every mount read-only, gives the program a tmpfs work dir, and runs it
   as uid `nobody` (so RLIMIT_NPROC binds and file permissions apply).
2. `user-namespaces` (unprivileged user with user namespaces): the same namespaces inside a new user
   namespace, and every capability dropped.
3. `plain`: no namespaces; own session, rlimits, a child subreaper, uid `nobody` when root, and a
   Python-level socket guard, which is NOT a security boundary. Nothing is hidden.
4. `plain-as-root`: as `plain`, but as root without capabilities (when `nobody` cannot run the interpreter).

As root, a per-run cgroup (sandbox_cgroup.py) also caps the tree's tasks and memory. Every mode scrubs the
environment, caps CPU time, address space, file size, processes, open files and output, and kills the
whole process tree on timeout. This module picks the mode and starts the run; sandbox_watch.py reads its
output, kills its tree and reads its verdict. docs/sandbox.md says what this does and does not protect
against. Print the mode and layers active here with:

    python -m augury.evals.sandbox
"""

from __future__ import annotations

import dataclasses
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from augury.evals.sandbox_cgroup import RunCgroup
from augury.evals.sandbox_watch import (
    CHANNEL_MAX_BYTES,
    TOKEN_VAR,
    ExecResult,
    collect,
    drain,
    interpret,
    kill_group,
    kill_marked,
)

__all__ = ["ExecResult", "SandboxLimits", "TOKEN_VAR", "isolation_layers", "run_python", "sandbox_mode"]

SUPERVISOR = Path(__file__).with_name("_sandbox_supervisor.py")
NAMESPACES = ["net", "mount", "pid", "ipc", "uts"]
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
MODES = ("root-namespaces", "user-namespaces", "plain", "plain-as-root")
MODE_VAR = "AUGURY_SANDBOX_MODE"  # force a (weaker) mode, e.g. to test the fallbacks; unset: strongest
# Homes hold credentials; shared temp and run dirs hold other users' files and unix sockets (ssh-agent, X11,
# D-Bus), which a network namespace does not cut off.
HIDDEN_ALWAYS = ("~", "/root", "/home", "/tmp", "/var/tmp", "/dev/shm", "/run")
PROJECT = Path(__file__).resolve().parents[2]  # the checkout; installed, site-packages (kept: the interpreter)
SYSTEM_DIRS = ("/usr", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin", "/etc", "/proc", "/sys", "/dev")
# The mode picked by the probe in sandbox_mode(), and the layers it saw (reported for runs killed before the
# supervisor could say which layers it set up).
_mode_lock = threading.Lock()
_mode: str | None = None
_mode_layers: tuple[str, ...] = ()


@dataclass
class SandboxLimits:
    """Resource limits for one sandboxed program."""

    timeout_s: float = 10.0
    """Wall-clock limit; the whole process tree is SIGKILLed when it passes."""
    cpu_seconds: int | None = None
    """RLIMIT_CPU per process (SIGXCPU, reported as a timeout); None means int(timeout_s) + 2."""
    memory_bytes: int | None = 2 * 1024**3
    """RLIMIT_AS (address space) per process; allocations beyond it fail (MemoryError)."""
    file_size_bytes: int | None = 16 * 1024**2
    """RLIMIT_FSIZE: the largest file the program may write."""
    max_processes: int | None = 64
    """RLIMIT_NPROC: processes of the sandbox's user (per user namespace where one is used)."""
    max_open_files: int | None = 256
    """RLIMIT_NOFILE."""
    max_output_bytes: int = 1024**2
    """stdout + stderr kept; a program writing more is killed (reason "output-limit")."""
    workdir_bytes: int = 64 * 1024**2
    """Size of the in-memory work dir (tmpfs) in the namespace modes; plain modes use a disk directory."""
    allow_network: bool = False
    """True runs the program in the host's network namespace without the socket guard."""
    hidden_dirs: tuple[str, ...] = ()
    """More directories to cover with an empty tmpfs, like homes and temp dirs (namespace modes only): where the
    tests and their answers come from. The project checkout, the harness's working directory and the shared data
    ($AUGURY_SHARED_DATA, ../shared/data beside the checkout) are always hidden; system and interpreter
    directories never are."""


def _unshare_path() -> str | None:
    """util-linux's unshare, looked up in fixed system directories (not the harness's PATH)."""
    return shutil.which("unshare", path=SAFE_PATH + ":/usr/sbin:/sbin")


def _sandbox_uid() -> int | None:
    """The uid programs run as when the harness is root (nobody), else None (no change)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("nobody").pw_uid
    except KeyError:
        return 65534


def _hidden_and_kept(extra: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """Directories to hide behind an empty tmpfs, and the interpreter trees to bind back inside them."""
    candidates = {os.path.expanduser(p) for p in HIDDEN_ALWAYS}
    hide = sorted(p for p in candidates if os.path.isdir(p) and os.path.realpath(p) != "/")
    keep = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
            os.path.dirname(os.path.realpath(sys.executable)), os.path.dirname(sys.executable)]
    # Where the answers are: task data (with reference solutions), the checkout, run outputs in the cwd; and the
    # harness's temp dir wherever TMPDIR puts it (other runs' work dirs, other users' files).
    try:
        cwd = os.getcwd()
    except OSError:  # deleted under us
        cwd = ""
    answers = [*extra, os.environ.get("AUGURY_SHARED_DATA", ""), str(PROJECT.parent / "shared" / "data"),
               str(PROJECT), cwd, tempfile.gettempdir()]
    hide += sorted({os.path.realpath(p) for p in answers if p and _hideable(p, keep)} - set(hide))
    return hide, keep


def _hideable(path: str, keep: list[str]) -> bool:
    """Whether covering `path` leaves the interpreter working: not a system directory, nor in the interpreter's
    tree (an interpreter tree inside `path` is bound back)."""
    real = os.path.realpath(path)
    if real == "/" or not os.path.isdir(real):
        return False
    needed = {os.path.realpath(p) for p in (*SYSTEM_DIRS, *keep)}
    return not any(real == p or real.startswith(p.rstrip("/") + "/") for p in needed)


def _build_command(mode: str, workdir: str, program_path: str, limits: SandboxLimits, status_fd: int,
                   cgroup_procs: list[str], channel_fd: int | None = None) -> tuple[list[str], int | None]:
    """The argv to start, and the uid Popen should switch to before exec (None: stay)."""
    namespaces = [] if mode.startswith("plain") else [ns for ns in NAMESPACES
                                             if ns != "net" or not limits.allow_network]
    hide, keep = _hidden_and_kept(tuple(limits.hidden_dirs))
    uid = _sandbox_uid() if mode in ("root-namespaces", "plain") else None
    cfg = {
        "program": program_path, "workdir": workdir, "python": sys.executable,
        "limits": {"cpu_seconds": limits.cpu_seconds or int(limits.timeout_s) + 2,
                   "memory_bytes": limits.memory_bytes, "file_size_bytes": limits.file_size_bytes,
                   "max_processes": limits.max_processes, "max_open_files": limits.max_open_files},
        "workdir_bytes": limits.workdir_bytes,
        "drop_uid": uid,
        "namespaces": namespaces + (["user"] if mode == "user-namespaces" else []),
        "hide": hide, "keep": keep, "status_fd": status_fd, "cgroup_procs": cgroup_procs, "channel_fd": channel_fd,
        "net_guard": not limits.allow_network and "net" not in namespaces,
    }
    supervisor = [sys.executable, "-I", "-S", "-B", str(SUPERVISOR), json.dumps(cfg)]
    if mode.startswith("plain"):
        return supervisor, None
    unshare = [_unshare_path() or "unshare", *(f"--{ns}" for ns in namespaces), "--fork", "--kill-child",
               "--mount-proc"]
    if mode == "user-namespaces":
        # Switch to nobody first when root, so the namespace is owned by an unprivileged uid.
        return [*unshare, "--map-root-user", *supervisor], _sandbox_uid()
    return [*unshare, *supervisor], None


def _env(workdir: str, token: str) -> dict[str, str]:
    """A scrubbed environment: nothing of the harness's (no API keys, tokens, proxies) leaks through."""
    return {"PATH": SAFE_PATH, "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0", TOKEN_VAR: token}


def _remove_tree(path: str) -> None:
    """rmtree that also handles directories the program made unreadable, acting only inside `path` and never
    through a symbolic link: in the plain modes a program can put links in its work dir, and the harness may be
    root."""
    if os.path.islink(path):
        os.unlink(path)
        return
    root = os.path.realpath(path)

    def inside(target: str) -> bool:
        real = os.path.realpath(target)
        return real == root or real.startswith(root + os.sep)

    def fix_and_retry(func, target, _exc):
        try:
            if os.path.islink(target):  # removed, never followed
                os.unlink(target)
                return
            for folder in (os.path.dirname(target), target):
                if inside(folder):
                    os.chmod(folder, 0o700)
            func(target)
        except OSError:
            pass
    shutil.rmtree(path, onerror=fix_and_retry)


def _run_cgroup(mode: str, token: str, limits: SandboxLimits) -> RunCgroup | None:
    """A cgroup capping the whole tree, where the harness is root and the cgroup file system allows it."""
    if os.geteuid() != 0 or mode == "user-namespaces":  # there the supervisor is not root
        return None
    tasks = None if limits.max_processes is None else limits.max_processes + 4  # + supervisor, unshare
    try:
        return RunCgroup(token, tasks, limits.memory_bytes)
    except OSError:
        return None


def _execute(mode: str, program: str, limits: SandboxLimits, channel: bytes | None = None,
             verdict: bytes | None = None) -> ExecResult:
    """One run in `mode`: start the supervisor, watch it (sandbox_watch), clean up, and judge the result."""
    start = time.monotonic()
    ours = theirs = None
    if channel is not None:
        if len(channel) > CHANNEL_MAX_BYTES:
            raise ValueError(f"channel data of {len(channel)} bytes is over {CHANNEL_MAX_BYTES}")
        ours, theirs = socket.socketpair()
        ours.sendall(channel)  # fits the socket's buffer, so no thread is needed
        ours.shutdown(socket.SHUT_WR)
    # The work dir lies in a folder of the harness's that the program may not change: in the plain modes it could
    # otherwise (in a world-writable temp dir) swap its work dir for a link to anything the cleanup would then follow.
    holder = tempfile.mkdtemp(prefix="augury-sandbox-")
    workdir = os.path.join(holder, "work")
    token = f"{os.getpid()}-{uuid.uuid4().hex}"  # harness pid first: strays show whose they are
    cgroup = _run_cgroup(mode, token, limits)
    status_read = status_write = -1
    proc = None
    try:
        os.chmod(holder, 0o711)  # others may pass through it to the work dir, not change it
        os.mkdir(workdir, 0o700)
        program_path = os.path.join(workdir, "program.py")
        Path(program_path).write_text(program, encoding="utf-8")
        uid = _sandbox_uid() if mode != "plain-as-root" else None
        if uid is not None:  # the program runs as nobody and must be able to write its work dir
            os.chown(workdir, uid, uid)
            os.chown(program_path, uid, uid)
        status_read, status_write = os.pipe()
        argv, popen_uid = _build_command(mode, workdir, program_path, limits, status_write,
                                         cgroup.procs_files if cgroup else [],
                                         theirs.fileno() if theirs is not None else None)
        extra = {"user": popen_uid, "group": popen_uid, "extra_groups": []} if popen_uid is not None else {}
        proc = subprocess.Popen(argv, cwd=workdir, env=_env(workdir, token), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                pass_fds=(status_write,) + ((theirs.fileno(),) if theirs is not None else ()),
                                start_new_session=True, close_fds=True, **extra)
        os.close(status_write)
        status_write = -1
        if theirs is not None:
            theirs.close()
        stdout, stderr, reason = collect(proc, limits.timeout_s, limits.max_output_bytes, start, mode)
        if cgroup is not None:
            cgroup.kill_all()
        kill_marked(token)
        with os.fdopen(status_read, "rb") as f:
            status_read = -1
            raw = f.read()
        oom = cgroup is not None and cgroup.oom_killed()
        said = drain(ours) if ours is not None else None
    except OSError as exc:
        if proc is not None:
            kill_group(proc)
            proc.wait()
        kill_marked(token)
        return ExecResult(False, "error", "", f"augury sandbox: {exc}", None,
                          time.monotonic() - start, "sandbox-error")
    finally:
        for sock in (ours, theirs):
            if sock is not None:
                sock.close()
        for fd in (status_read, status_write):
            if fd >= 0:
                os.close(fd)
        if cgroup is not None:
            cgroup.remove()
        _remove_tree(holder)
    result = interpret(proc, raw, stdout, stderr, reason, time.monotonic() - start, oom, _mode_layers)
    if verdict is not None and result.passed and said != verdict:
        # Exit status 0 without the runner's word that every test ran: the program left early (exit(0) at
        # module level, os._exit, SystemExit) or tampered with the runner.
        return dataclasses.replace(result, passed=False, status="failed", reason="incomplete",
                                   stderr=result.stderr + "\naugury sandbox: exit status 0, but the tests did not "
                                                          "report that they ran to the end")
    return result


def sandbox_mode() -> str:
    """The strongest mode that runs a trivial program correctly here (probed once, then cached)."""
    global _mode, _mode_layers
    with _mode_lock:
        if _mode is None:
            forced = os.environ.get(MODE_VAR, "")
            if forced and forced not in MODES:
                raise ValueError(f"{MODE_VAR}={forced!r} is not one of {', '.join(MODES)}")
            root = os.geteuid() == 0
            candidates = [m for m in MODES if root or m not in ("root-namespaces", "plain-as-root")]
            if _unshare_path() is None:
                candidates = [m for m in candidates if m.startswith("plain")]
            candidates = [forced] if forced else candidates
            for mode in candidates:
                result = _execute(mode, "print('augury-sandbox-ok')", SandboxLimits(timeout_s=20.0))
                if result.passed and result.stdout.strip() == "augury-sandbox-ok":
                    _mode, _mode_layers = mode, result.layers
                    break
            else:
                if forced:
                    raise RuntimeError(f"sandbox mode {forced!r} does not work here: {result.stderr.strip()}")
                _mode = candidates[-1]
        return _mode


def run_python(program: str, limits: SandboxLimits | None = None, channel: bytes | None = None,
               verdict: bytes | None = None) -> ExecResult:
    """Run Python source `program` in the sandbox and report what happened; never raises for bad programs.

    With `channel`, the program inherits a socket (fd number in $AUGURY_CHANNEL_FD) from which it reads these
    bytes; with `verdict`, the run passes only when it exits 0 *and* wrote exactly these bytes to the socket.
    """
    return _execute(sandbox_mode(), program, limits or SandboxLimits(), channel, verdict)


def isolation_layers() -> tuple[str, ...]:
    """The layers active for programs run here (runs one trivial program)."""
    return run_python("pass").layers


if __name__ == "__main__":
    print(f"mode: {sandbox_mode()}")
    print("layers: " + ", ".join(isolation_layers()))
