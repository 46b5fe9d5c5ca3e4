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
