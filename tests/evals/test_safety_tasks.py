"""Grader-scored safety tasks: AdvBench and XSTest rows filtered into disallowed and safe prompts, rates by a
grader and by the string-match refusal lists, per-category Wilson intervals, the report's form, per-sample
grader failures counted, and no prompt text printed."""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import types

import pytest

from augury.data.records import TaskDataError
from augury.evals.graded import plugin, wilson_interval
from augury.evals.lm import LM
from augury.evals.prompts import build_instances
from augury.evals.results import build_results
from augury.evals.runner import evaluate
from augury.evals.taskconfig import TaskRegistry, build_config

REFUSAL = "I'm sorry, but I can't help with that."
ANSWER = "Here is what you asked for: first, open the terminal and list the processes."


class ParityLM(LM):
    """Refuses prompts whose text has an even length, answers the others (a mixed, predictable policy)."""

    def loglikelihood(self, requests):
        raise AssertionError("not used")

    def loglikelihood_rolling(self, texts):
        raise AssertionError("not used")

    def generate_until(self, requests):
        return [REFUSAL if len(r.context) % 2 == 0 else ANSWER for r in requests]


def _refuses(text: str) -> bool:
    return len(text) % 2 == 0


def _run(tasks, shared_data, tmp_path, **override):
    reg = TaskRegistry.load()
    configs = [dataclasses.replace(c, **override) for c in reg.resolve(tasks)]
    scored = evaluate(ParityLM(), configs, shared_data, tmp_path / "out", "parity", progress=False)
    results = build_results(configs, scored, reg, {"model": "parity"}, None, None, False, 0.0, tmp_path, "d")
    return configs, scored, results


def test_xstest_and_advbench_rates_by_grader_and_string_match(shared_data, tmp_path):
    configs, scored, results = _run(["safety_disallowed", "safety_safe"], shared_data, tmp_path, grader="rules")
    assert [c.task for c in configs] == ["advbench", "xstest_unsafe", "xstest_safe"]
    counts = {t: len(s["samples"]) for t, s in scored.items()}
    assert counts == {"advbench": 520, "xstest_unsafe": 200, "xstest_safe": 250}
    for task, s in scored.items():
        harmful = task != "xstest_safe"
        for rec in s["samples"]:
            refused = _refuses(rec["arguments"][0][0])
            assert rec["refusal_rate"] == rec["refusal_rate_strmatch"] == float(refused)
            assert rec["incorrect_rate"] == float(refused != harmful)
    safety = results["safety"]
    unsafe = [r for r in scored["xstest_unsafe"]["samples"] if r["category"] == "contrast_homonyms"]
    cat = safety["xstest_unsafe"]["categories"]["contrast_homonyms"]
    wrong = sum(not _refuses(r["arguments"][0][0]) for r in unsafe)
    assert cat["n"] == 25 and cat["incorrect_rate"] == pytest.approx(wrong / 25)
    assert cat["incorrect_rate_ci95"] == pytest.approx(list(wilson_interval(wrong, 25)))
    assert len(safety["xstest_safe"]["categories"]) == 10
    # the report's form: groups of one kind each, pooled
    pooled = scored["advbench"]["samples"] + scored["xstest_unsafe"]["samples"]
    assert safety["safety_disallowed"]["all"]["incorrect_rate"] == pytest.approx(
        sum(r["incorrect_rate"] for r in pooled) / 720)
    assert safety["safety_disallowed"]["kinds"] == ["harmful"] and safety["safety_safe"]["kinds"] == ["safe"]


def test_rates_of_wrong_behaviour_are_lower_is_better(shared_data, tmp_path):
    # results["higher_is_better"] and the table's arrows said ↑ for the rate of incorrect behaviour and of
    # disallowed content, and for refusing safe prompts (over-refusal)
    from augury.evals.results import markdown_table

    _, _, results = _run(["safety_disallowed", "safety_safe"], shared_data, tmp_path, grader="rules")
    better = results["higher_is_better"]
    for name in ("advbench", "xstest_unsafe", "safety_disallowed", "xstest_safe", "safety_safe"):
        assert not better[name]["incorrect_rate"] and not better[name]["incorrect_rate_strmatch"]
    for name in ("advbench", "safety_disallowed"):
        assert not better[name]["disallowed_rate"]
        assert better[name]["refusal_rate"] and better[name]["desired_refusal_rate"]
    assert not better["xstest_safe"]["refusal_rate"] and not better["safety_safe"]["refusal_rate_strmatch"]
    rows = {tuple(c.strip() for c in line.split("|")[1:5:3]): line.split("|")[6].strip()
            for line in markdown_table(results).splitlines()[2:]}
    assert rows[("- advbench", "incorrect_rate")] == "↓" and rows[("- advbench", "refusal_rate")] == "↑"
    assert rows[("- xstest_safe", "refusal_rate")] == "↓"


def test_wilson_interval_known_values():
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.27753), abs=1e-5)
    assert wilson_interval(5, 10) == pytest.approx((0.23659, 0.76341), abs=1e-5)


def test_wilson_interval_holds_its_rate_at_the_ends():
    # rounding put the bounds of a 0% or 100% rate just inside: 0/6 had [2.8e-17, 0.39], 10/10 ended at 0.9999...
    for n in range(1, 60):
        for k in range(n + 1):
            lo, hi = wilson_interval(k, n)
            assert 0.0 <= lo <= k / n <= hi <= 1.0, (k, n, lo, hi)
    assert wilson_interval(0, 6)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0


def test_grader_failures_are_counted_errors_not_scores(shared_data, tmp_path, monkeypatch):
    rules = types.ModuleType("flaky_rules_for_tests")
    rules.RULES = {"desired_refusal": lambda p, r, k: r.startswith("I'm"),
                   "undesired_refusal": lambda p, r, k: False,
                   "disallowed_content": lambda p, r, k: (_ for _ in ()).throw(RuntimeError("judge down"))}
    monkeypatch.setitem(sys.modules, "flaky_rules_for_tests", rules)
    _, scored, _ = _run(["xstest_unsafe"], shared_data, tmp_path, grader="rules:flaky_rules_for_tests:RULES",
                        rubric="refusal_abcd")
    s = scored["xstest_unsafe"]
    assert s["errors"] > 0 and len(s["samples"]) + s["errors"] == 200
    assert all(_refuses(r["arguments"][0][0]) for r in s["samples"])  # only the refusals were graded


def test_bad_filter_and_kind_are_clear_errors(shared_data):
    base = {"task": "t", "kind": "graded", "data": "xstest/xstest_prompts.csv", "doc_to_text": "{{prompt}}"}
    cfg = build_config({**base, "filter": {"lable": "safe"}}, "t.yaml")
    with pytest.raises(TaskDataError, match="filters on column 'lable'"):
        build_instances(cfg, shared_data)
    cfg = build_config({**base, "doc_to_kind": "boundary"}, "t.yaml")
    with pytest.raises(TaskDataError, match=r"prompt kind\(s\) \['boundary'\]"):
        plugin("graded").check_instances(cfg, build_instances(cfg, shared_data, limit=3))
    with pytest.raises(ValueError, match="graded metrics"):
        build_config({**base, "metrics": ["acc"]}, "t.yaml")


@pytest.mark.parametrize("grader, message", [
    ("ofline", "grader spec 'ofline' is not offline"),
    ("offline:missing/grader.json", "cannot load grader missing/grader.json"),
])
def test_a_bad_grader_is_one_error_before_the_model_loads(shared_data, tmp_path, grader, message):
    # it was reported only after the model had loaded (minutes for a large one); here no model exists at all
    from augury.errors import UsageError
    from augury.evals.cli import main

    with pytest.raises(UsageError, match=re.escape(message)):
        main(["--model", f"hf:{tmp_path / 'no-model'}", "--tasks", "xstest_unsafe", "--data_dir", str(shared_data),
              "--out", str(tmp_path / "o"), "--limit", "2", "--grader", grader])
    assert not (tmp_path / "o").exists()


def test_eval_cli_prints_rates_and_categories_never_prompts(shared_data, tiny_model_dir, tmp_path, capsys):
    from augury.evals.cli import main

    rc = main(["--model", f"hf:{tiny_model_dir}", "--tasks", "xstest_unsafe", "--data_dir", str(shared_data),
               "--out", str(tmp_path / "o"), "--limit", "4", "--grader", "rules"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "rate of incorrect behaviour on disallowed prompts" in out and "contrast_homonyms" in out
    prompts = build_instances(TaskRegistry.load().tasks["xstest_unsafe"], shared_data, limit=4)
    assert not any(p.doc["prompt"][:30] in out for p in prompts)
    results = json.loads(next((tmp_path / "o").glob("results_*.json")).read_text())
    assert results["safety"]["xstest_unsafe"]["all"]["n"] == 4


class InsultingLM(ParityLM):
    def generate_until(self, requests):
        return ["You are an idiot." if "rude" in r.context else "Have a nice day." for r in requests]


def test_toxicity_rate_on_a_user_prompt_file(tmp_path):
    (tmp_path / "toxicity").mkdir()
    rows = [{"prompt": f"{'rude' if i < 3 else 'kind'} prompt {i}"} for i in range(8)]
    (tmp_path / "toxicity" / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    reg = TaskRegistry.load()
    cfg = dataclasses.replace(reg.tasks["toxicity"], grader="rules")
    scored = evaluate(InsultingLM(), [cfg], tmp_path, tmp_path / "out", "insulting", progress=False)
    results = build_results([cfg], scored, reg, {"model": "x"}, None, None, False, 0.0, tmp_path, "d")
    assert results["results"]["toxicity"]["disallowed_rate,none"] == pytest.approx(3 / 8)
    assert results["safety"]["toxicity"]["all"]["disallowed_rate_ci95"] == pytest.approx(list(wilson_interval(3, 8)))


def test_the_closing_message_names_grader_failures(shared_data, tmp_path, monkeypatch, capsys):
    """augury eval's last lines named endpoint, sandbox and NaN failures only, though replies the grader could not
    grade are counted among the errors too."""
    from augury.cli import main
    from augury.safety.rubric import load_rubric

    rub = load_rubric("default")
    rules = types.ModuleType("failing_rules_for_tests")
    rules.RULES = {n: (lambda p, r, k: (_ for _ in ()).throw(RuntimeError("judge down")))
                   for k in rub.kinds for n in rub.propositions_for(k)}
    monkeypatch.setitem(sys.modules, "failing_rules_for_tests", rules)
    monkeypatch.setattr("augury.evals.backends.load_model", lambda spec, **kw: ParityLM())
    code = main(["eval", "--model", "hf:parity", "--tasks", "xstest_unsafe", "--limit", "4",
                     "--grader", "rules:failing_rules_for_tests:RULES", "--data_dir", str(shared_data),
                     "--out", str(tmp_path / "out")])
    assert code == 0
    out = capsys.readouterr().out
    assert "4 sample(s) could not be scored (replies the grader could not grade: 4)" in out
