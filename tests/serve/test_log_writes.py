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


def test_rejected_requests_get_a_bounded_number_of_rows_and_are_all_counted(tiny_run, tmp_path, make_client,
                                                                          keys_file):
    # a client without a key can send requests as fast as it likes: each 401 a row of its own would grow the log
    # without bound. Past the per-client limit they are counted in one row per kind, and monitor still sees them
    from fastapi.testclient import TestClient

    from augury.serve.monitor import summarise

    path, alice, _ = keys_file
    app, cfg = make_client(tiny_run, tmp_path, keys_path=path, log_rejected_per_minute=5)
    with TestClient(app.app) as client:
        bad = {"Authorization": "Bearer not-a-key"}
        for _ in range(30):
            assert client.get("/v1/models", headers=bad).status_code == 401
        for _ in range(10):
            assert client.get("/v1/nothing-here", headers=bad).status_code == 404
        assert client.get("/v1/models", headers={"Authorization": f"Bearer {alice}"}).status_code == 200
        rows = _wait_rows(cfg.log, 6)
        assert [r[0] for r in rows] == [401] * 5 + [200]  # over the limit: counted, not yet written
    with sqlite3.connect(cfg.log) as conn:  # the server has stopped: the counted requests are written
        rows = conn.execute("SELECT key, endpoint, status, repeats FROM requests ORDER BY id").fetchall()
    assert len(rows) == 8
    assert sorted(rows[6:]) == [(None, "/v1/models", 401, 25), (None, "/v1/nothing-here", 404, 10)]
    summary = {s.key: s for s in summarise(cfg.log)}
    assert summary["(no key)"].requests == 40 and summary["alice"].requests == 1


def test_counted_rejections_are_written_when_their_minute_is_over():
    from augury.serve.requestlog import RejectedRows, RequestRecord

    now = [1000.0]
    rows = RejectedRows(per_minute=2, clock=lambda: now[0])

    def rejected(client: str) -> list[tuple]:
        out = rows.admit(client, RequestRecord("/v1/models", 401, 1.0, ts=now[0]))
        return [(r.status, r.repeats) for r in out]

    assert [rejected("a") for _ in range(5)] == [[(401, 1)], [(401, 1)], [], [], []]
    assert rejected("b") == [(401, 1)]  # each client address has its own allowance
    now[0] += 61
    assert rejected("b") == [(401, 3), (401, 1)]  # a's counted rows, then b's new minute
    assert rows.flush() == []


def test_a_log_from_before_the_repeats_column_is_read_and_extended(tmp_path):
    from augury.serve.monitor import summarise
    from augury.serve.requestlog import SCHEMA, RequestLog, RequestRecord

    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:
        conn.executescript(SCHEMA.replace(",\n    repeats INTEGER NOT NULL DEFAULT 1", ""))
        conn.execute("INSERT INTO requests (ts, key, endpoint, status, latency_ms) VALUES (?, 'a', '/v1/models', 200, "
                     "1.0)", (time.time(),))
    assert summarise(db)[0].requests == 1
    log = RequestLog(db)
    log.write(RequestRecord("/v1/models", 401, 1.0, repeats=4))
    log.close()
    assert {s.key: s.requests for s in summarise(db)} == {"a": 1, "(no key)": 4}
