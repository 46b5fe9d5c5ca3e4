"""The request log: one SQLite row per answered request, written before the response is finished.

    log = RequestLog("serve/requests.db")
    log.write(RequestRecord(key="alice", endpoint="/v1/chat/completions", status=200, prompt_tokens=12, ...))

The database runs in WAL mode and each row is committed on its own, so a server killed with `kill -9` loses no
answered request (a committed WAL frame survives the process; only a power loss could lose the last ones, which
synchronous=FULL would also cover at a cost per request). Several server processes may share one file.

The server writes through `submit`, which hands the row to the log's own writer thread: a log that another process
holds locked (a backup, `augury monitor`) makes the requests whose rows wait for it wait, not the event loop that
streams every other reply.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from augury.errors import UsageError

SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,               -- unix time the request arrived
    key TEXT,                       -- the key's name; NULL when no valid key was given
    client TEXT,                    -- the client's address (through a trusted proxy: the one it forwards for)
    endpoint TEXT NOT NULL,
    status INTEGER NOT NULL,        -- HTTP status answered
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    latency_ms REAL NOT NULL,
    ttft_ms REAL,                   -- time to first token (streamed and generated replies)
    flagged INTEGER NOT NULL DEFAULT 0,
    refused INTEGER NOT NULL DEFAULT 0,
    categories TEXT NOT NULL DEFAULT '[]',  -- JSON list of flagged moderation categories
    error TEXT,
    repeats INTEGER NOT NULL DEFAULT 1,  -- requests the row stands for: >1 for rejections counted together
    images INTEGER NOT NULL DEFAULT 0,  -- image parts in the request (chat requests to an image-text run)
    image_bytes INTEGER NOT NULL DEFAULT 0  -- their files' size in bytes, in all (the images are never logged)
);
CREATE INDEX IF NOT EXISTS requests_key_ts ON requests (key, ts);
"""


@dataclass
class RequestRecord:
    endpoint: str
    status: int
    latency_ms: float
    key: str | None = None
    client: str | None = None  # the client's address, as the server resolves it (--trusted_proxies)
    ts: float = field(default_factory=time.time)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_ms: float | None = None
    flagged: bool = False
    refused: bool = False
    categories: list[str] = field(default_factory=list)
    error: str | None = None
    repeats: int = 1
    images: int = 0
    image_bytes: int = 0

# columns a log written before they were added lacks; the server adds them when it opens the log
OPTIONAL_COLUMNS = {"repeats": "INTEGER NOT NULL DEFAULT 1", "client": "TEXT", "images": "INTEGER NOT NULL DEFAULT 0",
                    "image_bytes": "INTEGER NOT NULL DEFAULT 0"}


class RequestLogError(UsageError):
    """A --log path that is not (and cannot become) a request log: a folder, another kind of file, another
    program's database."""


class RequestLog:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.check(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
            have = {row[1] for row in self._db.execute("PRAGMA table_info(requests)")}
            for name, decl in OPTIONAL_COLUMNS.items():
                if name not in have:
                    self._db.execute(f"ALTER TABLE requests ADD COLUMN {name} {decl}")
            self._db.commit()
        except (OSError, sqlite3.Error) as err:
            raise RequestLogError(f"cannot open request log {self.path}: {err}") from None
        self._lock = threading.Lock()
        # one thread, so rows are written in the order they were submitted and a locked log ties up no thread the
        # server needs for anything else (asyncio's default pool also runs the moderation grader)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="augury-serve-log")

    @staticmethod
    def check(path: str | Path) -> None:
        """RequestLogError unless `path` is a request log or can become one; creates nothing, so a server checks
        its --log before a slow model load. Another program's database is refused, not written into."""
        path = Path(path)
        if path.exists():
            open_readonly(path, new_ok=True).close()
            return
        parent = next(p for p in path.parents if p.exists())
        if not parent.is_dir():
            raise RequestLogError(f"cannot make request log {path}: {parent} is not a folder")

    def write(self, rec: RequestRecord) -> None:
        row = asdict(rec)
        row["categories"] = json.dumps(rec.categories)
        row["flagged"], row["refused"] = int(rec.flagged), int(rec.refused)
        cols = ", ".join(row)
        marks = ", ".join(f":{c}" for c in row)
        with self._lock:
            self._db.execute(f"INSERT INTO requests ({cols}) VALUES ({marks})", row)
            self._db.commit()

    def submit(self, rec: RequestRecord) -> Future:
        """Write `rec` in the writer thread; the future is done once the row is committed (or the write failed)."""
        return self._writer.submit(self.write, rec)

    def tokens_since(self, ts: float) -> dict[str | None, int]:
        """Prompt and completion tokens per key name of the requests that arrived at or after `ts` (but those the
        limits refused: a log written before such rows were logged without tokens gave them the prompt's)."""
        with self._lock:
            rows = self._db.execute("SELECT key, SUM(prompt_tokens + completion_tokens) FROM requests WHERE ts >= ? "
                                    "AND status != 429 GROUP BY key", (ts,)).fetchall()
        return {key: int(used or 0) for key, used in rows}

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM requests").fetchone()[0]

    def close(self) -> None:
        self._writer.shutdown(wait=True)  # the rows submitted are written first
        with self._lock:
            self._db.close()


class RejectedRows:
    """How many rows rejected requests (answered with an error before any generation) get: per client address, the
    first `per_minute` of each minute a row each; the rest are counted, one row per (key, endpoint, status) with
    `repeats` set, written when that minute is over (`admit` returns them then) or the server stops (`flush`). A
    client that only makes errors cannot grow the log without bound, and every request is still counted.

        rows = RejectedRows(per_minute=60)
        for rec in rows.admit("203.0.113.7", record): log.write(rec)
    """

    def __init__(self, per_minute: int, clock=time.time):
        self.per_minute, self.clock = per_minute, clock
        # client -> [minute's start, rows written, counted rows]; in order of start, so the ended ones come first
        self._minutes: dict[str, list] = {}

    def admit(self, client: str, rec: RequestRecord) -> list[RequestRecord]:
        """The rows to write now: those of the minutes that are over, then `rec` if its client is within its
        limit (0: no limit)."""
        now = self.clock()
        out = self.flush(now - 60.0)
        if self.per_minute <= 0:
            return [*out, rec]
        minute = self._minutes.setdefault(client, [now, 0, {}])
        if minute[1] < self.per_minute:
            minute[1] += 1
            return [*out, rec]
        kind = (rec.key, rec.endpoint, rec.status)
        if kind in minute[2]:
            minute[2][kind].repeats += 1
        else:
            minute[2][kind] = rec  # the first one stands for them all: its time, latency and error
        return out

    def flush(self, before: float = float("inf")) -> list[RequestRecord]:
        """The counted rows of the minutes that started before `before` (all of them by default), forgotten."""
        out = []
        for client, (start, _, counted) in list(self._minutes.items()):
            if start > before:
                break
            del self._minutes[client]
            out += counted.values()
        return out


def open_readonly(path: str | Path, new_ok: bool = False) -> sqlite3.Connection:
    """A read-only connection to a request log; RequestLogError when `path` is not one (with `new_ok`, an empty
    database passes: a log about to be made)."""
    path = Path(path)
    if not path.exists():
        raise RequestLogError(f"{path} does not exist")
    if not path.is_file():
        raise RequestLogError(f"{path} is {_not_a_file(path)}, not an SQLite request log")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as err:
        raise RequestLogError(f"cannot open {path}: {err}") from None
    try:
        _check_is_request_log(db, path, empty_ok=new_ok)
    except BaseException:
        db.close()
        raise
    return db


def _not_a_file(path: Path) -> str:
    return "a folder" if path.is_dir() else "not a regular file"


def _check_is_request_log(db: sqlite3.Connection, path: Path, empty_ok: bool) -> None:
    """RequestLogError unless `db` holds a `requests` table with this module's columns (or, with `empty_ok`, no
    tables at all: a new log)."""
    try:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        columns = {row[1] for row in db.execute("PRAGMA table_info(requests)")}
    except sqlite3.DatabaseError as err:
        raise RequestLogError(f"{path} is not an SQLite database ({err})") from None
    if "requests" not in tables:
        if empty_ok and not tables:
            return
        raise RequestLogError(f"{path} has no requests table: it is not a request log written by augury serve")
    missing = sorted(({"id"} | {f.name for f in fields(RequestRecord)}) - columns - set(OPTIONAL_COLUMNS))
    if missing:
        raise RequestLogError(f"{path}: its requests table lacks column(s) {', '.join(missing)}; "
                              "it is not a request log written by augury serve")
