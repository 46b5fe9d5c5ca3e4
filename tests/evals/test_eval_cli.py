"""`augury eval` end to end on a tiny local model: outputs in lm-eval's shape, resume, bad-input errors."""

from __future__ import annotations

import csv
import json
import math

import pytest

from augury import cli


def run(argv, capsys):
    code = cli.main(["eval", *argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_eval_writes_lm_eval_shaped_results_and_resumes(tiny_model_dir, shared_data, tmp_path, capsys):
    argv = ["--model", f"hf:{tiny_model_dir}", "--tasks", "mmlu_anatomy,truthfulqa_mc2",
            "--data-dir", str(shared_data), "--limit", "3", "--num-fewshot", "1", "--out", str(tmp_path)]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    assert "| mmlu_anatomy | 1.0 | 1 | acc |" in out
    results_files = sorted(tmp_path.glob("results_*.json"))
    assert len(results_files) == 1
    res = json.loads(results_files[0].read_text())
    for key in ("results", "groups", "group_subtasks", "configs", "versions", "n-shot", "higher_is_better",
                "n-samples", "config", "git_hash", "date"):
        assert key in res
    r = res["results"]["mmlu_anatomy"]
    assert set(r) >= {"alias", "acc,none", "acc_stderr,none", "acc_norm,none", "acc_norm_stderr,none",
                      "ece,none"}
    assert 0.0 <= r["acc,none"] <= 1.0
    with open(shared_data / "mmlu" / "test" / "anatomy_test.csv", newline="", encoding="utf-8") as f:
        records = len(list(csv.DictReader(f)))
    # lm-eval's meaning: original = the task's records, effective = those scored under --limit.
    assert res["n-samples"]["mmlu_anatomy"] == {"original": records, "effective": 3, "errors": 0, "resumed": 0}
    assert res["n-shot"]["mmlu_anatomy"] == 1
    assert res["n-shot"]["truthfulqa_mc2"] == 0  # no few-shot split: stays zero-shot under --num-fewshot
    assert res["config"]["fewshot_seed"] == 1234  # lm-eval's key and default
    samples = [json.loads(x) for x in next(tmp_path.glob("samples_mmlu_anatomy_*.jsonl")).read_text().splitlines()]
    assert [s["doc_id"] for s in samples] == [0, 1, 2]
    assert samples[0]["arguments"][1][1] == " B" and len(samples[0]["resps"]) == 4
    assert r["acc,none"] == pytest.approx(sum(s["acc"] for s in samples) / 3)
    assert list(tmp_path.glob("calibration_mmlu_anatomy_*.png"))
    # Same command again: every sample comes from .partial, none is recomputed.
    for f in list(tmp_path.glob("results_*.json")):
        f.unlink()
    code, out, err = run(argv, capsys)
    res2 = json.loads(next(tmp_path.glob("results_*.json")).read_text())
    assert res2["n-samples"]["mmlu_anatomy"]["resumed"] == 3
    assert res2["results"]["mmlu_anatomy"]["acc,none"] == r["acc,none"]
    # A larger --limit computes only the new samples.
    argv[argv.index("--tasks") + 1] = "mmlu_anatomy"
    code, out, err = run([*argv[:-4], "--limit", "5", "--num-fewshot", "1", "--out", str(tmp_path)], capsys)
    newest = max(tmp_path.glob("results_*.json"), key=lambda p: p.stat().st_mtime)
    assert json.loads(newest.read_text())["n-samples"]["mmlu_anatomy"]["resumed"] == 3


def test_wikitext_perplexity(tiny_model_dir, shared_data, tmp_path, capsys):
    code, out, err = run(["--model", f"hf:{tiny_model_dir}", "--tasks", "wikitext", "--data-dir",
                          str(shared_data), "--limit", "1", "--out", str(tmp_path)], capsys)
    assert code == 0, err
    res = json.loads(next(tmp_path.glob("results_*.json")).read_text())["results"]["wikitext"]
    sample = json.loads(next(tmp_path.glob("samples_wikitext_*.jsonl")).read_text().splitlines()[0])
    nbytes = len(sample["doc"]["text"].encode("utf-8"))
    assert res["bits_per_byte,none"] == pytest.approx(-sample["loglikelihood"] / nbytes / math.log(2))
    assert res["byte_perplexity,none"] == pytest.approx(2 ** res["bits_per_byte,none"])
    assert res["bits_per_byte_stderr,none"] == "N/A"


def test_mmlu_group_score_sheet(tiny_model_dir, shared_data, tmp_path, capsys):
    code, out, err = run(["--model", f"hf:{tiny_model_dir}", "--tasks", "mmlu", "--data-dir",
                          str(shared_data), "--limit", "1", "--num-fewshot", "0", "--out", str(tmp_path)],
                         capsys)
    assert code == 0, err
    res = json.loads(next(tmp_path.glob("results_*.json")).read_text())
    assert len([t for t in res["results"] if t.startswith("mmlu_") and t not in res["groups"]]) == 57
    assert set(res["groups"]) == {"mmlu", "mmlu_stem", "mmlu_humanities", "mmlu_social_sciences", "mmlu_other"}
    stem = [res["results"][t]["acc,none"] for t in res["group_subtasks"]["mmlu_stem"]]
    assert res["groups"]["mmlu_stem"]["acc,none"] == pytest.approx(sum(stem) / len(stem))
    assert res["results"]["mmlu_abstract_algebra"]["alias"] == "mmlu_abstract_algebra"
    assert "|    - mmlu_abstract_algebra |" in out  # the printed table indents members
    assert list(tmp_path.glob("calibration_mmlu_2*.png"))


@pytest.mark.parametrize("override,message", [
    ({"--tasks": "mmlu_nope"}, "unknown task 'mmlu_nope'"),
    ({"--data-dir": "/nonexistent_dir"}, "is not a folder"),
    ({"--model": "gguf:x"}, "is not one of hf:..."),
    ({"--limit": "0"}, "--limit must be >= 1"),
    ({"--num-fewshot": "-1"}, "--num_fewshot must be >= 0"),
    ({"--chunk_size": "0"}, "--chunk_size must be >= 1"),
    ({"--model_args": "batch_size=0"}, "batch_size must be an integer >= 1"),
    ({"--model_args": "batch_size=abc"}, "batch_size='abc' must be an integer"),
    ({"--model_args": "device=cuda9"}, "device 'cuda9' is not a torch device name"),
    ({"--model_args": "device=cuda:99"}, "device 'cuda:99': this machine has"),
    ({"--model_args": "dtype=float8"}, "dtype 'float8' is not one of"),
])
def test_bad_input_is_one_line_exit_2(override, message, tiny_model_dir, shared_data, tmp_path, capsys):
    opts = {"--model": f"hf:{tiny_model_dir}", "--tasks": "mmlu_anatomy", "--data-dir": str(shared_data),
            "--out": str(tmp_path / "o"), **override}
    code, out, err = run([x for kv in opts.items() for x in kv], capsys)
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("inside", [False, True])
def test_an_out_that_is_a_file_or_under_one_is_one_line(inside, tiny_model_dir, shared_data, tmp_path, capsys):
    (tmp_path / "FILE").write_text("mine")
    out = tmp_path / "FILE" / "o" if inside else tmp_path / "FILE"
    code, _, err = run(["--model", f"hf:{tiny_model_dir}", "--tasks", "mmlu_anatomy", "--data-dir",
                        str(shared_data), "--out", str(out)], capsys)
    assert code == 2 and err.count("\n") == 1 and "FILE is a file, not a folder" in err, err
    assert (tmp_path / "FILE").read_text() == "mine"


@pytest.mark.parametrize("missing", ["--model", "--tasks", "--data-dir", "--out"])
def test_a_missing_option_is_named_in_its_canonical_spelling(missing, shared_data, tmp_path, capsys):
    opts = {"--model": "hf:/does/not/matter", "--tasks": "mmlu_anatomy", "--data-dir": str(shared_data),
            "--out": str(tmp_path / "o")}
    del opts[missing]
    code, out, err = run([x for kv in opts.items() for x in kv], capsys)
    assert code == 2 and f"{missing.replace('-', '_').replace('__', '--')} is required" in err


def test_a_failed_run_leaves_no_empty_output_behind(tiny_model_dir, shared_data, tmp_path, capsys):
    kept = tmp_path / "kept"
    kept.mkdir()
    for out in (tmp_path / "new" / "o", kept):
        code, _, err = run(["--model", f"hf:{tiny_model_dir}", "--tasks", "advbench", "--data_dir",
                            str(shared_data), "--limit", "1", "--grader", "nonsense:x", "--out", str(out)], capsys)
        assert code == 2 and "grader spec 'nonsense:x' is not" in err
    assert not (tmp_path / "new").exists()
    assert kept.is_dir() and not any(kept.iterdir())  # the user's folder stays, without an empty .partial


def test_an_unreadable_stored_sample_is_one_error_line(tiny_model_dir, shared_data, tmp_path, capsys):
    argv = ["--model", f"hf:{tiny_model_dir}", "--tasks", "mmlu_anatomy", "--data_dir", str(shared_data),
            "--limit", "1", "--num_fewshot", "0", "--out", str(tmp_path)]
    assert run(argv, capsys)[0] == 0
    (partial,) = (tmp_path / ".partial").glob("mmlu_anatomy.*.jsonl")
    partial.write_text("[1, 2]\n" + partial.read_text())
    code, out, err = run(argv, capsys)
    last = err.splitlines()[-1]  # after transformers' weight-loading bar
    assert code == 2 and "Traceback" not in err and last.startswith("augury eval: error: ")
    assert f"{partial}: line 1 is not a stored sample" in last


def test_missing_data_file_is_reported_before_the_model_loads(tmp_path, capsys):
    code, out, err = run(["--model", "hf:/does/not/matter", "--tasks", "truthfulqa_mc1", "--data-dir",
                          str(tmp_path), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "truthfulqa/mc_task.json' does not exist" in err


def test_folder_that_is_not_a_causal_lm(tmp_path, shared_data, capsys):
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    code, out, err = run(["--model", f"hf:{bert}", "--tasks", "mmlu_anatomy", "--data-dir", str(shared_data),
                          "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "is not a causal language model" in err
    code, out, err = run(["--model", f"hf:{tmp_path / 'none'}", "--tasks", "mmlu_anatomy", "--data-dir",
                          str(shared_data), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "does not exist" in err


def test_folder_without_weights(tiny_model_dir, shared_data, tmp_path, capsys):
    import shutil

    folder = tmp_path / "no_weights"
    folder.mkdir()
    for f in tiny_model_dir.iterdir():
        if not f.name.endswith(".safetensors"):
            shutil.copy(f, folder / f.name)
    code, out, err = run(["--model", f"hf:{folder}", "--tasks", "mmlu_anatomy", "--data-dir", str(shared_data),
                          "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "cannot load the model weights" in err


def _empty_choice_task(tmp_path, delimiter: str | None):
    """A multiple-choice task whose first option is the empty string; (data dir, task folder)."""
    data, tasks = tmp_path / "data", tmp_path / "tasks"
    data.mkdir(exist_ok=True)
    tasks.mkdir(exist_ok=True)
    rows = [{"q": f"Is {i} even?", "choices": ["", "no"], "gold": i % 2} for i in range(2)]
    (data / "toy.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tasks / "toy.yaml").write_text('task: toy_mc\nkind: multiple_choice\ndata: toy.jsonl\n'
                                    'doc_to_text: "{{q}}\\nAnswer:"\ndoc_to_choice: "{{choices}}"\n'
                                    'doc_to_target: "{{gold}}"\n'
                                    + (f"target_delimiter: {json.dumps(delimiter)}\n" if delimiter is not None
                                       else ""))
    return data, tasks


@pytest.mark.parametrize("delimiter, chat", [("", False), (None, True)])
def test_an_empty_choice_with_nothing_to_score_is_one_error_before_the_model_loads(delimiter, chat, tmp_path,
                                                                                   capsys):
    """An empty option scored with an empty delimiter (target_delimiter "", or --chat, which scores bare
    choices) has no tokens: one error naming the record, not a crash mid-run (the model is never loaded)."""
    data, tasks = _empty_choice_task(tmp_path, delimiter)
    code, _, err = run(["--model", "hf:/does/not/matter", "--tasks", "toy_mc", "--data-dir", str(data),
                        "--include-path", str(tasks), "--out", str(tmp_path / "o"), *(["--chat"] if chat else [])],
                       capsys)
    assert code == 2 and err.count("\n") == 1 and "choice 0 is empty" in err, err
    assert "record 0" in err and not (tmp_path / "o").exists()


def test_an_empty_choice_after_the_default_delimiter_is_scored(tiny_model_dir, tmp_path, capsys):
    """With target_delimiter " " (the default) an empty option is the continuation " ", which is scored."""
    data, tasks = _empty_choice_task(tmp_path, None)
    code, _, err = run(["--model", f"hf:{tiny_model_dir}", "--tasks", "toy_mc", "--data-dir", str(data),
                        "--include-path", str(tasks), "--out", str(tmp_path / "o")], capsys)
    assert code == 0, err


def test_partial_is_kept_after_an_interrupt_and_after_success_since_a_rerun_resumes_from_it(tmp_path, monkeypatch,
                                                                                          capsys):
    # OUT/.partial is the resume cache: an interrupted run keeps what it finished; a finished run keeps it too,
    # because a rerun, a larger --limit and the retry of failed samples all read it (the results JSON holds no
    # per-sample fingerprint to resume from)
    from augury.evals import backends
    from augury.evals.lm import LM

    class StopsAfter(LM):
        def __init__(self, allowed):
            self.allowed, self.scored = allowed, 0

        def loglikelihood(self, requests):
            if self.scored >= self.allowed:
                raise KeyboardInterrupt
            self.scored += len(requests) // 2
            return [(0.0, True)] * len(requests)

        def loglikelihood_rolling(self, texts):
            raise AssertionError("not used")

        def generate_until(self, requests):
            raise AssertionError("not used")

    (tmp_path / "t.jsonl").write_text("".join(json.dumps({"q": f"q{i}", "gold": 0}) + "\n" for i in range(4)))
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "t.yaml").write_text('task: t\nkind: multiple_choice\ndata: t.jsonl\ndoc_to_text: "{{q}}"'
                                               '\ndoc_to_choice: ["a", "b"]\ndoc_to_target: "{{gold}}"\n')
    out = tmp_path / "out"
    argv = ["--model", "fake", "--tasks", "t", "--data_dir", str(tmp_path), "--include_path",
            str(tmp_path / "tasks"), "--chunk_size", "2", "--out", str(out)]
    lm = StopsAfter(2)
    monkeypatch.setattr(backends, "load_model", lambda spec, **kw: lm)
    assert run(argv, capsys)[0] == 130  # Ctrl-C after the first chunk
    (partial,) = (out / ".partial").glob("t.*.jsonl")
    assert len(partial.read_text().splitlines()) == 2 and not list(out.glob("results_*.json"))
    lm = StopsAfter(2)  # resumes the two finished samples, scores the other two
    assert run(argv, capsys)[0] == 0 and lm.scored == 2
    assert len(partial.read_text().splitlines()) == 4
    lm = StopsAfter(0)  # the same command again scores nothing
    assert run(argv, capsys)[0] == 0 and lm.scored == 0
    res = json.loads(max(out.glob("results_*.json")).read_text())
    assert res["n-samples"]["t"]["resumed"] == 4


def test_fewshot_seed_is_recorded_and_samples_of_another_seed_are_not_resumed(tmp_path, monkeypatch, capsys):
    from augury.evals import backends
    from augury.evals.lm import LM

    class Echo(LM):
        def __init__(self):
            self.prompts = []

        def loglikelihood(self, requests):
            raise AssertionError("not used")

        def loglikelihood_rolling(self, texts):
            raise AssertionError("not used")

        def generate_until(self, requests):
            self.prompts += [r.context for r in requests]
            return ["a0"] * len(requests)

    (tmp_path / "t.jsonl").write_text("".join(json.dumps({"q": f"q{i}", "a": f"a{i}"}) + "\n" for i in range(8)))
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "t.yaml").write_text('task: t\nkind: generate\ndata: t.jsonl\nfewshot: t.jsonl\n'
                                               'num_fewshot: 2\ndoc_to_text: "{{q}}"\ndoc_to_target: "{{a}}"\n')
    out = tmp_path / "out"
    argv = ["--model", "fake", "--tasks", "t", "--data_dir", str(tmp_path), "--include_path",
            str(tmp_path / "tasks"), "--out", str(out)]

    def eval_with(*extra):
        lm = Echo()
        monkeypatch.setattr(backends, "load_model", lambda spec, **kw: lm)
        code, _, err = run([*argv, *extra], capsys)
        assert code == 0, err
        return lm, json.loads(max(out.glob("results_*.json"), key=lambda p: p.stat().st_mtime).read_text())

    default, res = eval_with()
    assert res["config"]["fewshot_seed"] == 1234
    seven, res = eval_with("--fewshot_seed", "7")
    assert res["config"]["fewshot_seed"] == 7  # lm-eval's key
    assert seven.prompts != default.prompts and res["n-samples"]["t"]["resumed"] == 0
    again, res = eval_with("--fewshot_seed", "7")
    assert again.prompts == [] and res["n-samples"]["t"]["resumed"] == 8
    back, res = eval_with()  # the default seed's samples are still there
    assert back.prompts == [] and res["n-samples"]["t"]["resumed"] == 8


def test_weights_rewritten_into_the_same_folder_are_scored_again_not_resumed(tiny_model_dir, shared_data, tmp_path,
                                                                             capsys):
    """The resume key named an hf folder by its path only: a model re-exported into the same folder got the old
    model's samples back, and its results were the old model's."""
    import shutil

    import torch
    from transformers import AutoModelForCausalLM

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    argv = ["--model", f"hf:{folder}", "--tasks", "mmlu_anatomy", "--data-dir", str(shared_data), "--limit", "3",
            "--out", str(tmp_path / "results")]
    assert run(argv, capsys)[0] == 0
    assert run(argv, capsys)[0] == 0  # unchanged: every sample resumed
    newest = max((tmp_path / "results").glob("results_*.json"), key=lambda p: p.stat().st_mtime_ns)
    assert json.loads(newest.read_text())["n-samples"]["mmlu_anatomy"]["resumed"] == 3
    model = AutoModelForCausalLM.from_pretrained(folder)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(-1.0)
    model.save_pretrained(folder)  # another model, same path
    for f in (tmp_path / "results").glob("results_*.json"):
        f.unlink()
    assert run(argv, capsys)[0] == 0
    res = json.loads(next((tmp_path / "results").glob("results_*.json")).read_text())
    assert res["n-samples"]["mmlu_anatomy"]["resumed"] == 0


@pytest.mark.parametrize("mode", ["bogus", "plain-as-roots"])
def test_a_bad_sandbox_mode_is_one_error_before_the_model_loads(mode, tmp_path, monkeypatch, capsys):
    # a code task checks its completions in the sandbox: a mistyped AUGURY_SANDBOX_MODE was a traceback, raised
    # only after the model had loaded and generated every completion of the first chunk
    import augury.evals.sandbox as sandbox

    (tmp_path / "p.jsonl").write_text(json.dumps({"prompt": "def f():\n", "test": "def check(c):\n    pass\n",
                                                  "entry_point": "f", "solution": "    pass\n"}) + "\n")
    (tmp_path / "code.yaml").write_text("task: toy_code\nkind: code\ndata: p.jsonl\ndoc_to_text: '{{prompt}}'\n"
                                        "doc_to_target: '{{solution}}'\n")
    monkeypatch.setenv(sandbox.MODE_VAR, mode)
    monkeypatch.setattr(sandbox, "_mode", None)
    code, _, err = run(["--model", "hf:/does/not/matter", "--tasks", "toy_code", "--data-dir", str(tmp_path),
                        "--include-path", str(tmp_path), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and err.count("\n") == 1 and f"AUGURY_SANDBOX_MODE={mode!r}" in err, err
    assert not (tmp_path / "o").exists()
