"""Per-run control group for the sandbox: caps the whole process tree's task count and memory, and kills it.

Used by `augury.evals.sandbox` when the harness runs as root (creating cgroups needs it) and the cgroup
file system is writable. Unlike RLIMIT_NPROC (per uid, and not binding root at all) and RLIMIT_AS (per
process), these limits hold for the program and all its descendants together. Supports cgroup v1 (`pids`
and `memory` hierarchies) and v2 (unified hierarchy, where the harness's own cgroup allows children).
Not run directly; `python -m augury.evals.sandbox` shows whether the "cgroup" layer is active.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")


def _own_cgroups() -> dict[str, str]:
    """controller ("pids", "memory", or "" for v2) -> this process's cgroup path in that hierarchy."""
    result = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            result[controller] = path
    return result


class RunCgroup:
    """One cgroup per sandboxed run, named after the run's token, with pids and memory limits."""

    def __init__(self, token: str, max_tasks: int | None, memory_bytes: int | None):
        self.dirs: list[Path] = []
        self.events: Path | None = None  # where the kernel counts OOM kills
        own = _own_cgroups()
        name = f"augury-sandbox-{token}"
        try:
            if (ROOT / "cgroup.controllers").exists():  # v2
                group = ROOT / own[""].lstrip("/") / name
                self._make(group, {"pids.max": max_tasks, "memory.max": memory_bytes,
                                   "memory.swap.max": 0 if memory_bytes else None})
                self.events = group / "memory.events"
            else:  # v1: one directory per controller hierarchy
                self._make(ROOT / "pids" / own["pids"].lstrip("/") / name, {"pids.max": max_tasks})
                memory = ROOT / "memory" / own["memory"].lstrip("/") / name
                self._make(memory, {"memory.limit_in_bytes": memory_bytes})
                self.events = memory / "memory.oom_control"
        except (OSError, KeyError):
            self.remove()
            raise OSError("cannot create a cgroup for the sandbox here")

    def _make(self, directory: Path, limits: dict[str, int | None]) -> None:
        directory.mkdir()
        self.dirs.append(directory)
        for filename, value in limits.items():
            if value is not None and (directory / filename).exists():
                (directory / filename).write_text(str(value))
        if limits and not all((directory / f).exists() for f, v in limits.items() if v is not None):
            raise OSError(f"{directory} lacks a limit file (controller not enabled)")

    @property
    def procs_files(self) -> list[str]:
        """Files the supervisor writes "0" into to join (itself, hence everything it starts)."""
        return [str(d / "cgroup.procs") for d in self.dirs]

    def pids(self) -> set[int]:
        found: set[int] = set()
        for directory in self.dirs:
            try:
                found.update(int(p) for p in (directory / "cgroup.procs").read_text().split())
            except OSError:
                pass
        return found

    def kill_all(self, seconds: float = 5.0) -> None:
        """SIGKILL every member until none is left; a process cannot leave a cgroup by forking or setsid."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            members = self.pids()
            if not members:
                return
            for pid in members:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.01)

    def oom_killed(self) -> bool:
        """Whether the kernel killed a member for exceeding the memory limit."""
        try:
            text = self.events.read_text() if self.events else ""
        except OSError:
            return False
        counts = dict(line.split() for line in text.splitlines() if len(line.split()) == 2)
        return int(counts.get("oom_kill", 0)) > 0

    def remove(self) -> None:
        self.kill_all()
        for directory in reversed(self.dirs):
            for _ in range(100):  # rmdir fails while the last killed members are still exiting
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)
        self.dirs = []
