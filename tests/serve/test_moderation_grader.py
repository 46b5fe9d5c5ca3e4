"""Moderation by a safety grader (augury.safety.graders) besides the rules: its propositions mapped to OpenAI
moderation categories by the policy file, the complete texts graded (input, and each reply once complete), and a
grader that fails makes the request fail rather than pass unchecked."""

from __future__ import annotations

import sqlite3

import pytest
import yaml

INSULT = "You are a stupid idiot."  # insulting_language under the shipped proposition rules; no moderation rule


def _policy(tmp_path, **grader) -> str:
    from augury.serve.moderation import DEFAULT_POLICY

    raw = yaml.safe_load(DEFAULT_POLICY.read_text())
    raw["refuse_input"] = raw["refuse_input"] + ["harassment"]
    if grader:
        raw["grader"] = grader
    path = tmp_path / f"policy{len(grader)}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def test_a_safety_grader_in_the_policy_flags_what_the_rules_miss(make_client, tiny_run, tmp_path):
    (tmp_path / "rules").mkdir()
    (tmp_path / "graded").mkdir()
    rules_only, _ = make_client(tiny_run, tmp_path / "rules", policy=_policy(tmp_path))
    graded, cfg = make_client(tiny_run, tmp_path / "graded",
                              policy=_policy(tmp_path, spec="rules", rubric="toxicity", kind="any",
                                             categories={"harassment": "insulting_language",
                                                         "harassment/threatening": "threatening_language"}))
    body = {"input": [INSULT, "Sure, here is a bread recipe."]}
    before = rules_only.post("/v1/moderations", json=body).json()
    after = graded.post("/v1/moderations", json=body).json()
    assert [r["flagged"] for r in before["results"]] == [False, False]
    assert [r["flagged"] for r in after["results"]] == [True, False] and after["model"] == "augury-rules+rules"
    assert after["results"][0]["categories"]["harassment"] and after["results"][0]["category_scores"]["harassment"] == 1
    # the pattern rules still count: a category's score is the higher of the two
    bomb = graded.post("/v1/moderations", json={"input": "how to build a pipe bomb"}).json()["results"][0]
    assert bomb["categories"]["illicit/violent"]
    out = graded.post("/v1/completions", json={"prompt": INSULT, "max_tokens": 4}).json()
    assert out["choices"][0]["finish_reason"] == "content_filter"
    ok = rules_only.post("/v1/completions", json={"prompt": INSULT, "max_tokens": 4}).json()
    assert ok["choices"][0]["finish_reason"] in ("stop", "length")


def test_the_grader_reads_complete_texts_and_the_rules_every_piece():
    from augury.safety.graders import load_grader
    from augury.serve.moderation import ModerationPolicy, Moderator, SafetyGraderScores

    policy = ModerationPolicy.load(None)
    extra = SafetyGraderScores(load_grader("rules", "toxicity"), {"harassment": "insulting_language"}, "any")
    moderator = Moderator(policy, extra=extra)
    assert moderator.check(INSULT, "output").flagged  # a complete reply: the grader reads it
    assert not moderator.check_many([INSULT], "output", final=False)[0].flagged  # a piece: rules only
    assert moderator.check_many(["how to build a pipe bomb"], "output", final=False)[0].refused


def test_a_failing_grader_fails_the_request_closed(tiny_run, tmp_path):
    from fastapi.testclient import TestClient

    from augury.safety.graders import RuleGrader
    from augury.safety.rubric import load_rubric
    from augury.serve.app import create_app
    from augury.serve.backends import LocalBackend
    from augury.serve.config import ServeConfig
    from augury.serve.moderation import ModerationPolicy, Moderator, SafetyGraderScores
    from augury.serve.requestlog import RequestLog

    def broken(prompt, response, kind):
        raise ConnectionError("judge unreachable")

    grader = RuleGrader(load_rubric("toxicity"), {"insulting_language": broken, "threatening_language": broken})
    moderator = Moderator(ModerationPolicy.load(None),
                          extra=SafetyGraderScores(grader, {"harassment": "insulting_language"}, "any"))
    cfg = ServeConfig(model=str(tiny_run), log=str(tmp_path / "r.db"))
    client = TestClient(create_app(cfg, LocalBackend.load(str(tiny_run)), None, RequestLog(cfg.log), moderator))
    resp = client.post("/v1/completions", json={"prompt": "hello", "max_tokens": 4})
    assert resp.status_code == 500 and "moderation grader failed" in resp.json()["error"]["message"]
    assert client.get("/v1/models").status_code == 200  # still serving
    con = sqlite3.connect(cfg.log)
    assert con.execute("SELECT status, completion_tokens FROM requests").fetchone() == (500, 0)
    con.close()


def test_policy_grader_block_is_checked():
    from augury.errors import UsageError
    from augury.serve.moderation import GraderPolicy, ModerationPolicy, SafetyGraderScores

    with pytest.raises(ValueError, match="unknown categories"):
        ModerationPolicy(grader=GraderPolicy(spec="rules", categories={"rudeness": "insulting_language"})).validate()
    with pytest.raises(UsageError, match="no proposition"):
        SafetyGraderScores.load(GraderPolicy(spec="rules", categories={"harassment": "rudeness"}))


@pytest.mark.integration  # trains the offline classifier on the RBR gold set (~5-15 s)
def test_offline_classifier_scores_are_its_proposition_probabilities(make_client, tiny_run, tmp_path):
    from augury.safety.graders import offline_classifier

    texts = [INSULT, "I'm sorry, but I can't help with that.", "Here is how to bake bread: mix flour and water."]
    client, _ = make_client(tiny_run, tmp_path, policy=_policy(tmp_path, spec="offline"))
    results = client.post("/v1/moderations", json={"input": texts}).json()["results"]
    direct = offline_classifier().probabilities(texts)
    for got, want in zip(results, direct):
        assert got["category_scores"]["illicit"] == pytest.approx(want["disallowed_content"], abs=1e-6)
        assert got["category_scores"]["harassment/threatening"] == pytest.approx(want["threatening_language"],
                                                                                 abs=1e-6)
        assert got["category_scores"]["harassment"] == pytest.approx(
            max(want["insulting_language"], want["threatening_language"]), abs=1e-6)  # the parent of threatening


def test_moderations_read_by_a_grader_are_charged_to_the_key(make_client, tiny_run, tmp_path):
    # a judge model reading /v1/moderations' texts costs what reading a prompt does: the key's daily token budget
    # is charged the texts' tokens (the rules alone stay free)
    from augury.serve.limits import LimitsConfig

    limits = LimitsConfig(requests_per_minute=600, burst=100, tokens_per_day=40)
    graded, cfg = make_client(tiny_run, tmp_path, limits=limits,
                              policy=_policy(tmp_path, spec="rules", rubric="toxicity", kind="any",
                                             categories={"harassment": "insulting_language"}))
    text = "hello there, how are you today? fine thanks."
    assert graded.post("/v1/moderations", json={"input": [text] * 10}).status_code == 429  # over the budget
    assert graded.post("/v1/moderations", json={"input": text}).status_code == 200
    with sqlite3.connect(cfg.log) as conn:
        charged = conn.execute("SELECT prompt_tokens FROM requests WHERE status = 200").fetchone()[0]
    assert charged > 0
    for _ in range(40 // charged):  # the budget runs out
        graded.post("/v1/moderations", json={"input": text})
    assert graded.post("/v1/moderations", json={"input": text}).status_code == 429
