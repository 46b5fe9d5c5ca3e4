"""Task kinds through the runner with a scripted model: generation metrics, code pass@k (sandbox API faked)."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import types

import pytest

from augury.evals.lm import LM, cut_at_stop
from augury.evals.runner import evaluate
from augury.evals.taskconfig import build_config


class ScriptedLM(LM):
    """Answers generation requests from a table keyed by a substring of the prompt."""

    def __init__(self, answers: dict[str, list[str]]):
        self.answers = answers
        self.seen = []

    def loglikelihood(self, requests):
        raise AssertionError("not used")

    def loglikelihood_rolling(self, texts):
        raise AssertionError("not used")

    def generate_until(self, requests):
        out = []
        for r in requests:
            self.seen.append(r)
            key = next(k for k in self.answers if k in r.context)
            options = self.answers[key]
            out.append(cut_at_stop(options[(r.seed or 0) % len(options)], r.until))
        return out


def test_generation_exact_match_f1_and_regex(tmp_path):
    rows = [{"question": "2+2?", "answer": "4"}, {"question": "capital of Italy?", "answer": "Rome"}]
    (tmp_path / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = build_config({"task": "qa", "kind": "generate", "data": "qa.jsonl", "doc_to_text": "{{question}}",
                        "doc_to_target": "{{answer}}", "metrics": ["exact_match", "f1"],
                        "extract_regex": r"answer is (\w+)", "generation": {"until": ["\n"]}}, "qa.yaml")
    lm = ScriptedLM({"2+2": ["the answer is 4\nignored"], "Italy": ["the answer is Milan"]})
    scored = evaluate(lm, [cfg], tmp_path, tmp_path / "out", "scripted", progress=False)["qa"]
    assert [s["exact_match"] for s in scored["samples"]] == [1.0, 0.0]
    assert scored["samples"][0]["resps"] == [["the answer is 4"]]  # lm-eval: one list of responses per request
    assert scored["samples"][0]["filtered_resps"] == ["4"]
    assert lm.seen[0].until == ["\n"]


def test_generation_stops_at_the_fewshot_delimiter_by_default(tmp_path):
    # lm-eval's default `until` is [fewshot_delimiter]: the model's next invented example is not the answer
    (tmp_path / "qa.jsonl").write_text(json.dumps({"question": "2+2?", "answer": "4"}) + "\n")
    raw = {"task": "qa", "kind": "generate", "data": "qa.jsonl", "doc_to_text": "Q: {{question}}\nA:",
           "doc_to_target": "{{answer}}", "target_delimiter": " ", "fewshot_delimiter": "\n"}
    lm = ScriptedLM({"2+2": [" 4\nQ: 3+3?\nA: 6"]})
    scored = evaluate(lm, [build_config(raw, "qa.yaml")], tmp_path, tmp_path / "out", "scripted", progress=False)
    assert lm.seen[0].until == ["\n"]
    assert scored["qa"]["samples"][0]["exact_match"] == 1.0


def reference_pass_at_k(n: int, c: int, k: int) -> float:
    return 1.0 - math.comb(n - c, k) / math.comb(n, k) if n - c >= k else 1.0


@dataclasses.dataclass
class FakeExecResult:
    passed: bool
    status: str
    stdout: str = ""
    stderr: str = ""
    returncode: int = 0
    duration_s: float = 0.0


def test_code_task_samples_n_and_reports_pass_at_k(tmp_path, monkeypatch):
    calls = []

    def check_humaneval(problem, completion, timeout, hidden_dirs=()):
        calls.append((problem["task_id"], completion, timeout, tuple(hidden_dirs)))
        ok = "return a + b" in completion
        return FakeExecResult(passed=ok, status="passed" if ok else "failed")

    fake = types.ModuleType("augury.evals.code_exec")
    fake.check_humaneval, fake.pass_at_k = check_humaneval, reference_pass_at_k
    monkeypatch.setitem(sys.modules, "augury.evals.code_exec", fake)
    problems = [{"task_id": "T/0", "prompt": "def add(a, b):\n", "entry_point": "add", "test": "",
                 "canonical_solution": "    return a + b\n"},
                {"task_id": "T/1", "prompt": "def sub(a, b):\n", "entry_point": "sub", "test": "",
                 "canonical_solution": "    return a - b\n"}]
    (tmp_path / "he.jsonl").write_text("".join(json.dumps(p) + "\n" for p in problems))
    cfg = build_config({"task": "he", "kind": "code", "data": "he.jsonl", "doc_to_text": "{{prompt}}",
                        "doc_to_target": "{{canonical_solution}}", "n_samples": 4, "timeout_s": 3.0,
                        "metrics": ["pass@1", "pass@2"]}, "he.yaml")
    lm = ScriptedLM({"add": ["    return a + b\n", "    return a - b\n", "    return a + b\ndef x(): pass",
                             "    return 0\n"],
                     "sub": ["    return a + b\n", "    return b\n"]})
    scored = evaluate(lm, [cfg], tmp_path, tmp_path / "out", "scripted", progress=False)["he"]["samples"]
    assert len(calls) == 8 and all(t == 3.0 for *_, t, _ in calls)
    assert all(hidden == (tmp_path, tmp_path / "out") for *_, hidden in calls)  # the answers are out of reach
    assert calls[2][1] == "    return a + b"  # cut at the default HumanEval stop "\ndef"
    assert [s["c"] for s in scored] == [2, 2]
    assert scored[0]["pass@2"] == pytest.approx(reference_pass_at_k(4, 2, 2))
    assert scored[0]["pass@1"] == pytest.approx(0.5)
    assert {r.seed for r in lm.seen[:4]} == {0, 1, 2, 3} and all(r.do_sample and r.temperature == 0.8
                                                               for r in lm.seen)


def test_a_sandbox_that_could_not_run_the_program_is_an_error_not_a_fail(tmp_path, monkeypatch):
    # status "error" is the sandbox's own failure (no tmpfs, no fds left): the completion was never judged
    def check_humaneval(problem, completion, timeout, hidden_dirs=()):
        if problem["task_id"] == "T/1":
            return FakeExecResult(passed=False, status="error", stderr="augury sandbox: cannot mount")
        return FakeExecResult(passed=True, status="passed")

    fake = types.ModuleType("augury.evals.code_exec")
    fake.check_humaneval, fake.pass_at_k = check_humaneval, reference_pass_at_k
    monkeypatch.setitem(sys.modules, "augury.evals.code_exec", fake)
    problems = [{"task_id": f"T/{i}", "prompt": f"def f{i}():\n", "entry_point": f"f{i}", "test": ""}
                for i in range(2)]
    (tmp_path / "he.jsonl").write_text("".join(json.dumps(p) + "\n" for p in problems))
    cfg = build_config({"task": "he", "kind": "code", "data": "he.jsonl", "doc_to_text": "{{prompt}}",
                        "doc_to_target": ""}, "he.yaml")
    scored = evaluate(ScriptedLM({"def": ["    return 1\n"]}), [cfg], tmp_path, tmp_path / "out", "scripted",
                      progress=False)["he"]
    assert scored["errors"] == 1  # counted, and retried on the next run
    assert [s["doc"]["task_id"] for s in scored["samples"]] == ["T/0"]  # not stored as a wrong answer


def test_code_metric_k_above_n_is_rejected():
    from augury.evals.taskconfig import TaskConfigError

    with pytest.raises(TaskConfigError, match="pass@k with 1 <= k <= n_samples"):
        build_config({"task": "he", "kind": "code", "data": "x.jsonl", "n_samples": 1,
                      "metrics": ["pass@10"]}, "he.yaml")


def test_resume_fingerprint_tracks_what_changes_outputs(monkeypatch):
    from augury.evals.backends.openai_api import OpenAICompatibleLM
    from augury.evals.runner import run_fingerprint

    cfg = build_config({"task": "t", "kind": "multiple_choice", "data": "x.csv", "fewshot": "d.csv",
                        "num_fewshot": 5, "doc_to_choice": ["a", "b"]}, "t.yaml")
    base = run_fingerprint(cfg, "hf:m", {"dtype": "float32"}, None, False)
    assert base == run_fingerprint(cfg, "hf:m", {"dtype": "float32"}, 5, False)  # same k, said explicitly
    assert base != run_fingerprint(cfg, "hf:m", {"dtype": "bfloat16"}, None, False)
    assert base != run_fingerprint(cfg, "hf:m", {"dtype": "float32"}, 0, False)
    assert base != run_fingerprint(cfg, "hf:m", {"dtype": "float32"}, None, True)
    # the few-shot seed, where it picks the shots (the default sampler, k > 0); 1234 is the key it always had
    assert base == run_fingerprint(cfg, "hf:m", {"dtype": "float32"}, None, False, fewshot_seed=1234)
    assert base != run_fingerprint(cfg, "hf:m", {"dtype": "float32"}, None, False, fewshot_seed=7)
    zero = run_fingerprint(cfg, "hf:m", {"dtype": "float32"}, 0, False)
    assert zero == run_fingerprint(cfg, "hf:m", {"dtype": "float32"}, 0, False, fewshot_seed=7)
    first_n = dataclasses.replace(cfg, fewshot_config={"sampler": "first_n"})
    assert (run_fingerprint(first_n, "hf:m", {}, None, False)
            == run_fingerprint(first_n, "hf:m", {}, None, False, fewshot_seed=7))
    monkeypatch.setattr("augury.evals.runner.SCORING_RULES", -1)  # samples scored by older rules
    assert base != run_fingerprint(cfg, "hf:m", {"dtype": "float32"}, None, False)
    slow = OpenAICompatibleLM("m@http://127.0.0.1:9/v1", requests_per_second=1)
    fast = OpenAICompatibleLM("m@http://127.0.0.1:9/v1", requests_per_second=50)
    assert slow.identity() == fast.identity()  # a rate limit does not invalidate finished samples


class PicksB(LM):
    """Multiple choice that always prefers choice " B"; counts the questions it scores."""

    def __init__(self):
        self.scored = 0

    def loglikelihood(self, requests):
        self.scored += len(requests) // 4
        return [(0.0 if c.strip() == "B" else -1.0, False) for _, c in requests]

    def loglikelihood_rolling(self, texts):
        raise AssertionError("not used")

    def generate_until(self, requests):
        raise AssertionError("not used")


def mc_task(folder, answers: list[int]):
    rows = [{"question": f"q{i}?", "answer": a} for i, a in enumerate(answers)]
    (folder / "mc.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return build_config({"task": "mc", "kind": "multiple_choice", "data": "mc.jsonl", "doc_to_text": "{{question}}",
                         "doc_to_choice": ["A", "B", "C", "D"], "doc_to_target": "{{answer}}"}, "mc.yaml")


def test_resume_rescores_records_whose_data_changed(tmp_path):
    data_a, data_b, out = tmp_path / "a", tmp_path / "b", tmp_path / "out"
    data_a.mkdir(), data_b.mkdir()
    cfg = mc_task(data_a, [1, 1, 0, 2])
    mc_task(data_b, [1, 0, 0, 1])  # the same questions, two answers edited
    first = evaluate(PicksB(), [cfg], data_a, out, "b", progress=False)["mc"]
    assert [s["acc"] for s in first["samples"]] == [1.0, 1.0, 0.0, 0.0]
    lm = PicksB()
    edited = evaluate(lm, [cfg], data_b, out, "b", progress=False)["mc"]
    assert lm.scored == 2 and edited["resumed"] == 2
    assert [s["acc"] for s in edited["samples"]] == [1.0, 0.0, 0.0, 1.0]
    assert [s["gold"] for s in edited["samples"]] == [1, 0, 0, 1]
    lm = PicksB()
    again = evaluate(lm, [cfg], data_a, out, "b", progress=False)["mc"]  # both versions are kept
    assert lm.scored == 0 and again["samples"] == first["samples"]


# A kill in the middle of writing a record, between characters or inside a UTF-8 one.
@pytest.mark.parametrize("torn", [b'{"doc_id": 2, "doc": {"quest', '{"doc_id": 2, "doc": "caf\u00e9'.encode()[:-1]])
def test_a_torn_last_line_is_cut_before_new_samples_are_appended(torn, tmp_path):
    cfg = mc_task(tmp_path, [1, 1, 0, 2, 1, 3])
    out = tmp_path / "out"
    evaluate(PicksB(), [cfg], tmp_path, out, "b", limit=2, progress=False)
    (partial,) = (out / ".partial").glob("mc.*.jsonl")
    with open(partial, "ab") as f:
        f.write(torn)
    lm = PicksB()
    assert evaluate(lm, [cfg], tmp_path, out, "b", limit=4, progress=False)["mc"]["resumed"] == 2
    assert lm.scored == 2
    assert [json.loads(line)["doc_id"] for line in partial.read_text().splitlines()] == [0, 1, 2, 3]
    lm = PicksB()
    assert evaluate(lm, [cfg], tmp_path, out, "b", limit=4, progress=False)["mc"]["resumed"] == 4
    assert lm.scored == 0


def test_an_unreadable_stored_sample_is_one_error_naming_the_file_and_line(tmp_path):
    from augury.evals.runner import ResumeError

    cfg = mc_task(tmp_path, [1, 1, 0])
    out = tmp_path / "out"
    evaluate(PicksB(), [cfg], tmp_path, out, "b", progress=False)
    (partial,) = (out / ".partial").glob("mc.*.jsonl")
    lines = partial.read_text().splitlines(keepends=True)
    partial.write_text(lines[0] + "not json\n" + "".join(lines[1:]))
    with pytest.raises(ResumeError, match=rf"{partial.name}: line 2 is not a stored sample"):
        evaluate(PicksB(), [cfg], tmp_path, out, "b", progress=False)


class NaNLM(ScriptedLM):
    """Log-likelihoods from a table keyed by choice; NaN where an overflowing half-precision model gives one."""

    def __init__(self, lls: dict[str, float]):
        super().__init__({})
        self.lls = lls

    def loglikelihood(self, requests):
        return [(self.lls[cont.strip()], False) for _, cont in requests]

    def loglikelihood_rolling(self, texts):
        return [float("nan") if "bad" in t else -10.0 for t in texts]


def test_a_nan_log_likelihood_is_a_counted_error_not_a_prediction(tmp_path):
    # np.argmax picks the first NaN, so a NaN choice used to be "predicted", and scored right when it was gold
    rows = [{"q": "a?", "choices": ["x", "y"], "gold": 0}, {"q": "b?", "choices": ["y", "z"], "gold": 0}]
    (tmp_path / "mc.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = build_config({"task": "mc", "kind": "multiple_choice", "data": "mc.jsonl", "doc_to_text": "{{q}}",
                        "doc_to_choice": "{{choices}}", "doc_to_target": "{{gold}}"}, "mc.yaml")
    scored = evaluate(NaNLM({"x": float("nan"), "y": -1.0, "z": -2.0}), [cfg], tmp_path, tmp_path / "out", "s",
                      progress=False)["mc"]
    assert scored["errors"] == 1 and [s["doc"]["q"] for s in scored["samples"]] == ["b?"]
    (tmp_path / "t.txt").write_text("good text\n\nbad text\n")
    ppl = build_config({"task": "ppl", "kind": "perplexity", "data": {"path": "t.txt", "split_regex": "^$"}},
                       "ppl.yaml")
    scored = evaluate(NaNLM({}), [ppl], tmp_path, tmp_path / "out", "s", progress=False)["ppl"]
    assert scored["errors"] == 1 and len(scored["samples"]) == 1


LM_EVAL_SAMPLE_KEYS = {"doc_id", "doc", "target", "arguments", "resps", "filtered_resps", "filter", "metrics",
                       "doc_hash", "prompt_hash", "target_hash"}


def test_samples_have_lm_evals_log_samples_layout_also_when_resumed(tmp_path):
    # lm-eval's --log_samples record: `resps` holds each request's list of responses, `filtered_resps` one per
    # request, plus `filter` and the `metrics` scored; `resps` was flat and `filter`/`metrics` were missing
    cfg = mc_task(tmp_path, [1, 2])
    out = tmp_path / "out"
    first = evaluate(PicksB(), [cfg], tmp_path, out, "b", progress=False)["mc"]["samples"]
    rec = first[0]
    assert set(rec) >= LM_EVAL_SAMPLE_KEYS
    assert rec["resps"] == [[[-1.0, False]], [[0.0, False]], [[-1.0, False]], [[-1.0, False]]]
    assert rec["filtered_resps"] == [[-1.0, False], [0.0, False], [-1.0, False], [-1.0, False]]
    assert rec["filter"] == "none" and rec["metrics"] == ["acc", "acc_norm"]
    # samples stored by an older augury (flat resps, no filter/metrics) read back in the same layout
    partial = next((out / ".partial").glob("mc.*.jsonl"))
    old = [json.loads(line) for line in partial.read_text().splitlines()]
    for r in old:
        r["resps"] = [x[0] for x in r.pop("resps")]
        del r["filter"], r["metrics"]
    partial.write_text("".join(json.dumps(r) + "\n" for r in old))
    again = evaluate(PicksB(), [cfg], tmp_path, out, "b", progress=False)["mc"]
    assert again["resumed"] == 2 and again["samples"] == first


def test_doc_hash_is_lm_evals_and_samples_stored_under_the_older_hash_still_resume(tmp_path):
    pytest.importorskip("lm_eval", reason="lm-eval is not installed (pip install -e '.[bench]')")
    import hashlib

    from lm_eval.utils import handle_non_serializable, hash_string

    rows = [{"question": f"¿qué es {i}?", "answer": a} for i, a in enumerate([1, 0, 1])]
    cfg = mc_task(tmp_path, [1, 0, 1])
    (tmp_path / "mc.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))  # non-ASCII
    out = tmp_path / "out"
    first = evaluate(PicksB(), [cfg], tmp_path, out, "b", progress=False)["mc"]["samples"]
    # lm-eval's evaluator: hash_string(json.dumps(doc, indent=2, default=handle_non_serializable, ensure_ascii=False))
    lm_eval_hash = [hash_string(json.dumps(r, indent=2, default=handle_non_serializable, ensure_ascii=False))
                    for r in rows]
    assert [s["doc_hash"] for s in first] == lm_eval_hash
    # samples stored by an older augury, under its sort_keys hash: reused, and written with lm-eval's hash
    partial = next((out / ".partial").glob("mc.*.jsonl"))
    old = [json.loads(line) for line in partial.read_text().splitlines()]
    for r in old:
        r["doc_hash"] = hashlib.sha256(json.dumps(r["doc"], sort_keys=True).encode()).hexdigest()
    partial.write_text("".join(json.dumps(r) + "\n" for r in old))
    lm = PicksB()
    again = evaluate(lm, [cfg], tmp_path, out, "b", progress=False)["mc"]
    assert again["resumed"] == 3 and lm.scored == 0 and again["samples"] == first
    # an edited record matches neither hash of its stored sample: scored again, not mixed up
    rows[1]["answer"] = 1
    (tmp_path / "mc.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    lm = PicksB()
    edited = evaluate(lm, [cfg], tmp_path, out, "b", progress=False)["mc"]
    assert edited["resumed"] == 2 and lm.scored == 1 and edited["samples"][1]["acc"] == 1.0
