"""Slow clients (slowloris): headers or a body sent a byte at a time, or a body that never ends, get 408 and
their connection closed, while the server goes on answering everyone else."""

from __future__ import annotations

import socket
import sqlite3
import threading
import time

HEADERS = b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"


def _trickle(port: int, first: bytes, rest: bytes, every_s: float, answers: dict, name: str) -> None:
    """Send `first` at once, then `rest` a byte every `every_s` (stopping when the server closes); keep the reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        started = time.perf_counter()
        try:
            sock.sendall(first)
            for b in rest:
                time.sleep(every_s)
                sock.sendall(bytes([b]))
        except OSError:
            pass  # the server closed the connection on us
        reply = b""
        try:
            while chunk := sock.recv(65536):
                reply += chunk
        except OSError:
            pass
        answers[name] = (reply, time.perf_counter() - started)


def test_slow_clients_get_408_while_others_are_served(make_client, tiny_run, tmp_path, serving):
    import httpx

    from augury.serve.protocol import header_timeout_protocol

    client, cfg = make_client(tiny_run, tmp_path, header_timeout_s=1.0, body_timeout_s=1.0)
    body = b'{"prompt": "def add(a, b):", "max_tokens": 4}'
    answers: dict = {}
    with serving(client.app, http=header_timeout_protocol(cfg.header_timeout_s)) as port:
        slow = {
            # the request line and headers a byte at a time, never finished within the deadline
            "headers": (b"P", HEADERS[1:] + b"Content-Length: 40\r\n\r\n", 0.1),
            # a whole header block, then the body a byte at a time (it would take ~5 s)
            "body": (HEADERS + b"Content-Length: %d\r\n\r\n" % len(body), body, 0.1),
            # a body that stops: 10 of the 100 bytes promised, then nothing
            "stalled": (HEADERS + b"Content-Length: 100\r\n\r\n" + body[:10], b"", 0.0),
            # connected, and never a byte
            "silent": (b"", b"", 0.0),
        }
        threads = [threading.Thread(target=_trickle, args=(port, first, rest, every, answers, name))
                   for name, (first, rest, every) in slow.items()]
        for t in threads:
            t.start()
        served = []
        with httpx.Client(base_url=f"http://127.0.0.1:{port}/v1", timeout=10) as http:
            deadline = time.perf_counter() + 1.0
            while time.perf_counter() < deadline:  # the others are served while the slow ones hang on
                served.append(http.post("/completions", content=body).status_code)
                time.sleep(0.05)
        for t in threads:
            t.join(15)
    assert served and set(served) == {200}
    for name in slow:
        reply, seconds = answers[name]
        assert reply.startswith(b"HTTP/1.1 408"), (name, reply[:80])
        assert seconds < 5, name  # answered at the deadline, not when the client gave up
    con = sqlite3.connect(cfg.log)
    statuses = [s for (s,) in con.execute("SELECT status FROM requests ORDER BY id")]
    con.close()
    # the two whose headers arrived are requests, logged with their 408; the others never became requests
    assert statuses.count(408) == 2 and statuses.count(200) == len(served)
