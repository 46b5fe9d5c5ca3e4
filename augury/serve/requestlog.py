"""The request log: one SQLite row per answered request, written before the response is finished.

    log = RequestLog("serve/requests.db")
    log.write(RequestRecord(key="alice", endpoint="/v1/chat/completions", status=200, prompt_tokens=12, ...))

The database runs in WAL mode and each row is committed on its own, so a server killed with `kill -9` loses no
answered request (a committed WAL frame survives the process; only a power loss could lose the last ones, which
synchronous=FULL would also cover at a cost per request). Several server processes may share one file.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,               -- unix time the request arrived
    key TEXT,                       -- the key's name; NULL when no valid key was given
    endpoint TEXT NOT NULL,
    status INTEGER NOT NULL,        -- HTTP status answered
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    latency_ms REAL NOT NULL,
    ttft_ms REAL,                   -- time to first token (streamed and generated replies)
    flagged INTEGER NOT NULL DEFAULT 0,
    refused INTEGER NOT NULL DEFAULT 0,
    categories TEXT NOT NULL DEFAULT '[]',  -- JSON list of flagged moderation categories
    error TEXT
);
CREATE INDEX IF NOT EXISTS requests_key_ts ON requests (key, ts);
"""


@dataclass
class RequestRecord:
    endpoint: str
    status: int
    latency_ms: float
    key: str | None = None
    ts: float = field(default_factory=time.time)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_ms: float | None = None
    flagged: bool = False
    refused: bool = False
    categories: list[str] = field(default_factory=list)
    error: str | None = None


class RequestLog:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._db.commit()

    def write(self, rec: RequestRecord) -> None:
        row = asdict(rec)
        row["categories"] = json.dumps(rec.categories)
        row["flagged"], row["refused"] = int(rec.flagged), int(rec.refused)
        cols = ", ".join(row)
        marks = ", ".join(f":{c}" for c in row)
        with self._lock:
            self._db.execute(f"INSERT INTO requests ({cols}) VALUES ({marks})", row)
            self._db.commit()

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM requests").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def open_readonly(path: str | Path) -> sqlite3.Connection:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)
