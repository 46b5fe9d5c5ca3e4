"""In-sandbox supervisor: sets up isolation, runs one untrusted program, reaps it and everything it spawned.

Not imported by the harness: `augury.evals.sandbox.run_python` executes this file with a fresh `python -I`
(usually as pid 1 of new user/pid/mount/net namespaces created by `unshare`). It uses the standard library
only, because the interpreter runs isolated (`-I`) and the augury package may not be importable there.

    python -I _sandbox_supervisor.py '<json config>'

Config keys: program, workdir, python, limits {cpu_seconds, memory_bytes, file_size_bytes, max_processes,
max_open_files}, workdir_bytes, drop_uid (int or null), namespaces (list of the namespaces unshare created),
hide (paths to cover with an empty tmpfs), keep (paths to bind back inside hidden ones), net_guard (bool),
status_fd (int), cgroup_procs (cgroup.procs files to join before anything else), channel_fd (int or null: a
socket the program inherits, its number in the program's AUGURY_CHANNEL_FD; the harness uses it to hand a test
runner its tests and to receive its verdict, see augury.evals.code_exec).

It writes one JSON object to status_fd when done: {"layers": [...], "returncode", "signal", "warnings",
"fatal"}. The program never sees status_fd, so it cannot forge the report.
"""

import ctypes
import json
import os
import resource
import signal
import sys
import time

# Linux constants (uapi headers); the numbers are the same on every architecture we run on.
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_SECUREBITS = 28
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
SECURE_ALL_BITS_LOCKED = 0x3F  # noroot, no_setuid_fixup, keep_caps and their locks: uid 0 gets no caps on exec
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_NOSUID = 2
MS_NODEV = 4
SYS_MOUNT_SETATTR = 442  # unified syscall number (Linux >= 5.12) on x86_64 and aarch64
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
CAP_VERSION_3 = 0x20080522

# The net guard is for machines without network namespaces. It is a courtesy, not a boundary: Python code
# can undo it (ctypes, re-importing the extension module). The docs say so.
NET_GUARD = """
import _socket, socket, sys, runpy
def _denied(*args, **kwargs):
    raise PermissionError(1, "network access is disabled in the augury sandbox")
class _NoSocket(socket.socket):
    def __init__(self, *args, **kwargs):
        _denied()
socket.socket = socket.SocketType = _NoSocket
_socket.socket = _socket.SocketType = _NoSocket
for _name in ("create_connection", "create_server", "socketpair", "fromfd", "getaddrinfo"):
    setattr(socket, _name, _denied)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source, target: str, fstype, flags: int, data=None) -> None:
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    _check(libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
           f"mount {source} -> {target}")


def _mount_setattr(path: str, attr_set: int, attr_clr: int, recursive: bool) -> None:
    attr = _MountAttr(attr_set, attr_clr, 0, 0)
    flags = AT_RECURSIVE if recursive else 0
    _check(libc.syscall(SYS_MOUNT_SETATTR, AT_FDCWD, path.encode(), flags, ctypes.byref(attr),
                        ctypes.sizeof(attr)), f"mount_setattr {path}")


def _prctl(option: int, arg2: int = 0) -> None:
    _check(libc.prctl(option, ctypes.c_ulong(arg2), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)),
           f"prctl {option}")


def _set_oom_score(value: int) -> None:
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(value))
    except OSError:  # lowering needs CAP_SYS_RESOURCE; unprivileged supervisors just skip it
        pass


def _outermost(paths: list[str]) -> list[str]:
    """Paths with every path nested in another one dropped (binding the parent covers them)."""
    real = sorted({os.path.realpath(p) for p in paths if os.path.exists(p)})
    kept: list[str] = []
    for path in real:
        if not any(path == k or path.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(path)
    return kept


def _under(path: str, roots: list[str]) -> bool:
    return any(path.startswith(root.rstrip("/") + "/") for root in roots)


def setup_filesystem(cfg: dict, layers: list, warnings: list) -> None:
    """Inside a private mount namespace: hide homes and shared temp dirs behind empty tmpfs mounts, make
    every mount read-only, and give the program a fresh size-limited tmpfs as its work dir."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    workdir = cfg["workdir"]
    program_name = os.path.basename(cfg["program"])
    with open(cfg["program"], "rb") as f:  # the work dir is about to be replaced by a tmpfs
        program = f.read()
    hidden = [h for h in _outermost(cfg.get("hide", [])) if h != "/"]
    if hidden:
        # Hold the kept trees (the interpreter) open before a tmpfs covers them; bind them back by fd.
        held = {k: os.open(k, os.O_PATH | os.O_DIRECTORY) for k in _outermost(cfg.get("keep", []))
                if _under(k, hidden)}
        try:
            for h in hidden:
                _mount("tmpfs", h, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m,nr_inodes=1000")
            for path, fd in held.items():
                os.makedirs(path, mode=0o755, exist_ok=True)
                _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
        finally:
            for fd in held.values():
                os.close(fd)
        os.makedirs(workdir, mode=0o700, exist_ok=True)  # its mount point, if a tmpfs hid the original
        layers.append("hidden-dirs")
    try:
        _mount_setattr("/", MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID, 0, recursive=True)
        layers.append("readonly-root")
    except OSError as exc:  # old kernel (< 5.12) or a seccomp filter: writes are left to file permissions
        warnings.append(f"read-only root unavailable: {exc}")
    # A new mount, hence writable; size-capped and in memory, so the program cannot fill the disk.
    owner = cfg.get("drop_uid") if cfg.get("drop_uid") is not None else os.getuid()
    _mount("tmpfs", workdir, "tmpfs", MS_NOSUID | MS_NODEV,
           f"mode=0700,size={cfg['workdir_bytes']},nr_inodes=10000,uid={owner},gid={owner}")
    program_path = os.path.join(workdir, program_name)
    with open(program_path, "wb") as f:
        f.write(program)
    os.chown(program_path, owner, owner)
    layers.append("tmpfs-workdir")


def drop_capabilities() -> None:
    """Lose every capability for good (uid 0 inside a user namespace would regain them on exec)."""
    _prctl(PR_SET_SECUREBITS, SECURE_ALL_BITS_LOCKED)
    last_cap = int(open("/proc/sys/kernel/cap_last_cap").read())
    for cap in range(last_cap + 1):
        _prctl(PR_CAPBSET_DROP, cap)
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    header = _CapHeader(CAP_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(libc.capset(ctypes.byref(header), data), "capset")


def exec_program(cfg: dict, status_fd: int, error_fd: int) -> None:
    """Runs in the forked child: limits, privilege drop, exec. Never returns.

    error_fd is close-on-exec: a successful exec closes it silently, a failure writes the reason into it.
    """
    try:
        os.close(status_fd)
        _set_oom_score(0)
        os.setsid()
        limits = cfg["limits"]
        for name, value in (("RLIMIT_CPU", limits["cpu_seconds"]), ("RLIMIT_AS", limits["memory_bytes"]),
                            ("RLIMIT_FSIZE", limits["file_size_bytes"]), ("RLIMIT_CORE", 0),
                            ("RLIMIT_NOFILE", limits["max_open_files"])):
            if value is not None:
                # RLIMIT_CPU: SIGXCPU at the soft limit (reported as a timeout), SIGKILL a second later.
                hard = value + 1 if name == "RLIMIT_CPU" else value
                resource.setrlimit(getattr(resource, name), (value, hard))
        uid = cfg.get("drop_uid")
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)  # root -> unprivileged: the kernel clears every capability here
        if limits["max_processes"] is not None:  # set after setuid: RLIMIT_NPROC counts the real uid's tasks
            resource.setrlimit(resource.RLIMIT_NPROC, (limits["max_processes"], limits["max_processes"]))
        _prctl(PR_SET_NO_NEW_PRIVS, 1)
        os.chdir(cfg["workdir"])  # after the bind mount, so the writable view of it is the cwd
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        argv = [cfg["python"], "-I", "-B"]
        argv += ["-c", NET_GUARD, cfg["program"]] if cfg.get("net_guard") else [cfg["program"]]
        env = dict(os.environ)
        if cfg.get("channel_fd") is not None:
            os.set_inheritable(cfg["channel_fd"], True)
            env["AUGURY_CHANNEL_FD"] = str(cfg["channel_fd"])
        os.execve(cfg["python"], argv, env)
    except BaseException as exc:  # noqa: BLE001 - report anything, then die without running harness code
        os.write(error_fd, f"could not start the program: {exc!r}".encode())
    os._exit(127)


class Terminated(Exception):
    """The harness asked us to stop the program (timeout or output flood)."""


def _on_sigterm(signum, frame):
    raise Terminated()


def kill_leftovers(pid_namespace: bool) -> None:
    """Kill and reap everything the program left behind (daemons, setsid escapees, fork-bomb debris)."""
    if pid_namespace:
        # As pid 1 of the namespace, kill(-1) reaches every other process in it; they cannot leave.
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        me = str(os.getpid())
        children = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if fields[1] == me:  # PPid; as child subreaper, orphans of the program land here
                    children.append(int(entry))
        for child in children:
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            if not children:
                return
        if not children:
            time.sleep(0.01)


def main() -> int:
    cfg = json.loads(sys.argv[1])
    status_fd = cfg["status_fd"]
    os.set_inheritable(status_fd, False)
    if cfg.get("channel_fd") is not None:
        os.set_inheritable(cfg["channel_fd"], False)
    namespaces = cfg.get("namespaces", [])
    layers = ["namespace-" + ns for ns in namespaces]
    warnings: list[str] = []
    status = {"layers": layers, "returncode": None, "signal": None, "warnings": warnings, "fatal": None}
    try:
        if cfg.get("cgroup_procs"):  # join first: everything started from here on is counted and capped
            try:
                for procs_file in cfg["cgroup_procs"]:
                    with open(procs_file, "w") as f:
                        f.write("0")
                layers.append("cgroup")
            except OSError as exc:
                warnings.append(f"could not join the run's cgroup: {exc}")
        _set_oom_score(-1000)  # the memory limit's OOM kill must hit the program, never its reporter
        # Same-uid programs (user-namespace mode) could otherwise ptrace us or open /proc/1/fd/<status>.
        # The program's own exec makes it dumpable again.
        _prctl(PR_SET_DUMPABLE, 0)
        pid_namespace = "pid" in namespaces and os.getpid() == 1
        if not pid_namespace:
            _prctl(PR_SET_CHILD_SUBREAPER, 1)
            layers.append("subreaper")
        if "mount" in namespaces:
            setup_filesystem(cfg, layers, warnings)
        if cfg.get("drop_uid") is not None:
            layers.append(f"uid-{cfg['drop_uid']}")
        elif "user" in namespaces or os.geteuid() == 0:
            drop_capabilities()
            layers.append("no-capabilities")
        layers += ["rlimits", "no-new-privs", "scrubbed-env"]
        if cfg.get("net_guard"):
            layers.append("python-net-guard")
        if not pid_namespace:  # pid 1 needs no handler: the harness kills the whole namespace instead
            signal.signal(signal.SIGTERM, _on_sigterm)
        error_read, error_write = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:
            os.close(error_read)
            exec_program(cfg, status_fd, error_write)
        os.close(error_write)
        if cfg.get("channel_fd") is not None:
            os.close(cfg["channel_fd"])  # only the program holds the channel
        with os.fdopen(error_read, "rb") as f:
            exec_error = f.read().decode(errors="replace")  # EOF as soon as exec succeeded
        if exec_error:
            os.waitpid(pid, 0)
            raise RuntimeError(exec_error)
        try:
            while True:
                reaped, wait_status = os.waitpid(-1, 0)
                if reaped == pid:
                    break
        except Terminated:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            status["terminated"] = True
            wait_status = None
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if wait_status is None:
            status["signal"] = signal.SIGKILL
        elif os.WIFSIGNALED(wait_status):
            status["signal"] = os.WTERMSIG(wait_status)
        else:
            status["returncode"] = os.WEXITSTATUS(wait_status)
        kill_leftovers(pid_namespace)
    except Exception as exc:  # noqa: BLE001 - reported to the harness as a sandbox error
        status["fatal"] = repr(exc)
    os.write(status_fd, json.dumps(status).encode())
    os.close(status_fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
