"""What gateway mode sends upstream and what it lets back: the server's limits hold for every field an upstream
reads, and every text of a reply passes the output check."""

from __future__ import annotations

from augury.serve.limits import LimitsConfig


def _echo_upstream(seen: list):
    """An upstream whose chat reply is the body it was sent (as JSON), with the usage it was asked for."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(body: dict):
        seen.append(body)
        return {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}

    @app.post("/v1/completions")
    async def completions(body: dict):
        seen.append(body)
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        return {"id": "x", "object": "text_completion", "created": 0, "model": "m",
                "choices": [{"index": i, "text": "ok", "finish_reason": "stop"} for i in range(len(prompts))],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}

    return app


def _gateway(port, tmp_path, **overrides):
    from fastapi.testclient import TestClient

    from augury.serve.cli import build_app
    from augury.serve.config import ServeConfig

    limits = overrides.pop("limits", LimitsConfig(requests_per_minute=600, burst=100))
    cfg = ServeConfig(upstream=f"http://127.0.0.1:{port}/v1", log=str(tmp_path / "gw.db"), limits=limits,
                      **overrides)
    return TestClient(build_app(cfg))


def test_max_completion_tokens_cannot_carry_past_the_servers_limit(tmp_path, serving):
    # an upstream such as vLLM reads max_completion_tokens before max_tokens: a client that sends a small
    # max_tokens beside a huge max_completion_tokens must not get the huge one generated
    seen: list = []
    with serving(_echo_upstream(seen)) as port:
        gw = _gateway(port, tmp_path, max_tokens_limit=64)
        chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "max_completion_tokens": 100000}
        resp = gw.post("/v1/chat/completions", json=chat)
        assert resp.status_code == 400 and "max_completion_tokens" in resp.json()["error"]["message"]
        assert gw.post("/v1/chat/completions", json={**chat, "max_completion_tokens": 9}).status_code == 200
    assert [(b.get("max_tokens"), b.get("max_completion_tokens")) for b in seen] == [(5, 5)]


def test_each_prompt_of_a_completions_list_counts_against_the_budget(tmp_path, serving):
    seen: list = []
    with serving(_echo_upstream(seen)) as port:
        gw = _gateway(port, tmp_path, limits=LimitsConfig(requests_per_minute=600, burst=100, tokens_per_day=100))
        four = gw.post("/v1/completions", json={"prompt": ["a", "b", "c", "d"], "max_tokens": 30})
        assert four.status_code == 429 and "budget" in four.json()["error"]["message"]  # 4 x 30 tokens may come
        assert gw.post("/v1/completions", json={"prompt": ["a", "b"], "max_tokens": 30}).status_code == 200
    assert len(seen) == 1
