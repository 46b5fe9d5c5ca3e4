"""`augury serve` over HTTP: the OpenAI shapes, streaming, the gate's status codes, moderation and the log."""

from __future__ import annotations

import json
import sqlite3

import pytest

from augury.serve.limits import LimitsConfig


def _events(resp) -> list:
    out = []
    for block in resp.text.split("\n\n"):
        if block.startswith("data: "):
            data = block[6:]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def _rows(db) -> list[tuple]:
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT key, endpoint, status, prompt_tokens, completion_tokens, flagged, refused "
                           "FROM requests ORDER BY id").fetchall()
    finally:
        con.close()


def test_completion_counts_tokens_and_is_reproducible_with_a_seed(make_client, tiny_run, tmp_path):
    client, _ = make_client(tiny_run, tmp_path)
    body = {"prompt": "def add(a, b):", "max_tokens": 8, "temperature": 1.0, "seed": 3}
    a = client.post("/v1/completions", json=body).json()
    b = client.post("/v1/completions", json=body).json()
    assert a["object"] == "text_completion" and a["choices"][0]["text"] == b["choices"][0]["text"]
    usage = a["usage"]
    assert usage["completion_tokens"] <= 8
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert a["choices"][0]["finish_reason"] in ("stop", "length")
    models = client.get("/v1/models").json()
    assert models["data"][0]["id"] == "run"


def test_stream_is_server_sent_events_ending_in_done_with_usage(make_client, tiny_run, tmp_path):
    client, _ = make_client(tiny_run, tmp_path)
    body = {"prompt": "for i in", "max_tokens": 6, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    resp = client.post("/v1/completions", json=body)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
    events = _events(resp)
    assert events[-1] == "[DONE]"
    assert events[-2]["usage"]["completion_tokens"] >= 1 and events[-2]["choices"] == []
    streamed = "".join(e["choices"][0]["text"] for e in events[:-2])
    whole = client.post("/v1/completions", json={**body, "stream": False}).json()["choices"][0]["text"]
    assert streamed == whole  # greedy: the stream carries exactly the whole reply


def test_echo_logprobs_equal_direct_scoring(make_client, tiny_run, tmp_path):
    import torch

    from augury.model.run import load_run

    client, _ = make_client(tiny_run, tmp_path)
    text = "def add(a, b):\n    return a + b"
    out = client.post("/v1/completions", json={"prompt": text, "max_tokens": 0, "echo": True, "logprobs": 1}).json()
    lp = out["choices"][0]["logprobs"]
    assert out["choices"][0]["text"] == text and lp["token_logprobs"][0] is None
    model, tok, _ = load_run(tiny_run)
    ids = tok.encode(text).ids
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids]))[0].float(), -1)
    direct = [float(logp[i - 1, ids[i]]) for i in range(1, len(ids))]
    assert lp["token_logprobs"][1:] == pytest.approx(direct, abs=1e-5)
    assert "".join(lp["tokens"]) == text and all(len(t) == 1 for t in lp["top_logprobs"][1:])
    # the top alternative is the most likely token at each position, with its log-probability
    assert [max(t.values()) for t in lp["top_logprobs"][1:]] == pytest.approx(logp[:-1].max(-1).values.tolist(),
                                                                               abs=1e-5)


def test_token_id_prompts_score_like_text_and_each_gets_its_choices(make_client, tiny_run, tmp_path):
    """lm-eval's local-completions sends token ids (a list of id lists) with echo, logprobs 1, max_tokens 1."""
    client, _ = make_client(tiny_run, tmp_path)
    texts = ["def add(a, b):", "for i in range(3):"]
    by_text = [client.post("/v1/completions", json={"prompt": t, "max_tokens": 1, "echo": True, "logprobs": 1,
                                                    "temperature": 0}).json()["choices"][0] for t in texts]
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tiny_run / "tokenizer.json"))
    ids = [tok.encode(t).ids for t in texts]
    out = client.post("/v1/completions", json={"prompt": ids, "max_tokens": 1, "echo": True, "logprobs": 1,
                                               "temperature": 0}).json()
    assert [c["index"] for c in out["choices"]] == [0, 1]
    for got, want, t in zip(out["choices"], by_text, texts):
        assert got["text"] == want["text"] and got["text"].startswith(t)
        assert got["logprobs"]["token_logprobs"] == pytest.approx(want["logprobs"]["token_logprobs"], abs=1e-5)
        assert len(got["logprobs"]["tokens"]) == len(tok.encode(t).ids) + 1  # the prompt and one new token
    assert out["usage"]["prompt_tokens"] == sum(len(i) for i in ids)
    too_big = client.post("/v1/completions", json={"prompt": [10**6], "max_tokens": 1})
    assert too_big.status_code == 400 and "vocabulary" in too_big.json()["error"]["message"]


def test_role_token_text_in_a_prompt_stays_text(make_client, tiny_run, tmp_path):
    client, _ = make_client(tiny_run, tmp_path)
    text = "<|assistant|><|endoftext|>"
    out = client.post("/v1/completions", json={"prompt": text, "max_tokens": 0, "echo": True, "logprobs": 0}).json()
    assert "".join(out["choices"][0]["logprobs"]["tokens"]) == text
    assert out["usage"]["prompt_tokens"] > 2  # spelled out, not the two special ids


def test_hostile_requests_get_the_right_status_and_the_server_keeps_serving(make_client, tiny_run, tmp_path, keys_file):
    path, alice, _ = keys_file
    client, cfg = make_client(tiny_run, tmp_path, keys_path=path, max_body_bytes=4096, max_tokens_limit=64,
                              limits=LimitsConfig(requests_per_minute=60, burst=5, concurrent_requests=2))
    auth = {"Authorization": f"Bearer {alice}"}
    ok = {"prompt": "x", "max_tokens": 2}
    assert client.post("/v1/completions", json=ok).status_code == 401
    wrong = {"Authorization": "Bearer sk-augury-nope"}
    assert client.post("/v1/completions", json=ok, headers=wrong).status_code == 401
    assert client.post("/v1/completions", content=b"{" * 10_000, headers=auth).status_code == 413
    assert client.post("/v1/completions", content=b"{not json", headers=auth).status_code == 400
    for absurd in ({"prompt": "x", "max_tokens": 10**9}, {"prompt": "x", "temperature": -1},
                   {"prompt": "x", "n": 1000}, {"prompt": 5}, {"prompt": "x", "stop": [""]}, [1, 2]):
        resp = client.post("/v1/completions", json=absurd, headers=auth)
        assert resp.status_code == 400 and resp.json()["error"]["message"]
    codes = [client.post("/v1/completions", json=ok, headers=auth).status_code for _ in range(8)]
    assert 429 in codes
    limited = client.post("/v1/completions", json=ok, headers=auth)
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert client.get("/v1/models", headers=auth).status_code == 200  # still serving
    rows = _rows(cfg.log)
    assert len(rows) == 2 + 1 + 1 + 6 + 8 + 1 + 1  # every answered request is one row
    assert rows[0][0] is None and rows[0][2] == 401


def test_flagged_input_gets_the_policy_refusal_and_is_logged(make_client, tiny_run, tmp_path):
    client, cfg = make_client(tiny_run, tmp_path)
    out = client.post("/v1/completions", json={"prompt": "how to build a pipe bomb", "max_tokens": 4}).json()
    assert out["choices"][0]["text"] == "I'm sorry, but I can't help with that."
    assert out["choices"][0]["finish_reason"] == "content_filter"
    mod = client.post("/v1/moderations", json={"input": ["how to build a pipe bomb", "hello"]}).json()
    assert [r["flagged"] for r in mod["results"]] == [True, False]
    assert mod["results"][0]["categories"]["illicit/violent"]
    rows = _rows(cfg.log)
    assert rows[0][5:] == (1, 1) and rows[1][5] == 1


def test_moderations_take_openais_list_of_text_and_image_parts(make_client, tiny_run, tmp_path):
    # OpenAI's API takes a list of typed parts as one input (one result); its text is read as one text, and an
    # image is never said to be read by a policy of text rules
    client, cfg = make_client(tiny_run, tmp_path)
    image = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    parts = [{"type": "text", "text": "how to build a pipe"}, {"type": "text", "text": " bomb"}, image]
    out = client.post("/v1/moderations", json={"input": parts})
    assert out.status_code == 200, out.text
    (result,) = out.json()["results"]
    assert result["flagged"] and result["categories"]["illicit/violent"]
    assert all(t == ["text"] for t in result["category_applied_input_types"].values())
    calm = client.post("/v1/moderations", json={"input": [{"type": "text", "text": "hello"}, image]}).json()
    assert [r["flagged"] for r in calm["results"]] == [False]
    strings = client.post("/v1/moderations", json={"input": ["hello", "hi"]}).json()["results"]
    assert len(strings) == 2 and all(t == ["text"] for r in strings for t in r["category_applied_input_types"].values())
    only = client.post("/v1/moderations", json={"input": [image]})
    assert only.status_code == 400 and "image" in only.json()["error"]["message"]
    for bad in ([{"type": "input_audio"}], ["hello", {"type": "text", "text": "x"}], [{"type": "text"}],
                [{"type": "image_url", "image_url": "x"}], [], 5, [5], [None]):
        resp = client.post("/v1/moderations", json={"input": bad})
        assert resp.status_code == 400 and resp.json()["error"]["message"].startswith("input"), bad
    assert [r[2] for r in _rows(cfg.log)][:3] == [200, 200, 200]


def test_output_moderation_ends_a_stream_with_content_filter(tiny_run, tmp_path):
    from augury.serve.app import create_app
    from augury.serve.backends import LocalBackend
    from augury.serve.config import ServeConfig
    from augury.serve.moderation import ModerationPolicy, Moderator
    from augury.serve.requestlog import RequestLog

    class FlagEverything:
        def score(self, texts):
            return [{"violence/graphic": 1.0} for _ in texts]

    policy = ModerationPolicy(refuse_output=["violence/graphic"])
    cfg = ServeConfig(model=str(tiny_run), log=str(tmp_path / "r.db"))
    from fastapi.testclient import TestClient

    app = create_app(cfg, LocalBackend.load(str(tiny_run)), None, RequestLog(cfg.log),
                     Moderator(policy, FlagEverything()))
    resp = TestClient(app).post("/v1/completions", json={"prompt": "a", "max_tokens": 8, "temperature": 0,
                                                         "stream": True})
    events = _events(resp)
    assert events[-1] == "[DONE]"
    assert events[-2]["choices"][0]["finish_reason"] == "content_filter"
    assert "".join(e["choices"][0]["text"] for e in events[:-1]) == ""  # nothing flagged was sent


def test_unknown_paths_and_methods_answer_in_the_api_error_shape_and_are_logged(make_client, tiny_run, tmp_path):
    client, cfg = make_client(tiny_run, tmp_path)
    for resp, status in ((client.post("/v1/embeddings", json={"input": "x"}), 404),
                         (client.get("/v1/chat/completions"), 405)):
        assert resp.status_code == status
        assert resp.json()["error"]["type"] == "invalid_request_error" and resp.json()["error"]["message"]
    assert [(r[1], r[2]) for r in _rows(cfg.log)] == [("/v1/embeddings", 404), ("/v1/chat/completions", 405)]


def test_chat_logprobs_are_returned_whole_and_streamed(make_client, chat_run, tmp_path):
    client, _ = make_client(chat_run, tmp_path)
    body = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 6, "temperature": 0, "logprobs": True}
    out = client.post("/v1/chat/completions", json=body).json()
    content = out["choices"][0]["logprobs"]["content"]
    assert len(content) == out["usage"]["completion_tokens"] >= 1
    assert all(c["logprob"] <= 0 and c["top_logprobs"] == [] and isinstance(c["token"], str) for c in content)
    events = _events(client.post("/v1/chat/completions", json={**body, "stream": True}))
    streamed = [c for e in events[:-1] for ch in e["choices"] if ch["logprobs"] for c in ch["logprobs"]["content"]]
    assert streamed == content  # greedy: the stream carries the same tokens
    assert client.post("/v1/chat/completions", json={**body, "logprobs": False}).json()["choices"][0][
        "logprobs"] is None
    top = client.post("/v1/chat/completions", json={**body, "top_logprobs": 2})
    assert top.status_code == 400 and "top_logprobs" in top.json()["error"]["message"]


def test_a_streamed_refusal_has_the_shape_of_any_stream(make_client, chat_run, tmp_path):
    client, _ = make_client(chat_run, tmp_path)
    body = {"messages": [{"role": "user", "content": "how to build a pipe bomb"}], "max_tokens": 4, "n": 2,
            "stream": True, "stream_options": {"include_usage": True}}
    events = _events(client.post("/v1/chat/completions", json=body))
    assert events[-1] == "[DONE]" and events[-2]["choices"] == [] and events[-2]["usage"]["prompt_tokens"] > 0
    for i in range(2):
        mine = [e["choices"][0] for e in events[:-2] if e["choices"][0]["index"] == i]
        assert mine[0]["delta"].get("role") == "assistant"  # the role comes first, as in a generated reply
        assert "".join(c["delta"].get("content", "") for c in mine) == "I'm sorry, but I can't help with that."
        assert mine[-1]["finish_reason"] == "content_filter"


def test_a_developer_message_is_read_as_the_system_message(make_client, chat_run, tmp_path):
    # OpenAI's name for the system role in newer clients and models
    client, _ = make_client(chat_run, tmp_path)
    body = {"max_tokens": 3, "temperature": 0, "logprobs": True}
    asked = [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "hello"}]
    out = client.post("/v1/chat/completions", json={**body, "messages": asked})
    assert out.status_code == 200, out.text
    system = client.post("/v1/chat/completions", json={**body, "messages": [{**asked[0], "role": "system"},
                                                                             asked[1]]}).json()
    assert out.json()["usage"] == system["usage"]
    assert out.json()["choices"][0]["logprobs"] == system["choices"][0]["logprobs"]


def test_one_model_can_be_retrieved_by_its_id(make_client, tiny_run, tmp_path):
    client, _ = make_client(tiny_run, tmp_path)
    assert client.get("/v1/models/run").json() == client.get("/v1/models").json()["data"][0]
    missing = client.get("/v1/models/gpt-4")
    assert missing.status_code == 404 and "gpt-4" in missing.json()["error"]["message"]


def test_max_tokens_defaults_as_openais(make_client, tiny_run, tmp_path):
    """A completion without max_tokens stops at 16 tokens, as OpenAI's and vLLM's do; a chat reply may run on."""
    client, _ = make_client(tiny_run, tmp_path)
    done = client.post("/v1/completions", json={"model": "m", "prompt": "def", "temperature": 0}).json()
    assert done["usage"]["completion_tokens"] <= 16
    assert done["choices"][0]["finish_reason"] == "length" or done["usage"]["completion_tokens"] < 16


def test_null_parameters_mean_their_defaults_as_in_openais_api(make_client, tiny_run, chat_run, tmp_path):
    # OpenAI's API marks these parameters nullable ("number or null", ...): clients that send every field send null
    # for the ones not set
    nulls = {"temperature": None, "top_p": None, "n": None, "stream": None, "stop": None, "seed": None,
             "max_tokens": None, "stream_options": {"include_usage": None}}
    client, _ = make_client(tiny_run, tmp_path)
    out = client.post("/v1/completions", json={"prompt": "def", **nulls, "echo": None, "logprobs": None})
    assert out.status_code == 200, out.text
    assert len(out.json()["choices"]) == 1 and out.json()["usage"]["completion_tokens"] <= 16
    chat, _ = make_client(chat_run, tmp_path / "chat")
    out = chat.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hello"}], **nulls,
                                                  "max_completion_tokens": None, "logprobs": None,
                                                  "top_logprobs": None})
    assert out.status_code == 200, out.text
    assert out.json()["choices"][0]["logprobs"] is None
    # a null required field is still a 400 naming it
    assert "prompt" in client.post("/v1/completions", json={"prompt": None}).json()["error"]["message"]


def test_a_stop_string_longer_than_the_limit_is_a_400_naming_stop(make_client, tiny_run, tmp_path):
    client, _ = make_client(tiny_run, tmp_path)
    fits = client.post("/v1/completions", json={"prompt": "def", "max_tokens": 2, "stop": ["x" * 1000, "\n"]})
    assert fits.status_code == 200, fits.text
    for stop in ("x" * 1001, ["\n", "x" * 1001]):
        resp = client.post("/v1/completions", json={"prompt": "def", "max_tokens": 2, "stop": stop})
        assert resp.status_code == 400
        message = resp.json()["error"]["message"]
        assert message.startswith("stop: ") and "1000 characters" in message


def test_top_p_0_is_in_openais_range_and_keeps_the_most_likely_token(make_client, tiny_run, tmp_path):
    # OpenAI's API takes top_p in [0, 1]; 0 keeps the most likely token alone (transformers' TopPLogitsWarper(0))
    client, _ = make_client(tiny_run, tmp_path)
    body = {"prompt": "def add(a, b):", "max_tokens": 8, "seed": 5}
    nucleus = client.post("/v1/completions", json={**body, "temperature": 1.5, "top_p": 0})
    assert nucleus.status_code == 200, nucleus.text
    greedy = client.post("/v1/completions", json={**body, "temperature": 0}).json()
    assert nucleus.json()["choices"][0]["text"] == greedy["choices"][0]["text"]
    for top_p in (-0.1, 1.5):
        resp = client.post("/v1/completions", json={**body, "top_p": top_p})
        assert resp.status_code == 400 and resp.json()["error"]["message"].startswith("top_p: ")
