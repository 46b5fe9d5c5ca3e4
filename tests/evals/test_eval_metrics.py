"""Metrics against closed forms: acc/acc_norm, MC2, F1, stderr, pooled stderr, ECE, reliability diagram."""

from __future__ import annotations

import math

import numpy as np
import pytest

from augury.evals import metrics as M
from augury.evals.calibration import expected_calibration_error, reliability_diagram


def test_acc_and_acc_norm():
    s = M.score_multiple_choice([-2.0, -3.0, -4.5], ["a", "bbbb", "cccccccc"], gold=2)
    assert s["acc"] == 0.0 and s["acc_norm"] == 1.0  # -4.5/8 is the best per-character score
    assert s["confidence"] == pytest.approx(1 / (1 + math.exp(-1) + math.exp(-2.5)))


def test_mc2_is_normalised_true_mass():
    lls = [math.log(0.2), math.log(0.1), math.log(0.3)]
    assert M.score_mc2(lls, [1, 1, 0]) == pytest.approx(0.3 / 0.6)


def test_f1_exact_match_and_extraction():
    assert M.token_f1("The cat sat", "a cat sat down") == pytest.approx(2 * (2 / 2) * (2 / 3) / (1 + 2 / 3))
    out = M.score_generation("so the answer is 42.", "42", ["exact_match", "f1"], r"answer is (\d+)")
    assert out["exact_match"] == 1.0 and out["f1"] == 1.0
    assert M.extract_answer("nothing", r"(\d+)") == "[invalid]"


def test_stderr_and_pooled_stderr():
    x = [1.0, 0.0, 1.0, 1.0]
    assert M.mean_stderr(x) == pytest.approx(np.std(x, ddof=1) / 2)
    a, b = [1.0, 0.0, 1.0], [0.0, 0.0, 1.0, 1.0, 1.0]
    pooled = M.pooled_stderr([M.mean_stderr(a), M.mean_stderr(b)], [3, 5])
    var = ((3 - 1) * np.var(a, ddof=1) + (5 - 1) * np.var(b, ddof=1)) / (8 - 2)
    assert pooled == pytest.approx(math.sqrt(var / 8))


def test_perplexity_metrics():
    m = M.perplexity_metrics([-10.0, -20.0], [5, 10], [20, 40])
    assert m["word_perplexity"] == pytest.approx(math.exp(30 / 15))
    assert m["bits_per_byte"] == pytest.approx(30 / 60 / math.log(2))


def test_ece_closed_form_and_plot(tmp_path):
    conf = [0.95, 0.95, 0.55, 0.55, 0.55, 0.25]
    correct = [1, 1, 1, 0, 0, 0]
    expected = 2 / 6 * abs(1 - 0.95) + 3 / 6 * abs(1 / 3 - 0.55) + 1 / 6 * abs(0 - 0.25)
    assert expected_calibration_error(conf, correct) == pytest.approx(expected)
    assert expected_calibration_error([0.5, 1.0], [0.5, 1.0]) == pytest.approx(0.0)
    reliability_diagram(conf, correct, tmp_path / "r.png", title="toy")
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_group_metrics_do_not_depend_on_which_member_is_listed_first():
    # a member whose samples all failed on the endpoint has no metrics; the others still make the group's
    from augury.evals.results import group_metrics

    per_task = {"a": {}, "b": {"acc,none": 0.5, "acc_stderr,none": 0.1}, "c": {"acc,none": 1.0,
                                                                            "acc_stderr,none": 0.0}}
    sizes = {"a": 0, "b": 10, "c": 30}
    first_empty = group_metrics(["a", "b", "c"], per_task, sizes)
    assert first_empty == group_metrics(["b", "c", "a"], per_task, sizes)
    assert first_empty["acc,none"] == pytest.approx((0.5 * 10 + 1.0 * 30) / 40)


def test_lm_evals_own_table_reads_our_results_with_one_indent_per_level(tmp_path):
    # lm-eval 0.4.13 (the pinned version) writes plain aliases and indents by group_subtasks when it prints; an
    # alias indented by us came out indented twice ("  -    - g_a")
    import time

    make_table = pytest.importorskip("lm_eval.utils").make_table
    from augury.evals.results import build_results, markdown_table
    from augury.evals.taskconfig import TaskRegistry

    (tmp_path / "g.yaml").write_text('{"group": "g", "task": "g_{{subject}}", "kind": "generate", '
                                     '"data": "{{subject}}.jsonl", "subtasks": {"cat": ["a", "b"]}}')
    registry = TaskRegistry.load([tmp_path])
    configs = registry.resolve(["g"])
    scored = {c.task: {"samples": [{"exact_match": 1.0}, {"exact_match": 0.0}], "errors": 0, "original": 2,
                       "resumed": 0} for c in configs}
    results = build_results(configs, scored, registry, {"model": "x"}, None, None, False, time.time(), tmp_path, "d")
    assert results["results"]["g_a"]["alias"] == "g_a"
    names = [row.split("|")[1].rstrip() for row in make_table(results).splitlines()[2:]]
    assert [n for n in names if n.strip()] == ["g", " - g_cat", "  - g_a", "  - g_b"]
    ours = [row.split("|")[1] for row in markdown_table(results).splitlines()[2:]]
    assert ours == [" g ", "  - g_cat ", "    - g_a ", "    - g_b "]  # our own table still shows the tree


def test_groups_have_lm_evals_versions_and_n_shot_entries(tmp_path):
    # lm-eval 0.4 writes a version for every group ("N/A" without metadata) and the n-shot its members share
    import dataclasses
    import time

    from augury.evals.results import build_results, markdown_table
    from augury.evals.taskconfig import TaskRegistry

    (tmp_path / "g.yaml").write_text('{"group": "g", "task": "g_{{subject}}", "kind": "generate", '
                                     '"data": "{{subject}}.jsonl", "fewshot": "{{subject}}.jsonl", '
                                     '"num_fewshot": 2, "subtasks": {"cat": ["a", "b"], "dog": ["c"]}}')
    registry = TaskRegistry.load([tmp_path])
    configs = registry.resolve(["g"])
    scored = {c.task: {"samples": [{"exact_match": 1.0}, {"exact_match": 0.0}], "errors": 0, "original": 2,
                       "resumed": 0} for c in configs}
    results = build_results(configs, scored, registry, {"model": "x"}, None, None, False, time.time(), tmp_path, "d")
    assert set(results["versions"]) == set(results["results"])
    assert {g: results["versions"][g] for g in ("g", "g_cat", "g_dog")} == dict.fromkeys(("g", "g_cat", "g_dog"),
                                                                                        "N/A")
    assert results["n-shot"] == {"g": 2, "g_cat": 2, "g_dog": 2, "g_a": 2, "g_b": 2, "g_c": 2}
    assert "| g | N/A | 2 | exact_match |" in markdown_table(results)
    # members that disagree leave the group without an n-shot entry, as lm-eval's _propagate_num_fewshot does
    mixed = [dataclasses.replace(c, num_fewshot=0) if c.task == "g_c" else c for c in configs]
    results = build_results(mixed, scored, registry, {"model": "x"}, None, None, False, time.time(), tmp_path, "d")
    assert results["n-shot"]["g_dog"] == 0 and results["n-shot"]["g_cat"] == 2 and "g" not in results["n-shot"]


def test_a_group_whose_member_has_no_stderr_says_n_a_as_lm_eval_does():
    # lm-eval's Group.aggregate writes "<metric>_stderr,none": "N/A" when a member's stderr is "N/A" (a task of one
    # sample); the key was left out, so readers of the group's row found no stderr at all
    from augury.evals.results import group_metrics

    per_task = {"a": {"acc,none": 1.0, "acc_stderr,none": "N/A"}, "b": {"acc,none": 0.5, "acc_stderr,none": 0.1}}
    out = group_metrics(["a", "b"], per_task, {"a": 1, "b": 10})
    assert out["acc,none"] == pytest.approx((1.0 + 5.0) / 11) and out["acc_stderr,none"] == "N/A"


def test_a_task_with_no_scored_sample_says_so_in_the_table(tmp_path):
    # every sample of g_a failed on the endpoint: it has no metrics, and its row vanished from the printed table,
    # leaving no sign that a task asked for was not measured
    import time

    from augury.evals.results import build_results, markdown_table
    from augury.evals.taskconfig import TaskRegistry

    (tmp_path / "g.yaml").write_text('{"group": "g", "task": "g_{{subject}}", "kind": "generate", '
                                     '"data": "{{subject}}.jsonl", "subtasks": {"cat": ["a", "b"]}}')
    registry = TaskRegistry.load([tmp_path])
    configs = registry.resolve(["g"])
    scored = {"g_a": {"samples": [], "errors": 3, "original": 3, "resumed": 0},
              "g_b": {"samples": [{"exact_match": 1.0}, {"exact_match": 0.0}], "errors": 0, "original": 2,
                      "resumed": 0}}
    results = build_results(configs, scored, registry, {"model": "x"}, None, None, False, time.time(), tmp_path, "d")
    rows = markdown_table(results).splitlines()[2:]
    assert [r.split("|")[1].strip() for r in rows] == ["g", "- g_cat", "- g_a", "- g_b"]
    row_a = next(r for r in rows if "g_a" in r)
    assert "not measured" in row_a and row_a.replace(" ", "").endswith("|0|3|") and "0.0000" not in row_a
    assert results["results"]["g_a"] == {"alias": "g_a"}  # the results file keeps lm-eval's shape
