"""The request log under pressure: a log another process holds locked, and clients that only make errors."""

from __future__ import annotations

import json
import sqlite3
import time

import httpx


def _wait_rows(db, n: int) -> list[tuple]:
    deadline, rows = time.time() + 30, []
    while time.time() < deadline:
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT status, error FROM requests ORDER BY id").fetchall()
        if len(rows) >= n:
            break
        time.sleep(0.1)
    return rows


def _stream_to_done(url: str, body: dict, timeout: float) -> list[str]:
    """The events of a streamed reply up to and with `[DONE]` (the response may still be open after it)."""
    events = []
    with httpx.stream("POST", url, json=body, timeout=timeout) as resp:
        for line in resp.iter_lines():
            if line.startswith("data: "):
                events.append(line[6:])
                if line == "data: [DONE]":
                    break
    return events


def test_a_log_locked_by_another_process_holds_up_no_stream(tiny_run, tmp_path, make_client, serving):
    # `augury monitor` or a backup may hold the log's write lock for a while: the rows wait for it (every request
    # still gets its row once the lock is released), the streams do not
    client, cfg = make_client(tiny_run, tmp_path)
    body = {"prompt": "a", "max_tokens": 4, "temperature": 0, "stream": True}
    with serving(client.app) as port:
        url = f"http://127.0.0.1:{port}/v1/completions"
        locker = sqlite3.connect(cfg.log, isolation_level=None)
        locker.execute("BEGIN IMMEDIATE")  # another connection's write transaction
        try:
            first = _stream_to_done(url, body, timeout=30)  # its row now waits for the lock
            second = _stream_to_done(url, body, timeout=10)  # a log write that blocked the server stalls this
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        assert first[-1] == second[-1] == "[DONE]"
        assert "".join(json.loads(e)["choices"][0]["text"] for e in second[:-1])
        assert [r[0] for r in _wait_rows(cfg.log, 2)] == [200, 200]
