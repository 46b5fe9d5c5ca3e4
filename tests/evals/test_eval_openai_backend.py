"""The OpenAI-compatible backend against a local HTTP server on 127.0.0.1: parity, retries, errors, garbage."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from augury.evals.backends import load_model
from augury.evals.backends.errors import EndpointError
from augury.evals.lm import GenRequest


def fake_tokens(text: str):
    """The fake server's tokenizer: each run of spaces + non-spaces is one token."""
    return [(m.group(0), m.start()) for m in re.finditer(r"\s*\S+|\s+$", text)]


def fake_logprob(token: str) -> float:
    return -0.1 * len(token) - 0.01 * (sum(map(ord, token)) % 7)


def echo_choice(prompt: str | list[int], index: int) -> dict:
    """An echoed completion: token ids are scored as sent, one token each (as vLLM does with a list prompt)."""
    ids = prompt if isinstance(prompt, list) else None
    toks = [(f"<{i}>", k) for k, i in enumerate(ids)] if ids is not None else fake_tokens(prompt)
    lps = [None] + [fake_logprob(t) for t, _ in toks[1:]]
    tops = [None] + [{t: fake_logprob(t)} if i % 2 else {"zzz": 0.0} for i, (t, _) in enumerate(toks[1:], 1)]
    return {"index": index, "text": prompt, "logprobs": {
        "tokens": [t for t, _ in toks] + [" gen"], "token_logprobs": lps + [-1.0],
        "text_offset": [o for _, o in toks] + [len(toks) if ids is not None else len(prompt)],
        "top_logprobs": tops + [{" gen": -1.0}]}}


class FakeEndpoint:
    """Scripted behaviour: `plan` is a list of actions consumed per request; then 'ok' forever."""

    def __init__(self):
        self.plan: list = []
        self.requests: list[dict] = []
        self.always_fail_prompt: str | None = None
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                body["_auth"] = self.headers.get("Authorization")
                outer.requests.append(body)
                action = outer.plan.pop(0) if outer.plan else "ok"
                if outer.always_fail_prompt and outer.always_fail_prompt in body.get("prompt", ""):
                    action = 503
                if isinstance(action, tuple):  # (status, kind): a server that echoes the request in its reply
                    status, kind = action
                    text = json.dumps(body)
                    payload = {"json": json.dumps({"detail": [{"type": "missing", "msg": text, "input": body}],
                                                   "error": {"message": text, "type": "invalid_request_error",
                                                             "code": text.split()[1].strip('"')}}),
                               "text": f"<html>{text}</html>",
                               "shape": json.dumps({"choices": [{"text": text}], text[:80]: 1})}[kind]
                    self.send_response(status)
                    self.end_headers()
                    self.wfile.write(payload.encode())
                    return
                if isinstance(action, int):
                    self.send_response(action)
                    if action == 429:
                        self.send_header("Retry-After", "0")
                    self.end_headers()
                    self.wfile.write(b'{"error": "scripted"}')
                    return
                if action == "truncated":  # the connection drops mid-body: http.client.IncompleteRead
                    self.send_response(200)
                    self.send_header("Content-Length", "1000")
                    self.end_headers()
                    self.wfile.write(b'{"choi')
                    self.close_connection = True
                    return
                if action == "bad_status":  # not HTTP at all: http.client.BadStatusLine
                    self.wfile.write(b"garbage\r\n\r\n")
                    self.close_connection = True
                    return
                if isinstance(action, dict):  # a scripted JSON reply, sent with HTTP 200
                    payload = json.dumps(action).encode()
                elif action == "garbage":
                    payload = b"<html>502 bad gateway</html>"
                elif action == "wrong_shape":
                    payload = json.dumps({"choices": [{"text": "x"}]}).encode()
                elif self.path.endswith("/chat/completions"):
                    last = body["messages"][-1]["content"]
                    payload = json.dumps({"choices": [{"message": {"role": "assistant",
                                                                   "content": f"echo: {last} STOP more"}}]}).encode()
                else:
                    # a batch of token-id prompts (lm-eval sends one) gets one choice each, by index
                    batch = body["prompt"] if isinstance(body["prompt"], list) and body["prompt"] and isinstance(
                        body["prompt"][0], list) else [body["prompt"]]
                    payload = json.dumps({"choices": [echo_choice(p, i) for i, p in enumerate(batch)]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint():
    ep = FakeEndpoint()
    yield ep
    ep.close()


def make_lm(endpoint, **kw):
    opts = dict(max_retries=2, backoff_s=0.001, max_backoff_s=0.01, requests_per_second=0, **kw)
    return load_model(f"openai:fake-model@{endpoint.url}", **opts)


def expected_ll(context: str, continuation: str) -> float:
    return sum(fake_logprob(t) for t, off in fake_tokens(context + continuation) if off >= len(context))


def test_loglikelihood_sums_the_continuation_tokens(endpoint, monkeypatch):
    monkeypatch.setenv("MY_KEY", "sekret")
    lm = make_lm(endpoint, api_key_env="MY_KEY")
    reqs = [("The capital of Italy is", " Rome"), ("Q: x\nA: ", "two words")]
    got = lm.loglikelihood(reqs)
    assert got[0][0] == pytest.approx(expected_ll(*reqs[0]))
    assert got[1][0] == pytest.approx(expected_ll("Q: x\nA:", " two words"))  # trailing space moved
    body = endpoint.requests[0]
    assert body["echo"] is True and body["logprobs"] == 1 and body["model"] == "fake-model"
    assert body["_auth"] == "Bearer sekret"


def test_a_token_straddling_the_context_end_counts_in_the_continuation(endpoint):
    # the server tokenizes the whole text: " 42" starts in the context and ends in the continuation; it was
    # dropped (" apples" alone scored, or no token at all and an error), now it counts, as its end is scored text
    lm = make_lm(endpoint)
    got = lm.loglikelihood([("The answer is 4", "2 apples"), ("Answer: (", "B)")])
    assert got[0][0] == pytest.approx(fake_logprob(" 42") + fake_logprob(" apples"))
    assert got[1][0] == pytest.approx(fake_logprob(" (B)"))


def test_with_a_tokenizer_token_ids_are_sent_and_scored_as_lm_eval_does(endpoint, tiny_model_dir):
    # lm-eval's local-completions with a Hugging Face tokenizer sends context_enc + continuation_enc and sums the
    # logprobs after len(context_enc): the server's own tokenization of the text cannot move the boundary
    lm = make_lm(endpoint, tokenizer=str(tiny_model_dir))
    reqs = [("Question: What is 2 + 2?\nAnswer:", " B"), ("The answer is 4", "2 apples"), ("", "Rome is")]
    got = [lp for lp, _ in lm.loglikelihood(reqs)]
    sent = [r["prompt"] for r in endpoint.requests]
    assert all(isinstance(p, list) and all(isinstance(i, int) for i in p) for p in sent)
    lm_eval_api = pytest.importorskip("lm_eval.models.openai_completions")
    from lm_eval.api.instance import Instance

    ref = lm_eval_api.LocalCompletionsAPI(base_url=f"{endpoint.url}/completions", model="fake-model",
                                          tokenizer_backend="huggingface", tokenizer=str(tiny_model_dir),
                                          max_retries=1)
    endpoint.requests.clear()
    want = [lp for lp, _ in ref.loglikelihood([Instance("loglikelihood", {}, r, i) for i, r in enumerate(reqs)],
                                              disable_tqdm=True)]
    assert sorted(map(tuple, sent)) == sorted(tuple(p) for r in endpoint.requests for p in r["prompt"])
    assert got == pytest.approx(want)
    assert lm.identity()["tokenizer"] == str(tiny_model_dir)
    with pytest.raises(ValueError, match="tokenizer=.*no such folder"):
        make_lm(endpoint, tokenizer=str(tiny_model_dir / "missing"))


@pytest.mark.parametrize("name", ["missing", "gpt2"])
def test_a_tokenizer_that_is_no_folder_is_named_as_such(endpoint, tmp_path, monkeypatch, name):
    # the option takes a local folder: a mistyped path was reported as a bad Hugging Face "Repo id", and a bare
    # name could load a cached hub tokenizer that is not the served model's
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=f"tokenizer='{name}': no such folder"):
        make_lm(endpoint, tokenizer=name)
    with pytest.raises(ValueError, match="tokenizer='/no/such/dir': no such folder"):
        make_lm(endpoint, tokenizer="/no/such/dir")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="tokenizer='empty': no tokenizer could be loaded there"):
        make_lm(endpoint, tokenizer="empty")


def test_rolling_and_chat_generation(endpoint):
    lm = make_lm(endpoint)
    text = "one two three four"
    assert lm.loglikelihood_rolling([text])[0] == pytest.approx(sum(fake_logprob(t) for t, _ in
                                                                    fake_tokens(text)[1:]))
    out = lm.generate_until([GenRequest("hello", until=["STOP"], max_gen_toks=5)])
    assert out == ["echo: hello "]
    assert endpoint.requests[-1]["messages"] == [{"role": "user", "content": "hello"}]
    assert endpoint.requests[-1]["stop"] == ["STOP"] and endpoint.requests[-1]["_auth"] is None


def test_chat_choices_are_scored_as_the_assistant_reply(endpoint):
    # under --chat a choice is scored bare after the chat prompt (lm-eval's rule), so the transcript must open the
    # assistant's turn; it ended with the user's question, and the choice was glued onto the question's text
    from augury.evals.runner import choice_delimiter
    from augury.evals.taskconfig import build_config

    lm = make_lm(endpoint)
    cfg = build_config({"task": "t", "kind": "multiple_choice", "data": "x.jsonl", "doc_to_choice": ["A", "B"]},
                       "t.yaml")
    prompt = lm.apply_chat_template([{"role": "system", "content": "Quiz."}, {"role": "user", "content": "2+2?"}])
    lm.loglikelihood([(prompt, choice_delimiter(cfg, chat=True) + "A")])
    assert endpoint.requests[-1]["prompt"] == "system: Quiz.\n\nuser: 2+2?\n\nassistant: A"


def test_transient_errors_are_retried(endpoint):
    lm = make_lm(endpoint)
    endpoint.plan = [500, 429, "ok"]
    assert lm.loglikelihood([("a b", " c")])[0][0] == pytest.approx(expected_ll("a b", " c"))
    assert lm.stats["retries"] == 2


@pytest.mark.parametrize("action", ["truncated", "bad_status"])
def test_a_broken_http_response_is_retried_not_a_crash(endpoint, action):
    lm = make_lm(endpoint)
    endpoint.plan = [action, "ok"]
    assert lm.loglikelihood([("a b", " c")])[0][0] == pytest.approx(expected_ll("a b", " c"))
    assert lm.stats["retries"] == 1
    endpoint.plan = [action] * 3  # still broken after its retries: a counted per-sample error
    assert lm.loglikelihood([("a b", " c")]) == [None] and lm.stats["failed_samples"] == 1


@pytest.mark.parametrize("status", [408, 409])
def test_request_timeout_and_conflict_are_retried(endpoint, status):
    # what OpenAI's own client retries besides 429 and 5xx: a proxy's 408 used to stop the whole run at once
    lm = make_lm(endpoint)
    endpoint.plan = [status, "ok"]
    assert lm.loglikelihood([("a b", " c")])[0][0] == pytest.approx(expected_ll("a b", " c"))
    assert lm.stats["retries"] == 1


@pytest.mark.parametrize("option,value", [("max_retries", -1), ("timeout_s", 0), ("backoff_s", -1.0),
                                          ("max_consecutive_failures", 0)])
def test_an_option_out_of_range_is_refused_on_load(endpoint, option, value):
    # max_retries=-1 sent no request at all and counted every sample as failed; timeout_s=0 made every socket
    # non-blocking; max_consecutive_failures=0 stopped the run at the first failure
    with pytest.raises(ValueError, match=f"{option}={value}"):
        load_model(f"openai:fake-model@{endpoint.url}", **{option: value})


def test_persistent_failure_is_a_per_sample_error(endpoint):
    lm = make_lm(endpoint)
    endpoint.always_fail_prompt = "poison"
    got = lm.loglikelihood([("a", " b"), ("poison", " c"), ("d", " e")])
    assert got[1] is None and got[0] is not None and got[2] is not None
    assert lm.stats["failed_samples"] == 1


def test_endpoint_down_stops_the_run(endpoint):
    lm = make_lm(endpoint, max_consecutive_failures=2)
    endpoint.always_fail_prompt = "x"
    with pytest.raises(EndpointError, match="2 requests in a row failed"):
        lm.loglikelihood([("x", " a"), ("x", " b"), ("x", " c")])


@pytest.mark.parametrize("status", [400, 413, 422])
def test_a_request_the_endpoint_rejects_is_a_per_sample_error(endpoint, status):
    # one prompt longer than the served model's context is HTTP 400 for that request alone: it used to stop the
    # whole run; it is not retried (it would be rejected again), and a rejection on every request still stops it
    lm = make_lm(endpoint, max_consecutive_failures=2)
    endpoint.plan = ["ok", status, "ok"]
    got = lm.loglikelihood([("a", " b"), ("long", " c"), ("d", " e")])
    assert got[1] is None and got[0] is not None and got[2] is not None
    assert lm.stats["failed_samples"] == 1 and lm.stats["retries"] == 0 and len(endpoint.requests) == 3
    endpoint.plan = [status] * 3
    with pytest.raises(EndpointError, match=f"2 requests in a row failed.*HTTP {status}"):
        lm.loglikelihood([("x", " a"), ("x", " b"), ("x", " c")])


def _chat_reply(message: dict | None, finish_reason: str = "stop") -> dict:
    return {"choices": [] if message is None else [{"index": 0, "message": {"role": "assistant", **message},
                                                    "finish_reason": finish_reason}]}


@pytest.mark.parametrize("reply", [
    _chat_reply({"content": None}, "length"),  # a reasoning model that spent max_tokens thinking (vLLM, ...)
    _chat_reply({"content": "", "reasoning_content": "Let me think"}, "length"),  # OpenAI's: "" at the limit
    _chat_reply({"content": None, "refusal": "I can't help with that."}),  # a structured refusal
    _chat_reply({}),  # no content at all
    _chat_reply(None),  # no choices
], ids=["null-at-length", "empty-at-length", "refusal", "missing", "no-choices"])
def test_a_reply_without_answer_text_is_a_per_sample_error(endpoint, reply):
    # one such reply raised EndpointError and stopped the whole eval or grading run; an empty string must not
    # stand in for it either (it would be graded as the model's answer)
    lm = make_lm(endpoint, max_consecutive_failures=2)
    endpoint.plan = ["ok", reply, "ok"]
    got = lm.generate_until([GenRequest(q, until=["STOP"], max_gen_toks=5) for q in ("a", "b", "c")])
    assert got == ["echo: a ", None, "echo: c "]
    assert lm.stats["failed_samples"] == 1 and lm.stats["retries"] == 0 and len(endpoint.requests) == 3
    endpoint.plan = [reply] * 2  # the same on every request in a row: the run stops, as for rejected requests
    with pytest.raises(EndpointError, match="2 requests in a row failed.*no answer text") as err:
        lm.generate_until([GenRequest(SECRET, max_gen_toks=5)] * 3)
    assert "harmful" not in str(err.value).lower() and "think" not in str(err.value)


def test_an_empty_answer_that_stopped_is_still_an_answer(endpoint):
    lm = make_lm(endpoint)
    endpoint.plan = [_chat_reply({"content": ""}, "stop")]  # the model stopped at once (a stop string): ""
    assert lm.generate_until([GenRequest("a", max_gen_toks=5)]) == [""] and lm.stats["failed_samples"] == 0


@pytest.mark.parametrize("reply", [{"choices": [{"text": "x"}]}, {"object": "list", "data": []},
                                   _chat_reply({"content": 42}), _chat_reply({"content": ["x"]})])
def test_a_chat_reply_of_another_shape_still_stops_the_run(endpoint, reply):
    # not a chat completion at all (a /completions reply, another API, a content that is not text): retrying
    # cannot fix it, so it remains one clear error
    lm = make_lm(endpoint)
    endpoint.plan = [reply]
    with pytest.raises(EndpointError, match="message.content"):
        lm.generate_until([GenRequest("a", max_gen_toks=5)])


@pytest.mark.parametrize("action,message", [("garbage", "not JSON"), ("wrong_shape", "echoed logprobs"),
                                            (401, "HTTP 401"), (404, "HTTP 404")])
def test_errors_and_garbage_are_one_clear_error(endpoint, action, message):
    lm = make_lm(endpoint)
    endpoint.plan = [action]
    with pytest.raises(EndpointError, match=message):
        lm.loglikelihood([("a", " b")])


SECRET = "HARMFULTEXT how to do the harmful thing"


@pytest.mark.parametrize("plan,message", [
    ([(403, "json")], "HTTP 403 Forbidden.*invalid_request_error"),
    ([(401, "text")], "HTTP 401 Unauthorized"),
    ([(400, "json")] * 2, "2 requests in a row failed.*HTTP 400 Bad Request.*invalid_request_error"),
    ([(422, "json")] * 2, "2 requests in a row failed.*HTTP 422"),
    ([(503, "text")] * 6, "2 requests in a row failed.*HTTP 503"),
    ([(200, "text")], "not JSON"),
    ([(200, "shape")], "echoed logprobs"),
])
def test_errors_never_print_the_request_text(endpoint, plan, message):
    # a server that echoes its input (a FastAPI 422 lists the request body) put up to 300 characters of the
    # prompt into the error; safety prompts are harmful text that must never be printed
    lm = make_lm(endpoint, max_consecutive_failures=2)
    endpoint.plan = list(plan)
    with pytest.raises(EndpointError, match=message) as err:
        lm.loglikelihood([(SECRET, " a"), (SECRET, " b")])
    assert "HARMFULTEXT" not in str(err.value) and "harmful" not in str(err.value)


def test_rate_limit_spaces_requests(endpoint):
    import time

    lm = make_lm(endpoint)
    lm.min_interval = 0.05
    start = time.perf_counter()
    lm.loglikelihood([("a", " b")] * 4)
    assert time.perf_counter() - start >= 0.15


def test_cli_counts_errors_keeps_results_and_resumes(endpoint, tmp_path, capsys):
    """A sample whose requests keep failing is counted; rerunning computes only that one."""
    from augury import cli

    data = tmp_path / "data"
    data.mkdir()
    rows = [{"q": f"question {i}", "choices": ["yes", "no"], "gold": i % 2} for i in range(4)]
    rows[2]["q"] = "poison question"
    (data / "toy.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "toy.yaml").write_text('task: toy_mc\nkind: multiple_choice\ndata: toy.jsonl\n'
                                    'doc_to_text: "{{q}}\\nAnswer:"\ndoc_to_choice: "{{choices}}"\n'
                                    'doc_to_target: "{{gold}}"\n')
    endpoint.always_fail_prompt = "poison"
    argv = ["eval", "--model", f"openai:fake@{endpoint.url}", "--model-args",
            "max_retries=1,backoff_s=0.001,requests_per_second=0", "--tasks", "toy_mc", "--data-dir",
            str(data), "--include-path", str(tasks), "--out", str(tmp_path / "out")]
    assert cli.main(argv) == 0
    res = json.loads(next((tmp_path / "out").glob("results_*.json")).read_text())
    assert res["n-samples"]["toy_mc"] == {"original": 4, "effective": 3, "errors": 1, "resumed": 0}
    assert "1 sample(s) could not be scored (failed endpoint requests: 1)" in capsys.readouterr().out
    endpoint.always_fail_prompt = None
    n_before = len(endpoint.requests)
    for f in (tmp_path / "out").glob("results_*.json"):
        f.unlink()
    assert cli.main(argv) == 0
    res = json.loads(next((tmp_path / "out").glob("results_*.json")).read_text())
    assert res["n-samples"]["toy_mc"] == {"original": 4, "effective": 4, "errors": 0, "resumed": 3}
    assert len(endpoint.requests) - n_before == 2  # only the failed sample's two choices


def test_cli_garbage_endpoint_exits_1_and_keeps_samples(endpoint, tmp_path, capsys):
    from augury import cli

    data = tmp_path / "data"
    data.mkdir()
    (data / "t.txt").write_text("one two three")
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "ppl.yaml").write_text("task: toy_ppl\nkind: perplexity\ndata: t.txt\n")
    endpoint.plan = ["garbage"]
    code = cli.main(["eval", "--model", f"openai:fake@{endpoint.url}", "--tasks", "toy_ppl", "--data-dir",
                     str(data), "--include-path", str(tasks), "--out", str(tmp_path / "out")])
    assert code == 1 and "not JSON" in capsys.readouterr().err
    assert not list((tmp_path / "out").glob("results_*.json"))


def test_cli_a_run_stopped_mid_chunk_keeps_the_samples_answered_before(endpoint, tmp_path, capsys):
    # samples were saved a whole chunk (--chunk_size, 64) at a time: an endpoint that went away (or a key revoked)
    # in the middle of a chunk lost every answer of that chunk, though the error said they were kept
    from augury import cli

    data = tmp_path / "data"
    data.mkdir()
    (data / "qa.jsonl").write_text("".join(json.dumps({"q": f"question {i}", "a": "x"}) + "\n" for i in range(6)))
    (tmp_path / "gen.yaml").write_text('task: toy_gen\nkind: generate\ndata: qa.jsonl\ndoc_to_text: "{{q}}"\n'
                                       'doc_to_target: "{{a}}"\n')
    argv = ["eval", "--model", f"openai:fake@{endpoint.url}", "--model_args", "requests_per_second=0",
            "--tasks", "toy_gen", "--data_dir", str(data), "--include_path", str(tmp_path), "--out",
            str(tmp_path / "out")]
    endpoint.plan = ["ok", "ok", "ok", 401]
    assert cli.main(argv) == 1
    assert "rerun the same command to resume" in capsys.readouterr().err
    n_before = len(endpoint.requests)
    assert cli.main(argv) == 0
    res = json.loads(next((tmp_path / "out").glob("results_*.json")).read_text())
    assert res["n-samples"]["toy_gen"] == {"original": 6, "effective": 6, "errors": 0, "resumed": 3}
    assert len(endpoint.requests) - n_before == 3


def test_a_tokenizer_replaced_in_place_is_another_resume_key(endpoint, tiny_model_dir, tmp_path):
    """The resume key named the tokenizer folder by its path: a tokenizer replaced there (which splits prompts into
    other tokens) got the old tokenizer's samples back."""
    import shutil

    folder = tmp_path / "tok"
    shutil.copytree(tiny_model_dir, folder)
    before = make_lm(endpoint, tokenizer=str(folder)).identity()
    assert make_lm(endpoint, tokenizer=str(folder)).identity() == before
    config = folder / "tokenizer_config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "model_max_length": 99}))
    assert make_lm(endpoint, tokenizer=str(folder)).identity() != before
