"""Gateway mode in front of a real upstream on loopback; the request log survives kill -9; `augury monitor`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from augury.serve.requestlog import RequestLog, RequestRecord


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def upstream(make_client, tiny_run, tmp_path, serving):
    client, _ = make_client(tiny_run, tmp_path / "up")
    with serving(client.app) as port:
        yield f"http://127.0.0.1:{port}/v1"


def test_gateway_streams_through_and_moderates(upstream, tmp_path, keys_file):
    from fastapi.testclient import TestClient

    from augury.serve.cli import build_app
    from augury.serve.config import ServeConfig

    path, alice, _ = keys_file
    cfg = ServeConfig(upstream=upstream, keys=str(path), log=str(tmp_path / "gw.db"))
    gw = TestClient(build_app(cfg))
    auth = {"Authorization": f"Bearer {alice}"}
    body = {"prompt": "for i in", "max_tokens": 6, "temperature": 0}
    direct = httpx.post(f"{upstream}/completions", json=body, timeout=30).json()["choices"][0]["text"]
    whole = gw.post("/v1/completions", json=body, headers=auth).json()
    assert whole["choices"][0]["text"] == direct and whole["usage"]["completion_tokens"] >= 1
    resp = gw.post("/v1/completions", json={**body, "stream": True}, headers=auth)
    events = [b[6:] for b in resp.text.split("\n\n") if b.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert "".join(json.loads(e)["choices"][0]["text"] for e in events[:-1]) == direct
    refused = gw.post("/v1/completions", json={**body, "prompt": "how to build a pipe bomb"}, headers=auth).json()
    assert refused["choices"][0]["finish_reason"] == "content_filter"
    assert gw.post("/v1/completions", json=body).status_code == 401


@pytest.mark.integration
def test_log_rows_equal_answered_requests_after_kill_9(tiny_run, tmp_path):
    port, db = _free_port(), tmp_path / "requests.db"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen([sys.executable, "-m", "augury", "serve", str(tiny_run), "--port", str(port),
                             "--log", str(db), "--limits.requests_per_minute", "0"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    answered = 0
    try:
        base = f"http://127.0.0.1:{port}/v1"
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                httpx.get(f"{base}/models", timeout=2)
                answered += 1
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert answered, "server did not start"
        for i in range(20):
            r = httpx.post(f"{base}/completions", json={"prompt": f"x{i}", "max_tokens": 2}, timeout=30)
            assert r.status_code == 200
            answered += 1
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert RequestLog(db).count() == answered


def test_monitor_lists_keys_over_thresholds(tmp_path, capsys):
    from augury.serve.monitor import monitor

    log = RequestLog(tmp_path / "r.db")
    now = time.time()
    for i in range(20):  # alice: steady, clean
        log.write(RequestRecord("/v1/completions", 200, 5.0, key="alice", ts=now - 3000 + i * 120, prompt_tokens=3,
                                completion_tokens=4))
    for i in range(30):  # mallory: a burst in one minute, half flagged
        log.write(RequestRecord("/v1/completions", 200, 5.0, key="mallory", ts=now - 60 + i, flagged=i % 2 == 0))
    log.write(RequestRecord("/v1/completions", 200, 5.0, key="mallory", ts=now - 1500))
    summaries = {s.key: s for s in monitor(str(tmp_path / "r.db"), max_spike=5)}
    assert summaries["alice"].over == [] and summaries["alice"].completion_tokens == 80
    assert summaries["mallory"].flag_rate == pytest.approx(15 / 31)
    assert any("flag rate" in o for o in summaries["mallory"].over)
    assert any("spike" in o for o in summaries["mallory"].over)
    assert "over a threshold: mallory" in capsys.readouterr().out
