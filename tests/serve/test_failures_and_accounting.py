"""A local model's server when things go wrong: a failed choice, a reply cut short (time limit, output filter,
a client that leaves), requests the model cannot serve. Every token made is counted, every request logged once."""

from __future__ import annotations

import json
import sqlite3
import threading
import time

import httpx

from augury.serve.limits import LimitsConfig


def _client(tiny_run, tmp_path, backend=None, moderator=None, **overrides):
    from fastapi.testclient import TestClient

    from augury.serve.app import create_app
    from augury.serve.backends import LocalBackend
    from augury.serve.config import ServeConfig
    from augury.serve.requestlog import RequestLog

    limits = overrides.pop("limits", LimitsConfig(requests_per_minute=600, burst=100))
    cfg = ServeConfig(model=str(tiny_run), log=str(tmp_path / "r.db"), limits=limits, **overrides)
    app = create_app(cfg, backend or LocalBackend.load(str(tiny_run)), None, RequestLog(cfg.log), moderator)
    return TestClient(app), cfg


def _rows(db) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT status, completion_tokens, refused, error FROM requests ORDER BY id").fetchall()


class FlagEverything:
    """A safety grader that flags every finished reply (it runs on the whole reply, after generation)."""

    def score(self, texts):
        return [{"violence/graphic": 1.0} for _ in texts]


def test_a_failed_choice_ends_the_request_with_500_and_frees_its_slots(tiny_run, tmp_path):
    from augury.serve.backends import LocalBackend

    backend = LocalBackend.load(str(tiny_run))
    real = backend.stream

    async def stream(job):
        if job.seed == 8:  # the second of n=2 choices seeded 7
            raise RuntimeError("worker lost")
        async for delta in real(job):
            yield delta

    backend.stream = stream
    client, cfg = _client(tiny_run, tmp_path, backend,
                          limits=LimitsConfig(requests_per_minute=600, burst=100, concurrent_requests=1))
    body = {"prompt": "a", "max_tokens": 4, "n": 2, "seed": 7}
    for _ in range(2):  # with one concurrent request allowed, a leaked slot would 429 the second
        resp = client.post("/v1/completions", json=body)
        assert resp.status_code == 500 and "worker lost" in resp.json()["error"]["message"]
    events = [b[6:] for b in client.post("/v1/completions", json={**body, "stream": True}).text.split("\n\n")
              if b.startswith("data: ")]
    assert "worker lost" in json.loads(events[-1])["error"]["message"]
    assert client.post("/v1/completions", json={**body, "seed": 1}).status_code == 200
    assert [r[0] for r in _rows(cfg.log)] == [500, 500, 500, 200]


def test_requests_the_model_cannot_serve_are_400_naming_the_field(tiny_run, tmp_path):
    client, _ = _client(tiny_run, tmp_path)
    cases = {"seed": {"prompt": "a", "seed": 2**64},
             "context": {"prompt": [5] * 256, "max_tokens": 1},  # the tiny run's context is 256 tokens
             "stream": {"prompt": "a", "echo": True, "max_tokens": 2, "stream": True}}
    for word, body in cases.items():
        resp = client.post("/v1/completions", json=body)
        assert resp.status_code == 400 and word in resp.json()["error"]["message"], word
    assert client.post("/v1/completions", json={"prompt": [5] * 255, "max_tokens": 1}).status_code == 200


def test_a_whole_reply_the_grader_flags_is_the_refusal_and_its_tokens_are_counted(tiny_run, tmp_path):
    from augury.serve.moderation import ModerationPolicy, Moderator

    policy = ModerationPolicy(refuse_output=["violence/graphic"])
    client, cfg = _client(tiny_run, tmp_path, moderator=Moderator(policy, FlagEverything()))
    body = {"prompt": "a", "max_tokens": 8, "temperature": 0, "logprobs": 1}
    out = client.post("/v1/completions", json=body).json()
    choice = out["choices"][0]
    assert (choice["text"], choice["finish_reason"]) == (policy.refusal, "content_filter")
    assert choice["logprobs"]["tokens"] == []  # nothing of the flagged reply, not even its tokens
    assert out["usage"]["completion_tokens"] >= 1  # made, so counted, though not sent
    assert _rows(cfg.log) == [(200, out["usage"]["completion_tokens"], 1, None)]


def test_a_reply_cut_by_the_time_limit_counts_its_tokens(tiny_run, tmp_path, monkeypatch):
    # a tenth of a second a token: the reply begins well within the limit (also on a loaded machine) and is cut
    # there, long before 50 tokens
    client, cfg = _client(tiny_run, tmp_path, backend=_slow_backend(tiny_run, monkeypatch), request_timeout_s=2.5)
    out = client.post("/v1/completions", json={"prompt": "a", "max_tokens": 50, "temperature": 0}).json()
    assert out["choices"][0]["finish_reason"] == "length" and 1 <= out["usage"]["completion_tokens"] < 50
    assert _rows(cfg.log)[0][:2] == (200, out["usage"]["completion_tokens"])


class Stalled:
    """A local model whose replies wait 5 s before they begin (behind --max_batch others, say)."""

    def __init__(self, backend):
        self._backend, self.waited_out, self.closed = backend, False, False

    def __getattr__(self, name):
        return getattr(self._backend, name)

    async def stream(self, job):
        import asyncio

        try:
            await asyncio.sleep(5)
            self.waited_out = True
            async for delta in self._backend.stream(job):
                yield delta
        finally:
            self.closed = True


def _error_rows(db) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT status, completion_tokens FROM requests ORDER BY id").fetchall()


def test_a_reply_not_begun_within_the_time_limit_is_a_timeout_error_not_a_cut_reply(tiny_run, tmp_path):
    # a request that waits in the queue past --request_timeout_s was answered a one-token reply, finish_reason
    # "length", once it reached the model; it never began in time, so it is a 504 in the API's error shape, given
    # at the time limit, and its generation is not waited for
    from augury.serve.backends import LocalBackend

    stalled = Stalled(LocalBackend.load(str(tiny_run)))
    client, cfg = _client(tiny_run, tmp_path, backend=stalled, request_timeout_s=0.3)
    resp = client.post("/v1/completions", json={"prompt": "a", "max_tokens": 5})
    assert resp.status_code == 504, resp.text
    error = resp.json()["error"]
    assert "request_timeout_s" in error["message"] and error["type"] == "server_error"
    assert stalled.closed and not stalled.waited_out  # given up at the limit, not after the wait
    assert _error_rows(cfg.log) == [(504, 0)]

    client, cfg = _client(tiny_run, tmp_path / "now", request_timeout_s=1e-6)  # the model cannot answer in time
    for body in ({"prompt": "a", "max_tokens": 5}, {"prompt": ["a", "b"], "max_tokens": 5, "n": 2}):
        resp = client.post("/v1/completions", json=body)
        assert resp.status_code == 504 and "request_timeout_s" in resp.json()["error"]["message"]
    events = [e for e in client.post("/v1/completions", json={"prompt": "a", "max_tokens": 5, "stream": True})
              .text.split("\n\n") if e.startswith("data: ")]
    assert len(events) == 1 and "request_timeout_s" in json.loads(events[0][6:])["error"]["message"]
    assert [row[0] for row in _error_rows(cfg.log)] == [504, 504, 504]


def test_a_client_that_leaves_a_stream_is_logged_as_499_with_its_tokens(tiny_run, tmp_path, serving):
    client, cfg = _client(tiny_run, tmp_path, max_tokens_limit=200)
    body = {"prompt": "a", "max_tokens": 200, "temperature": 1.0, "seed": 3, "stream": True}
    with serving(client.app) as port:
        with httpx.stream("POST", f"http://127.0.0.1:{port}/v1/completions", json=body, timeout=30) as resp:
            for i, _ in enumerate(resp.iter_lines()):
                if i == 6:
                    break  # leave mid-stream
        deadline = time.time() + 20
        while not _rows(cfg.log) and time.time() < deadline:
            time.sleep(0.1)
    status, made, _, error = _rows(cfg.log)[0]
    assert status == 499 and "left" in error and made >= 1


def test_a_log_write_that_fails_gives_the_queue_slot_back(tiny_run, tmp_path):
    # the log is a file another process may hold locked, or a full disk: a failed write must not keep the request's
    # slot, or after --max_queued such streams every request is answered 503
    from fastapi.testclient import TestClient

    from augury.serve.app import create_app
    from augury.serve.backends import LocalBackend
    from augury.serve.config import ServeConfig
    from augury.serve.requestlog import RequestLog

    class FailingOnce(RequestLog):
        failed = False

        def write(self, rec):
            if not self.failed:
                self.failed = True
                raise sqlite3.OperationalError("database is locked")
            super().write(rec)

    cfg = ServeConfig(model=str(tiny_run), log=str(tmp_path / "r.db"), max_queued=1,
                      limits=LimitsConfig(requests_per_minute=600, burst=100))
    client = TestClient(create_app(cfg, LocalBackend.load(str(tiny_run)), None, FailingOnce(cfg.log)),
                        raise_server_exceptions=False)
    body = {"prompt": "a", "max_tokens": 2, "stream": True}
    client.post("/v1/completions", json=body)
    assert client.post("/v1/completions", json=body).status_code == 200
    assert client.post("/v1/completions", json={**body, "stream": False}).status_code == 200


def test_a_reply_cut_by_the_time_limit_is_still_checked_whole(tiny_run, tmp_path, monkeypatch):
    # the safety grader reads a reply once it is complete; a reply the time limit ends is complete there, so it is
    # read then (it was returned unread), and the piece that arrived last is kept. The limit leaves the first token
    # time on a loaded machine (a reply not begun by then is a 504) and 100 slow tokens cannot finish within it
    from augury.serve.moderation import ModerationPolicy, Moderator

    policy = ModerationPolicy(refuse_output=["violence/graphic"])
    flagged, _ = _client(tiny_run, tmp_path, backend=_slow_backend(tiny_run, monkeypatch),
                         moderator=Moderator(policy, extra=FlagEverything()), request_timeout_s=2.5)
    choice = flagged.post("/v1/completions", json={"prompt": "a", "max_tokens": 100, "temperature": 0}).json()
    assert (choice["choices"][0]["text"], choice["choices"][0]["finish_reason"]) == (policy.refusal, "content_filter")
    plain, _ = _client(tiny_run, tmp_path / "plain", backend=_slow_backend(tiny_run, monkeypatch),
                       request_timeout_s=2.5)
    body = {"prompt": "a", "max_tokens": 100, "temperature": 0, "logprobs": 0}
    out = plain.post("/v1/completions", json=body).json()
    assert out["choices"][0]["finish_reason"] == "length" and out["usage"]["completion_tokens"] < 100
    assert len(out["choices"][0]["logprobs"]["tokens"]) == out["usage"]["completion_tokens"]  # none dropped


class Slow:
    """The run's model, a tenth of a second a forward pass (a large model on a busy device)."""

    def __init__(self, model):
        self._model = model

    def __getattr__(self, name):
        return getattr(self._model, name)

    def __call__(self, ids, **kw):
        time.sleep(0.1)
        return self._model(ids, **kw)


def _slow_backend(tiny_run, monkeypatch):
    """The run served with `Slow`'s model."""
    import augury.model.run
    from augury.serve.backends import LocalBackend

    load_run = augury.model.run.load_run
    monkeypatch.setattr(augury.model.run, "load_run",
                        lambda *a, **kw: (lambda m, t, c: (Slow(m), t, c))(*load_run(*a, **kw)))
    return LocalBackend.load(str(tiny_run))


def test_a_client_that_gives_up_on_a_whole_reply_stops_its_generation(tiny_run, tmp_path, serving, monkeypatch):
    # a client's timeout (the OpenAI client retries twice after it): the reply it will never read must not go on
    # to max_tokens holding its slot and charging its key
    client, cfg = _client(tiny_run, tmp_path, backend=_slow_backend(tiny_run, monkeypatch), max_tokens_limit=400)
    body = {"prompt": "a", "max_tokens": 400, "temperature": 1.0}  # 40 s of generation
    with serving(client.app) as port:
        try:
            httpx.post(f"http://127.0.0.1:{port}/v1/completions", json=body, timeout=1.0)
        except httpx.TimeoutException:
            pass
        deadline = time.time() + 20
        while not _rows(cfg.log) and time.time() < deadline:
            time.sleep(0.1)
        state = client.app.state.limiter._state["(local)"]
    status, made, _, error = _rows(cfg.log)[0]
    assert status == 499 and "left" in error and 1 <= made < 400
    assert (state.in_flight, state.held, state.used_today) == (0, 0, 1 + made)


def test_a_reply_held_back_as_a_possible_stop_string_is_cut_at_the_time_limit_with_its_text(
        tiny_run, tmp_path, monkeypatch):
    # text that could still grow into a stop string is held back; a reply whose every token so far was held back
    # had begun (it has tokens) but sent nothing, and was answered 504 at the time limit as if it had not begun.
    # It ends there like any reply cut by the limit, and the text held back (not a stop string) is sent
    plain, _ = _client(tiny_run, tmp_path / "plain")
    greedy = {"prompt": "a", "max_tokens": 40, "temperature": 0}
    whole = plain.post("/v1/completions", json=greedy).json()["choices"][0]["text"]
    assert whole
    stop = whole + "\u2603"  # the reply is the start of it for 40 tokens: all of it is held back
    client, cfg = _client(tiny_run, tmp_path, backend=_slow_backend(tiny_run, monkeypatch), request_timeout_s=2.5)
    resp = client.post("/v1/completions", json={**greedy, "stop": stop})
    assert resp.status_code == 200, resp.text
    out = resp.json()
    text, finish = out["choices"][0]["text"], out["choices"][0]["finish_reason"]
    assert finish == "length" and 1 <= out["usage"]["completion_tokens"] < 40
    assert text and whole.startswith(text)  # what was held back, released at the end
    streamed = client.post("/v1/completions", json={**greedy, "stop": stop, "stream": True}).text
    events = [json.loads(e[6:]) for e in streamed.split("\n\n") if e.startswith("data: {")]
    assert events[-1]["choices"][0]["finish_reason"] == "length"
    sent = "".join(e["choices"][0]["text"] for e in events)
    assert sent and whole.startswith(sent)
    assert [r[0] for r in _rows(cfg.log)] == [200, 200]


class Stuck:
    """The run's model, whose forward passes after the first `free` hang (a stuck worker, a step that takes minutes)
    until `release` is set, or 10 s; `waited_out` when one hung that long."""

    def __init__(self, model, free: int):
        self._model, self.free = model, free
        self.hang()

    def hang(self) -> None:
        """Hang again after `free` passes from now."""
        self.passes, self.release, self.waited_out = 0, threading.Event(), False

    def __getattr__(self, name):
        return getattr(self._model, name)

    def __call__(self, ids, **kw):
        self.passes += 1
        release = self.release
        if self.passes > self.free and not release.is_set():
            self.waited_out = not release.wait(10)
        return self._model(ids, **kw)


def test_a_reply_whose_generation_hangs_is_cut_at_the_time_limit(tiny_run, tmp_path, monkeypatch):
    # the next token was waited for without a limit and the time limit checked only when it came: a step that hangs
    # held the reply (and its slot) past --request_timeout_s. The wait ends at the limit: the reply is cut there
    # with the text it has (also what was held back as the start of a stop string), and its job is dropped
    import augury.model.run
    from augury.serve.backends import LocalBackend

    plain, _ = _client(tiny_run, tmp_path / "plain")
    greedy = {"prompt": "a", "max_tokens": 100, "temperature": 0}
    whole = plain.post("/v1/completions", json=greedy).json()["choices"][0]["text"]
    assert whole
    load_run, made = augury.model.run.load_run, []
    monkeypatch.setattr(augury.model.run, "load_run", lambda *a, **kw: (
        lambda m, t, c: (made.append(Stuck(m, free=3)) or made[-1], t, c))(*load_run(*a, **kw)))
    client, cfg = _client(tiny_run, tmp_path, backend=LocalBackend.load(str(tiny_run), max_batch=1),
                          request_timeout_s=2.5)
    stuck = made[0]
    try:
        out = client.post("/v1/completions", json=greedy).json()
        assert not stuck.waited_out  # answered at the limit, while the step still hangs
        choice, tokens = out["choices"][0], out["usage"]["completion_tokens"]
        assert choice["finish_reason"] == "length" and 1 <= tokens < 100
        assert choice["text"] and whole.startswith(choice["text"])
        stuck.release.set()
        stuck.hang()
        body = {**greedy, "stop": whole + "\u2603", "stream": True}  # all of its text is held back
        streamed = client.post("/v1/completions", json=body).text
        assert not stuck.waited_out
        events = [json.loads(e[6:]) for e in streamed.split("\n\n") if e.startswith("data: {")]
        assert events[-1]["choices"][0]["finish_reason"] == "length" and streamed.endswith("data: [DONE]\n\n")
        sent = "".join(e["choices"][0]["text"] for e in events)
        assert sent and whole.startswith(sent)
    finally:
        stuck.release.set()
    # the job was dropped, so its slot is free: with one row batched, a job still running would make its ~100
    # tokens before the next request's
    stuck.free = 10**6
    before = stuck.passes
    assert client.post("/v1/completions", json={**greedy, "max_tokens": 2}).status_code == 200
    assert stuck.passes - before < 10
    rows = _rows(cfg.log)
    assert rows[0] == (200, tokens, 0, None) and rows[1][0] == 200 and rows[1][1] >= 1 and rows[1][3] is None
