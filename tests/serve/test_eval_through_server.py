"""`augury eval --model openai:RUN@http://127.0.0.1:PORT/v1` picks the same multiple-choice answers through the
server as the augury backend does directly (likelihoods via completions with echo and logprobs)."""

from __future__ import annotations

import pytest

QUESTIONS = [("Question: what does def add(a, b) return?\nAnswer:", [" a + b", " a - b", " None", " print(i)"]),
             ("for i in range(10):\n   ", [" print(i)", " return", " pass", " a + b"]),
             ("Question: which keyword starts a loop?\nAnswer:", [" for", " def", " return", " None"]),
             ("def f(x):\n    return", [" x", " x + 1", " None", " f"])]


@pytest.fixture
def server_url(make_client, tiny_run, tmp_path, serving):
    client, _ = make_client(tiny_run, tmp_path)
    with serving(client.app) as port:
        yield f"http://127.0.0.1:{port}/v1"


def test_multiple_choice_answers_are_the_same_through_the_server(tiny_run, server_url):
    from augury.evals.backends import load_model

    direct = load_model(f"augury:{tiny_run}")
    remote = load_model(f"openai:run@{server_url}", requests_per_second=1000.0)
    for context, choices in QUESTIONS:
        pairs = [(context, c) for c in choices]
        a = [lp for lp, _ in direct.loglikelihood(pairs)]
        b = [lp for lp, _ in remote.loglikelihood(pairs)]
        assert a.index(max(a)) == b.index(max(b))
        assert b == pytest.approx(a, abs=1e-3)
