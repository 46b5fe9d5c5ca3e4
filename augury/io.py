"""Small, shared file helpers: atomic writes, JSONL records, hashes, run provenance.

Every file augury writes that a later step trusts (checkpoints, manifests, forecasts, fit results) goes through
`atomic_write_*`: written to a temporary file in the same folder, flushed, fsynced, then renamed over the target,
so a killed process leaves either the old file or the new one, never a partial one.
"""

from __future__ import annotations

import datetime as _dt
import errno
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    try:  # Linux states it; reading it otherwise means setting it, briefly, for the whole process
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes, exclusive: bool = False) -> None:
    """Write `data` to `path` atomically (temp file in the same folder + fsync + rename). The file gets the mode
    a plain `open(path, "w")` would give (an existing file's own, else what the umask allows), not mkstemp's
    owner-only one, so that a run's files stay readable by whoever could read the rest of its folder.

    exclusive: never replace an existing `path` (FileExistsError), even one another process creates meanwhile:
    the temp file is hard-linked to `path`, which fails if it exists (a filesystem without hard links falls back
    to checking, then renaming)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = os.stat(path).st_mode & 0o7777
    except OSError:
        mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if not exclusive:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise
            except OSError as err:
                if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                    raise
                if path.exists():
                    raise FileExistsError(errno.EEXIST, "File exists", str(path)) from None
                os.replace(tmp, path)
    finally:
        try:
            os.unlink(tmp)  # after a failure, or the exclusive write's link
        except FileNotFoundError:
            pass
    _fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _writable(folder: Path) -> bool:
    """Whether files can be created in `folder` (its mode for this user, a read-only mount, an immutable folder)."""
    return os.access(folder, os.W_OK | os.X_OK)


def not_a_folder(path: str | os.PathLike) -> str | None:
    """Why `path` cannot be used as an output folder (it is a file, or the nearest existing path above it is; it,
    or the folder it would be made in, is not writable), or None; checked before a command writes anything, so
    that a mistyped --out fails with one line, not mid-run with a traceback."""
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            return f"{path} is a file, not a folder"
        return None if _writable(path) else f"{path} is not writable (no permission to create files in it)"
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return f"{path} cannot be made: {parent} is a file, not a folder"
    return None if _writable(parent) else f"{path} cannot be made: {parent} is not writable"


def to_jsonable(obj: Any) -> Any:
    """Convert dataclasses, numpy scalars/arrays and paths into plain JSON values."""
    import dataclasses

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {k: to_jsonable(v) for k, v in dataclasses.asdict(obj).items()}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist") and callable(obj.tolist):  # numpy arrays and scalars, torch tensors
        return obj.tolist()
    if isinstance(obj, float) and (obj != obj or obj in (float("inf"), float("-inf"))):
        return None if obj != obj else (1e308 if obj > 0 else -1e308)
    return obj


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int = 2, exclusive: bool = False) -> None:
    """atomic_write_bytes of the JSON text (exclusive: never replacing an existing file)."""
    text = json.dumps(to_jsonable(obj), indent=indent, sort_keys=False) + "\n"
    atomic_write_bytes(path, text.encode("utf-8"), exclusive=exclusive)


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """Append one JSON record as a line, flushed and fsynced (a metrics log survives a kill)."""
    line = json.dumps(to_jsonable(record)) + "\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read a JSONL file; a torn last line (from a kill mid-write) is ignored, any other bad line raises."""
    out: list[dict] = []
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as err:
            if i == len(lines) - 1:
                break
            raise ValueError(f"{path}:{i + 1}: not valid JSON ({err})") from None
    return out


def jsonl_objects(text: str, where: str, error: type[Exception] = ValueError) -> list[tuple[int, dict]]:
    """(line number, object) for each non-blank line of JSONL `text` that a person or a program wrote whole;
    a line that is not JSON, or not a JSON object, is `error` naming `where` and the line. (read_jsonl, for logs
    appended to by a process that may be killed, forgives a torn last line instead.)"""
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise error(f"{where}: line {number} is not valid JSON ({err.msg})") from None
        if not isinstance(obj, dict):
            raise error(f"{where}: line {number} is a JSON {type(obj).__name__}, not an object")
        out.append((number, obj))
    return out


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def files_signature(folder: str | os.PathLike) -> list[tuple[str, int, int]] | None:
    """The name, size and modification time of each file directly in `folder` (None when it is no folder): what
    identifies a folder of weights too large to hash at every start. Saving or copying new weights into the
    folder changes it (so does rewriting the same bytes)."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    return sorted((p.name, st.st_size, st.st_mtime_ns) for p in folder.iterdir() if p.is_file() and (st := p.stat()))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def git_hash(cwd: str | os.PathLike | None = None) -> str | None:
    """The git commit of the augury source tree (with `-dirty` when modified), or None outside a checkout."""
    cwd = cwd or Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=5)
        return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions(names: Iterable[str] = ("augury", "torch", "numpy", "scipy", "tokenizers",
                                             "safetensors", "transformers")) -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": sys.version.split()[0], "platform": platform.platform()}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            out[n] = None
    return out


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
