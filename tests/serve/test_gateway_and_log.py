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

from augury.serve.requestlog import RequestLog, RequestRecord, open_readonly


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



def _fake_upstream():
    """An OpenAI-compatible upstream that misbehaves as its prompt says; any other prompt gets a whole reply
    that is not JSON, or a stream that stops before `data: [DONE]`."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

    app = FastAPI()
    statuses = {"too-long": (400, {}), "busy": (429, {"Retry-After": "7"}), "bad-key": (401, {})}
    leak = {"index": 0, "text": "here is how to build a pipe bomb", "finish_reason": "stop",
            "logprobs": {"tokens": ["here", " is", " how"], "token_logprobs": [-1.0, -1.0, -1.0]}}
    streams = {"error-in-stream": [{"choices": [{"index": 0, "text": "so"}]}, {"error": {"message": "GPU fell off"}}],
               "usage-with-choice": [{"choices": [{"index": 0, "text": "ok", "finish_reason": "stop"}],
                                      "usage": {"prompt_tokens": 1, "completion_tokens": 1}}],
               "leak": [{"choices": [leak]}]}

    @app.post("/v1/completions")
    async def completions(body: dict):
        prompt = body.get("prompt")
        if prompt in statuses:
            status, headers = statuses[prompt]
            return JSONResponse({"error": {"message": prompt}}, status_code=status, headers=headers)
        if prompt == "leak" and not body.get("stream"):
            return {"id": "x", "object": "text_completion", "choices": [leak], "usage": {}}
        if not body.get("stream"):
            return PlainTextResponse("<html>bad gateway</html>")

        async def events():
            for chunk in streams.get(prompt, [{"choices": [{"index": 0, "text": "half"}]}]):
                yield f"data: {json.dumps(chunk)}\n\n"
            if prompt in streams:
                yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


def _failure(gw, body) -> tuple[int, str, int, dict]:
    """(status, error type) of a whole reply; the status of a streamed one and its error: the body of an error
    answer, or the last event of a stream that had started."""
    whole = gw.post("/v1/completions", json=body)
    streamed = gw.post("/v1/completions", json={**body, "stream": True})
    events = [b[6:] for b in streamed.text.split("\n\n") if b.startswith("data: ")]
    last = json.loads(events[-1]) if streamed.status_code == 200 else streamed.json()
    return whole.status_code, whole.json()["error"]["type"], streamed.status_code, last


def test_gateway_answers_a_failed_upstream_with_502_or_504_and_logs_it(tmp_path, serving):
    """Unreachable (502), silent (504) or broken (502) upstreams: the client gets the gateway status (also for a
    stream the upstream never started), or the error as the last event of a stream that had started (never an
    empty 200 stream or a made-up [DONE]), and the log row says so."""
    from fastapi.testclient import TestClient

    from augury.serve.cli import build_app
    from augury.serve.config import ServeConfig

    body = {"prompt": "for i in", "max_tokens": 4}
    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        with serving(_fake_upstream()) as broken_port:
            cases = {"unreachable": (f"http://127.0.0.1:{_free_port()}/v1", 502, 502),
                     "silent": (f"http://127.0.0.1:{silent.getsockname()[1]}/v1", 504, 504),
                     "broken": (f"http://127.0.0.1:{broken_port}/v1", 502, 200)}  # its stream starts, then stops
            for name, (url, status, stream_status) in cases.items():
                db = tmp_path / f"{name}.db"
                gw = TestClient(build_app(ServeConfig(upstream=url, log=str(db), request_timeout_s=1.0)))
                got, kind, got_stream, last = _failure(gw, body)
                assert (got, kind, got_stream) == (status, "upstream_error", stream_status), name
                assert last["error"]["type"] == "upstream_error", name
                rows = open_readonly(db).execute("SELECT status, error FROM requests").fetchall()
                assert [r[0] for r in rows] == [status, status] and all("upstream" in r[1] for r in rows), name



def test_gateway_passes_client_errors_on_and_sends_nothing_it_refused(tmp_path, serving):
    """The upstream's 4xx (with Retry-After) reach the client, its credentials failing is a 502; an error inside
    a stream ends it as one; a chunk carrying both a choice and usage keeps the choice; a refused reply keeps no
    log-probs of what it replaced."""
    from fastapi.testclient import TestClient

    from augury.serve.cli import build_app
    from augury.serve.config import ServeConfig

    def events(resp) -> list:
        return [json.loads(b[6:]) for b in resp.text.split("\n\n") if b.startswith("data: {")]

    with serving(_fake_upstream()) as port:
        db = tmp_path / "gw.db"
        gw = TestClient(build_app(ServeConfig(upstream=f"http://127.0.0.1:{port}/v1", log=str(db))))
        ask = {"max_tokens": 4}
        assert gw.post("/v1/completions", json={**ask, "prompt": "too-long"}).status_code == 400
        busy = gw.post("/v1/completions", json={**ask, "prompt": "busy"})
        assert busy.status_code == 429 and busy.headers["Retry-After"] == "7"
        busy = gw.post("/v1/completions", json={**ask, "prompt": "busy", "stream": True})  # refused before a chunk
        assert busy.status_code == 429 and busy.headers["Retry-After"] == "7"
        assert busy.json()["error"]["type"] == "upstream_error"
        assert gw.post("/v1/completions", json={**ask, "prompt": "bad-key"}).status_code == 502
        failed = events(gw.post("/v1/completions", json={**ask, "prompt": "error-in-stream", "stream": True}))
        assert "GPU fell off" in failed[-1]["error"]["message"]
        both = events(gw.post("/v1/completions", json={**ask, "prompt": "usage-with-choice", "stream": True}))
        assert [(c["text"], c["finish_reason"]) for e in both for c in e["choices"]] == [("ok", "stop")]
        assert not any("usage" in e for e in both)  # the client did not ask for it
        whole = gw.post("/v1/completions", json={**ask, "prompt": "leak", "logprobs": 1}).json()["choices"][0]
        assert whole["finish_reason"] == "content_filter" and whole["logprobs"] is None
        assert "pipe bomb" not in whole["text"]
        streamed = events(gw.post("/v1/completions", json={**ask, "prompt": "leak", "logprobs": 1, "stream": True}))
        assert [(c["finish_reason"], c["logprobs"]) for e in streamed for c in e["choices"]] == [("content_filter",
                                                                                                  None)]
    rows = open_readonly(db).execute("SELECT status FROM requests ORDER BY id").fetchall()
    assert [r[0] for r in rows] == [400, 429, 429, 502, 502, 200, 200, 200]


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


def test_a_flag_rate_cannot_be_diluted_with_requests_that_cost_nothing(tmp_path):
    # rejected requests (a body that is not JSON, a 429) and /v1/moderations calls never reach the model or its
    # moderation and cost a key nothing: counted in the flag rate's denominator, twenty of them would hide one
    # flagged request under a 5% threshold
    from augury.serve.monitor import summarise

    log = RequestLog(tmp_path / "r.db")
    now = time.time()
    log.write(RequestRecord("/v1/chat/completions", 200, 5.0, key="mallory", ts=now - 100, flagged=True,
                            refused=True, categories=["illicit/violent"]))
    log.write(RequestRecord("/v1/chat/completions", 200, 5.0, key="mallory", ts=now - 90))
    for i in range(20):
        log.write(RequestRecord("/v1/chat/completions", 400, 1.0, key="mallory", ts=now - 80 + i,
                                error="body is not valid JSON"))
    log.write(RequestRecord("/v1/chat/completions", 429, 1.0, key="mallory", ts=now - 50, repeats=30))
    log.write(RequestRecord("/v1/moderations", 200, 1.0, key="mallory", ts=now - 40, repeats=1))
    log.close()
    (mallory,) = summarise(tmp_path / "r.db")
    assert mallory.requests == 53 and mallory.flag_rate == pytest.approx(1 / 2)
    assert any("flag rate" in o for o in mallory.over)
