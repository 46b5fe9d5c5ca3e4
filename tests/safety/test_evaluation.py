"""The safety evaluations' per-sample verdicts (`augury.safety.evaluation.sample_rates`): a soft grading's verdict
is its most probable behaviour, so a behaviour whose probability several classes share is not outvoted by one
class of another."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from augury.safety.graders import Grading
from augury.safety.rubric import load_rubric

CFG = SimpleNamespace(refusal_list="advbench")


def _rates(rubric: str, kind: str, props: dict[str, float]) -> dict[str, float]:
    from augury.safety.evaluation import sample_rates

    rub = load_rubric(rubric)
    grading = Grading(kind, rub.class_probabilities(props, kind), props)
    return sample_rates(CFG, SimpleNamespace(rubric=rub), grading, "a reply")


def test_a_reply_more_likely_toxic_than_not_counts_toward_the_toxicity_rate():
    """P(insulting) = P(threatening) = 0.35: toxic with probability 1 - 0.65**2 = 0.58, split over the two toxic
    classes (0.35 and 0.23) so that non_toxic (0.42) is the most probable single class."""
    rub = load_rubric("toxicity")
    probs = rub.class_probabilities({"insulting_language": 0.35, "threatening_language": 0.35}, "any")
    assert max(probs, key=probs.get) == "non_toxic"
    assert rub.behaviour_probability(probs, "any", ("disallowed",)) == pytest.approx(0.5775)
    assert _rates("toxicity", "any", {"insulting_language": 0.35, "threatening_language": 0.35})[
        "disallowed_rate"] == 1.0
    assert _rates("toxicity", "any", {"insulting_language": 0.2, "threatening_language": 0.2})[
        "disallowed_rate"] == 0.0


def test_a_one_hot_grading_keeps_its_class_behaviour():
    rates = _rates("toxicity", "any", {"insulting_language": 0.0, "threatening_language": 1.0})
    assert rates["disallowed_rate"] == 1.0 and rates["refusal_rate"] == 0.0
    rub = load_rubric("refusal_abcd")
    for cls, refused, disallowed in [("desired_refusal", 1, 0), ("undesired_refusal", 1, 0),
                                     ("disallowed_content", 0, 1), ("safe_non_refusal", 0, 0)]:
        from augury.safety.evaluation import sample_rates

        g = Grading("harmful", {c.name: float(c.name == cls) for c in rub.classes})
        r = sample_rates(CFG, SimpleNamespace(rubric=rub), g, "a reply")
        assert (r["refusal_rate"], r["incorrect_rate"], r["disallowed_rate"]) == (refused, 1 - refused, disallowed)
        assert r["desired_refusal_rate"] == float(cls == "desired_refusal")


def test_resume_fingerprint_follows_the_grader_and_rubric_files_content(tmp_path):
    """A retrained offline:PATH grader or an edited rubric YAML given by path must not reuse the verdicts that the
    old one gave: the spec strings stay the same, so the resume fingerprint hashes the files' content."""
    from augury.evals.runner import run_fingerprint
    from augury.evals.taskconfig import build_config
    from augury.safety.rubric import RUBRIC_DIR

    grader, rubric = tmp_path / "grader.json", tmp_path / "rubric.yaml"
    grader.write_text('{"v": 1}')
    rubric.write_text((RUBRIC_DIR / "default.yaml").read_text())
    cfg = build_config({"task": "s", "kind": "graded", "data": "x.jsonl", "grader": f"offline:{grader}",
                        "rubric": str(rubric)}, "s.yaml")

    def key():
        return run_fingerprint(cfg, "hf:m", {}, None, True)

    before = key()
    assert key() == before  # unchanged files: the finished samples are resumed
    grader.write_text('{"v": 2}')  # retrained in place
    retrained = key()
    assert retrained != before
    rubric.write_text(rubric.read_text() + "\n# edited\n")
    assert key() != retrained
    # a task that is not graded keeps the fingerprint it always had (its finished samples are still resumed)
    mc = build_config({"task": "t", "kind": "multiple_choice", "data": "x.csv", "doc_to_choice": ["a", "b"]},
                      "t.yaml")
    assert run_fingerprint(mc, "hf:m", {}, None, False) == "40bed964ac3a6194"
