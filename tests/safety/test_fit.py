"""Hinge-loss fitting of class rewards: it repairs an ordering a reward model gets wrong, and the loss is the
RBR paper's max(0, margin - (R_better - R_worse)) averaged over ordered pairs."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch

from augury.safety.fit import fit_class_rewards, hinge_loss
from augury.safety.graders import Grading, load_grader
from augury.safety.rubric import load_rubric

REPLIES = {"desired_refusal": "I'm sorry, but I can't help with that.",
           "undesired_refusal": "I cannot do that. " + "It would be unethical of you to ask. " * 4,
           "disallowed_content": "Sure, here is exactly how to do it, step by step.",
           "safe_non_refusal": "Here is a recipe for bread: flour, water, salt, yeast."}


def _rows():
    rows = []
    for i in range(6):
        for cls, text in REPLIES.items():
            kind = "harmful" if cls != "safe_non_refusal" else "safe"
            # the reward model likes long, compliant-looking replies: the wrong order on harmful prompts
            rm = 3.0 if cls == "disallowed_content" else (1.5 if cls == "undesired_refusal" else 0.0)
            rows.append({"prompt": f"request {i} ({kind})", "completion": text, "kind": kind, "class": cls,
                         "rm_score": rm})
    return rows


def test_hinge_loss_by_hand():
    r = torch.tensor([2.0, 0.5, 1.8])
    pairs = torch.tensor([[0, 1], [2, 0]])
    assert float(hinge_loss(r, pairs, 1.0)) == pytest.approx((max(0, 1 - 1.5) + max(0, 1 - (-0.2))) / 2)


def test_fitting_repairs_the_order_a_reward_model_gets_wrong():
    rows = _rows()
    grader = load_grader("rules", "refusal_abcd")
    gradings = grader.grade([r["prompt"] for r in rows], [r["completion"] for r in rows], [r["kind"] for r in rows])
    assert [g.top_class() for g in gradings] == [r["class"] for r in rows]  # the rules get these right
    fitted, report = fit_class_rewards(grader.rubric, gradings, [r["class"] for r in rows],
                                       [r["prompt"] for r in rows], [r["rm_score"] for r in rows])
    assert report.pairs == 6 * 3 and report.ordered_before < 1.0 and report.ordered_after == 1.0
    assert report.hinge_after < report.hinge_before
    assert report.inversions == [] and report.warnings() == []  # the written order is kept
    h = fitted["harmful"]
    assert h["desired_refusal"] > h["undesired_refusal"] + 1.5 - 1e-6  # beats the RM's 1.5 head start
    failed = [Grading("harmful", error="endpoint")] + gradings[1:]
    assert fit_class_rewards(grader.rubric, failed, [r["class"] for r in rows], [r["prompt"] for r in rows],
                             [r["rm_score"] for r in rows])[1].skipped == 1
    with pytest.raises(ValueError, match="not classes of rubric"):
        fit_class_rewards(grader.rubric, gradings, ["bogus"] * len(rows), [0] * len(rows))


def test_rubric_fit_command_writes_a_loadable_rubric(tmp_path, capsys):
    from augury.align.rubric_fit import rubric_fit

    data = tmp_path / "labelled.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _rows()))
    result = rubric_fit(data=str(data), out=str(tmp_path / "fit"), rubric="refusal_abcd", grader="rules")
    fitted = load_rubric(str(tmp_path / "fit" / "rubric.yaml"))
    assert fitted.classes[0].reward["harmful"] == pytest.approx(result["rewards"]["harmful"]["desired_refusal"])
    assert result["ordered_after"] == 1.0 and result["inversions"] == [] and result["warnings"] == []
    out = capsys.readouterr().out
    assert "step by step" not in out and "WARNING" not in out  # class names and figures only


def test_fitted_rewards_that_invert_the_rubric_order_are_reported_with_the_grader_confusion(tmp_path, capsys):
    """A grader that mistakes desired for undesired refusals (and back) makes the fit reward the undesired style
    more, while the share of ordered pairs still improves: the command must say so, not just show the gain."""
    from augury.align.rubric_fit import rubric_fit

    swap = {"desired_refusal": "undesired_refusal", "undesired_refusal": "desired_refusal"}
    rows = [dict(r, **{"class": swap.get(r["class"], r["class"]), "rm_score": 0.0}) for r in _rows()]
    data = tmp_path / "labelled.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = rubric_fit(data=str(data), out=str(tmp_path / "fit"), rubric="refusal_abcd", grader="rules")
    assert result["ordered_after"] > result["ordered_before"]  # looks like an improvement
    h = result["rewards"]["harmful"]
    assert h["undesired_refusal"] > h["desired_refusal"]
    [inv] = [v for v in result["inversions"] if v["written_lower"] == "undesired_refusal"]
    assert inv["kind"] == "harmful" and inv["written_higher"] == "desired_refusal"
    assert inv["confused"] == [1.0, 1.0]  # the grader called every one of them the other class
    report = json.loads((tmp_path / "fit" / "report.json").read_text())
    assert report["inversions"] == result["inversions"] and report["confusion"]["harmful"]["desired_refusal"]
    assert any("undesired_refusal is fitted above desired_refusal" in w and "confusion" in w
               for w in report["warnings"])
    out = capsys.readouterr().out
    assert "WARNING: the fitted rewards invert the rubric's order" in out
    assert "undesired_refusal is fitted above desired_refusal" in out and "order inverted" in out


class _DownJudge:
    """A judge endpoint that is down: every grading fails, or (after enough failures in a row) the backend gives up
    with an EndpointError."""

    def __init__(self, rubric, give_up: bool):
        self.rubric, self.give_up = load_rubric(rubric), give_up

    def grade(self, prompts, responses, kinds):
        from augury.evals.backends.errors import EndpointError

        if self.give_up:
            raise EndpointError("3 requests in a row failed; the endpoint looks down")
        return [Grading(k, error="endpoint: the request failed after its retries") for k in kinds]


@pytest.mark.parametrize("give_up, message", [
    (False, "every one of the 24 gradings failed (endpoint: 24)"),
    (True, "the grader's endpoint failed: 3 requests in a row failed"),
])
def test_rubric_fit_with_a_grader_that_cannot_grade_says_so(tmp_path, monkeypatch, give_up, message):
    """Nothing graded is nothing to fit: one error naming the grader's failures (not 'no ordered pairs', which
    blames the data, nor a traceback), and nothing written."""
    import augury.safety.graders as graders
    from augury.align.rubric_fit import rubric_fit
    from augury.errors import UsageError

    monkeypatch.setattr(graders, "load_grader", lambda spec, rubric, args="": _DownJudge(rubric, give_up))
    data = tmp_path / "labelled.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _rows()))
    with pytest.raises(UsageError, match=re.escape(message)):
        rubric_fit(data=str(data), out=str(tmp_path / "fit"), rubric="refusal_abcd", grader="openai:j@http://x/v1")
    assert not (tmp_path / "fit").exists()


def test_a_non_finite_rm_score_is_an_error_not_nan_rewards():
    """A NaN (a diverged reward model) made every fitted reward NaN, written to rubric.yaml without a word."""
    rows = _rows()
    grader = load_grader("rules", "refusal_abcd")
    gradings = grader.grade([r["prompt"] for r in rows], [r["completion"] for r in rows], [r["kind"] for r in rows])
    for bad in (math.nan, math.inf):
        scores = [r["rm_score"] for r in rows]
        scores[3] = bad
        with pytest.raises(ValueError, match=r"rm score of completion 3 is not a finite number"):
            fit_class_rewards(grader.rubric, gradings, [r["class"] for r in rows], [r["prompt"] for r in rows],
                              scores)


def test_rubric_fit_with_a_reward_model_scoring_nan_writes_nothing(tmp_path, monkeypatch):
    import augury.align.rm as rm
    from augury.align.rubric_fit import rubric_fit
    from augury.errors import UsageError

    class _DivergedRM:
        def score(self, prompts, replies):
            return [math.nan] * len(prompts)

    monkeypatch.setattr(rm, "load_reward_model", lambda path: _DivergedRM())
    data = tmp_path / "labelled.jsonl"
    data.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "rm_score"}) + "\n" for r in _rows()))
    with pytest.raises(UsageError, match="not a finite number"):
        rubric_fit(data=str(data), out=str(tmp_path / "fit"), rubric="refusal_abcd", grader="rules",
                   reward_model="runs/rm")
    assert not (tmp_path / "fit").exists()


def test_a_gold_class_the_rubric_does_not_define_for_the_kind_is_an_error(tmp_path):
    """A propositions class without `when` for a kind can never be a completion of that kind; as a gold label it
    was fitted against the grader's zero probability for it, silently."""
    from augury.safety.graders import RuleGrader

    (tmp_path / "r.yaml").write_text(
        "type: propositions\nprompt_template: '{prompt} {response} {question}'\n"
        "propositions: {apology: Is it sorry}\n"
        "classes:\n"
        "  - {name: sorry, when: {harmful: {apology: true}}, reward: 1, behaviour: refusal}\n"
        "  - {name: sorry_safe, when: {safe: {apology: true}}, reward: -1, behaviour: refusal}\n"
        "  - {name: answer, when: {harmful: {apology: false}, safe: {apology: false}}, reward: {harmful: -1, "
        "safe: 1}, behaviour: comply}\n")
    grader = RuleGrader(load_rubric(str(tmp_path / "r.yaml")), {"apology": lambda p, r, k: "sorry" in r})
    replies, kinds = ["sorry", "here", "sorry", "here"], ["harmful", "harmful", "safe", "safe"]
    gradings = grader.grade(["a", "a", "b", "b"], replies, kinds)
    gold = ["sorry", "answer", "sorry", "answer"]  # the third: sorry is no class of a safe completion
    with pytest.raises(ValueError, match=r"gold class sorry of completion 2 is not a class of kind safe"):
        fit_class_rewards(grader.rubric, gradings, gold, ["a", "a", "b", "b"])
    gold[2] = "sorry_safe"
    assert fit_class_rewards(grader.rubric, gradings, gold, ["a", "a", "b", "b"])[1].pairs == 2


def _graded_rows():
    rows = _rows()
    grader = load_grader("rules", "refusal_abcd")
    gradings = grader.grade([r["prompt"] for r in rows], [r["completion"] for r in rows], [r["kind"] for r in rows])
    return rows, grader.rubric, gradings


def test_held_out_prompts_are_left_out_of_the_fit_and_scored_apart():
    """`ordered_after` on the pairs the weights were fitted on says nothing about new completions: a share of the
    prompts (all their completions) is held out of the fit, and the ordering and hinge are reported on their pairs."""
    rows, rubric, gradings = _graded_rows()
    rows[0]["rm_score"] = rows[4]["rm_score"] = 9.0  # prompts 0 and 1: an RM far keener on desired refusals
    args = (rubric, gradings, [r["class"] for r in rows], [r["prompt"] for r in rows])
    scores = [r["rm_score"] for r in rows]
    fitted, report = fit_class_rewards(*args, scores, held_out=0.34, seed=0)
    held = report.held_out_rows
    assert report.held_out_prompts == 2 and report.held_out_pairs == 6 and report.pairs == 12
    held_prompts = {rows[i]["prompt"] for i in held}
    assert len(held_prompts) == 2 and len(held) == 6  # three completions of each harmful prompt
    assert held == [i for i, r in enumerate(rows) if r["prompt"] in held_prompts]  # split by prompt, not by pair
    # the fit never saw the held-out completions: fitting the rest alone gives the same rewards
    rest = [i for i in range(len(rows)) if i not in held]
    alone, _ = fit_class_rewards(rubric, [gradings[i] for i in rest], [rows[i]["class"] for i in rest],
                                 [rows[i]["prompt"] for i in rest], [scores[i] for i in rest])
    assert alone == fitted
    # ... and the held-out figures are those rewards' ordering of the held-out pairs
    reward = {i: scores[i] + sum(p * fitted[rows[i]["kind"]][c] for c, p in gradings[i].classes.items())
              for i in held}
    rank = {c.name: c.reward["harmful"] for c in rubric.classes}
    pairs = [(i, j) for i in held for j in held if rows[i]["prompt"] == rows[j]["prompt"]
             and rows[i]["kind"] == rows[j]["kind"] == "harmful" and rank[rows[i]["class"]] > rank[rows[j]["class"]]]
    assert len(pairs) == 6
    assert report.held_out_ordered_after == pytest.approx(sum(reward[i] > reward[j] for i, j in pairs) / 6)
    assert report.held_out_hinge_after == pytest.approx(sum(max(0.0, 1.0 - (reward[i] - reward[j]))
                                                            for i, j in pairs) / 6)
    assert report.held_out_ordered_before is not None and report.held_out_hinge_before is not None
    # deterministic by seed; other seeds hold out other prompts
    assert fit_class_rewards(*args, scores, held_out=0.34, seed=0)[1].held_out_rows == held
    assert len({tuple(fit_class_rewards(*args, scores, held_out=0.34, seed=s, steps=1)[1].held_out_rows)
                for s in range(8)}) > 1


def test_no_held_out_share_fits_every_pair_and_a_share_leaving_none_is_refused():
    rows, rubric, gradings = _graded_rows()
    args = (rubric, gradings, [r["class"] for r in rows], [r["prompt"] for r in rows], [r["rm_score"] for r in rows])
    report = fit_class_rewards(*args, held_out=0.0)[1]
    assert report.pairs == 18 and report.held_out_pairs == 0 and report.held_out_rows == []
    assert report.held_out_ordered_after is None and report.held_out_hinge_after is None
    assert fit_class_rewards(*args, held_out=0.01)[1].held_out_prompts == 1  # a share > 0 holds out one at least
    with pytest.raises(ValueError, match=r"held_out 0.95 holds out 6 of the 6 prompts .* no pairs to fit on"):
        fit_class_rewards(*args, held_out=0.95)
    for bad in (1.0, -0.1, math.nan):
        with pytest.raises(ValueError, match="held_out must be >= 0 and < 1"):
            fit_class_rewards(*args, held_out=bad)


def test_rubric_fit_holds_out_a_tenth_of_the_prompts_by_default_and_reports_them(tmp_path, capsys):
    from augury.align.rubric_fit import rubric_fit
    from augury.errors import UsageError

    data = tmp_path / "labelled.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _rows()))
    result = rubric_fit(data=str(data), out=str(tmp_path / "fit"), rubric="refusal_abcd", grader="rules")
    assert result["held_out"] == 0.1 and result["seed"] == 0
    assert result["held_out_prompts"] == 1 and result["held_out_pairs"] == 3 and result["pairs"] == 15
    assert result["held_out_ordered_after"] == 1.0 and result["held_out_hinge_after"] is not None
    report = json.loads((tmp_path / "fit" / "report.json").read_text())
    assert report["held_out_ordered_after"] == result["held_out_ordered_after"]
    assert "held out 1 prompt(s), 3 pairs: ordered correctly" in capsys.readouterr().out
    none = rubric_fit(data=str(data), out=str(tmp_path / "fit0"), rubric="refusal_abcd", grader="rules",
                      held_out=0.0)
    assert none["pairs"] == 18 and none["held_out_pairs"] == 0 and none["held_out_ordered_after"] is None
    assert "no prompts held out" in capsys.readouterr().out
    for bad, message in ((1.0, r"--held_out must be >= 0 and < 1 \(got 1.0\)"),
                         (0.95, r"held_out 0.95 holds out 6 of the 6 prompts")):
        with pytest.raises(UsageError, match=message):
            rubric_fit(data=str(data), out=str(tmp_path / "bad"), rubric="refusal_abcd", grader="rules",
                       held_out=bad)
        assert not (tmp_path / "bad").exists()
