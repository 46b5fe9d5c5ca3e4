"""Which client a request comes from, behind a reverse proxy: X-Forwarded-For counts from the proxies the server is
told to trust (--trusted_proxies) and from no one else, so clients behind one proxy are told apart and a direct
client cannot pick its own address."""

from __future__ import annotations

import sqlite3

import pytest

from augury.errors import UsageError


def _rows_now(client, forwarded_for: list[str], db) -> int:
    """Send one 401 per forwarded address; the rejected rows written at once (the rest wait, counted)."""
    for address in forwarded_for:
        resp = client.get("/v1/models", headers={"Authorization": "Bearer not-a-key", "X-Forwarded-For": address})
        assert resp.status_code == 401
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0]


def test_forwarded_for_keys_clients_only_from_a_trusted_proxy(tiny_run, tmp_path, make_client, keys_file):
    from fastapi.testclient import TestClient

    path, _, _ = keys_file
    app, cfg = make_client(tiny_run, tmp_path, keys_path=path, log_rejected_per_minute=1,
                           trusted_proxies="10.0.0.0/8, 192.0.2.7")
    clients = [f"198.51.100.{i}" for i in range(1, 4)]
    # three clients behind the trusted proxy: each has its own allowance of one row a minute
    with TestClient(app.app, client=("10.1.2.3", 40000)) as proxied:
        assert _rows_now(proxied, clients, cfg.log) == 3
    # a direct client sending the same header is one client whatever it claims: one row, the others counted
    (tmp_path / "direct").mkdir()
    app, cfg = make_client(tiny_run, tmp_path / "direct", keys_path=path, log_rejected_per_minute=1,
                           trusted_proxies="10.0.0.0/8, 192.0.2.7")
    with TestClient(app.app, client=("203.0.113.9", 40000)) as direct:
        assert _rows_now(direct, clients, cfg.log) == 1


def test_no_proxy_is_trusted_by_default(tiny_run, tmp_path, make_client, keys_file, monkeypatch):
    from fastapi.testclient import TestClient

    from augury.serve import cli

    path, _, _ = keys_file
    app, cfg = make_client(tiny_run, tmp_path, keys_path=path, log_rejected_per_minute=1)
    with TestClient(app.app, client=("127.0.0.1", 40000)) as local:
        assert _rows_now(local, ["198.51.100.1", "198.51.100.2"], cfg.log) == 1
    # nor by uvicorn's own proxy-header handling, which by default trusts 127.0.0.1 (or $FORWARDED_ALLOW_IPS)
    seen = {}
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: seen.update(kw))
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "*")
    cli.main([str(tiny_run), "--log", str(tmp_path / "main.db")])
    assert seen["proxy_headers"] is False


@pytest.mark.parametrize("value", ["not-an-address", "10.0.0.0/33", "10.0.0.1,"])
def test_a_trusted_proxy_that_is_not_an_address_is_refused(tiny_run, tmp_path, make_client, value):
    with pytest.raises(UsageError, match="--trusted_proxies"):
        make_client(tiny_run, tmp_path, trusted_proxies=value)


def _clients(db) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT key, status, client FROM requests ORDER BY id").fetchall()


def test_each_row_of_the_log_names_the_client_address(tiny_run, tmp_path, make_client, keys_file):
    # an operator looking into abuse from a keyless server, or from one key many clients share, needs to see which
    # address sent what: the address as the server resolves it (through a trusted proxy's X-Forwarded-For)
    from fastapi.testclient import TestClient

    path, alice, _ = keys_file
    app, cfg = make_client(tiny_run, tmp_path, keys_path=path, trusted_proxies="10.0.0.0/8")
    with TestClient(app.app, client=("10.1.2.3", 40000)) as proxied:
        for address, key in [("198.51.100.1", alice), ("198.51.100.2", alice), ("198.51.100.2", "not-a-key")]:
            headers = {"Authorization": f"Bearer {key}", "X-Forwarded-For": address}
            proxied.post("/v1/completions", json={"prompt": "a", "max_tokens": 2}, headers=headers)
    (tmp_path / "direct").mkdir()
    app, cfg2 = make_client(tiny_run, tmp_path / "direct")
    with TestClient(app.app, client=("127.0.0.1", 40000)) as direct:
        direct.post("/v1/completions", json={"prompt": "a", "max_tokens": 2},
                    headers={"X-Forwarded-For": "198.51.100.9"})
    assert _clients(cfg.log) == [("alice", 200, "198.51.100.1"), ("alice", 200, "198.51.100.2"),
                                 (None, 401, "198.51.100.2")]
    assert _clients(cfg2.log) == [("(local)", 200, "127.0.0.1")]  # no trusted proxy: the peer, whatever it says


def test_a_log_from_before_the_client_column_is_read_and_extended(tmp_path):
    from augury.serve.monitor import summarise
    from augury.serve.requestlog import SCHEMA, RequestLog, RequestRecord

    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:
        conn.executescript(SCHEMA.replace("\n    client TEXT,", ""))
        conn.execute("INSERT INTO requests (ts, key, endpoint, status, latency_ms) VALUES (strftime('%s'), 'a', "
                     "'/v1/models', 200, 1.0)")
    assert [s.key for s in summarise(db, by="client")] == ["(unknown)"]
    log = RequestLog(db)
    log.write(RequestRecord("/v1/models", 200, 1.0, key="a", client="203.0.113.7"))
    log.close()
    assert _clients(db) == [("a", 200, None), ("a", 200, "203.0.113.7")]
    assert {s.key: s.requests for s in summarise(db, by="client")} == {"(unknown)": 1, "203.0.113.7": 1}


def test_monitor_groups_by_client_address(tmp_path, capsys):
    # a keyless server logs every request under one name: per key, a flood from one address hides in everyone's
    # traffic; per address it stands out
    import json
    import time

    from augury.serve.monitor import monitor
    from augury.serve.requestlog import RequestLog, RequestRecord

    log = RequestLog(tmp_path / "r.db")
    now = time.time()
    for i in range(20):
        log.write(RequestRecord("/v1/completions", 200, 5.0, key="(local)", client=f"198.51.100.{i % 4}",
                                ts=now - 3000 + i * 120))
    for i in range(10):
        log.write(RequestRecord("/v1/completions", 200, 5.0, key="(local)", client="203.0.113.7", ts=now - 60 + i,
                                flagged=True))
    log.close()
    by_key = {s.key: s for s in monitor(str(tmp_path / "r.db"))}
    assert list(by_key) == ["(local)"]
    capsys.readouterr()
    by_client = {s.key: s for s in monitor(str(tmp_path / "r.db"), by="client")}
    assert len(by_client) == 5 and by_client["203.0.113.7"].flag_rate == 1.0
    assert [a for a, s in by_client.items() if s.over] == ["203.0.113.7"]
    table = capsys.readouterr().out
    assert table.startswith("client") and "5 clients; over a threshold: 203.0.113.7" in table
    monitor(str(tmp_path / "r.db"), by="client", json_out=True)
    assert {row["client"] for row in json.loads(capsys.readouterr().out)} == set(by_client)
    with pytest.raises(UsageError, match="--by"):
        monitor(str(tmp_path / "r.db"), by="address")
