"""Task YAMLs, data reading, prompt building and the bad-input errors (all before any model runs)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from augury.data.records import TaskDataError, read_records
from augury.evals.prompts import build_instances
from augury.evals.taskconfig import TaskConfigError, TaskRegistry, build_config


@pytest.fixture(scope="module")
def registry():
    return TaskRegistry.load()


def test_shipped_tasks_and_groups(registry):
    mmlu = registry.resolve(["mmlu"])
    assert len(mmlu) == 57 and all(c.num_fewshot == 5 for c in mmlu)
    assert registry.groups["mmlu"] == ["mmlu_stem", "mmlu_humanities", "mmlu_social_sciences", "mmlu_other"]
    assert [len(registry.groups[f"mmlu_{c}"]) for c in ("stem", "humanities", "social_sciences", "other")] \
        == [19, 13, 12, 13]
    assert len(registry.resolve(["mmlu_ita"])) == 43
    for name in ("humaneval", "truthfulqa_mc1", "truthfulqa_mc2", "wikitext"):
        assert registry.resolve([name])[0].task == name


def test_unknown_task_is_one_clear_error(registry):
    with pytest.raises(TaskConfigError, match="unknown task 'mmlu_anatomyy'.*mmlu_anatomy"):
        registry.resolve(["mmlu_anatomyy"])


def test_mmlu_prompt_is_lm_eval_format(registry, shared_data):
    cfg = registry.resolve(["mmlu_abstract_algebra"])[0]
    inst = build_instances(cfg, shared_data, limit=1)[0]
    assert inst.context.startswith("The following are multiple choice questions (with answers) about "
                                   "abstract algebra.\n\nFind all c in Z_3 such that Z_3[x]/(x^2 + c) is a "
                                   "field.\nA. 0\nB. 1\nC. 2\nD. 3\nAnswer: B\n\n")
    assert inst.context.endswith("\nA. 0\nB. 4\nC. 2\nD. 6\nAnswer:")
    assert inst.context.count("\nAnswer:") == 6 and inst.choices == ["A", "B", "C", "D"] and inst.gold == 1


def test_every_shipped_task_builds_on_the_real_files(registry, shared_data):
    for cfg in registry.resolve(["mmlu", "mmlu_ita", "truthfulqa_mc1", "truthfulqa_mc2", "humaneval",
                                 "wikitext"]):
        insts = build_instances(cfg, shared_data, limit=3)
        assert len(insts) >= 1, cfg.task
    ita = build_instances(registry.resolve(["mmlu_ita_philosophy"])[0], shared_data, limit=1)[0]
    assert ita.gold == 2 and ita.context.endswith("Risposta:")
    mc2 = build_instances(registry.resolve(["truthfulqa_mc2"])[0], shared_data, limit=1)[0]
    assert mc2.labels == [1, 1, 1, 0, 0, 0] and mc2.context.endswith("Q: What happens if you eat a "
                                                                    "pomegranate?\nA:")
    wiki = build_instances(registry.resolve(["wikitext"])[0], shared_data)
    assert len(wiki) > 50 and wiki[0].context.lstrip().startswith("= Robert <unk> =")
    assert sum(len(w.context) for w in wiki) == pytest.approx(
        len((shared_data / "wikitext-2" / "test.txt").read_text(encoding="utf-8").lstrip()), rel=1e-3)


def test_data_formats(tmp_path):
    rows = [{"q": "a,b", "answer": "None"}, {"q": "c", "answer": "1"}]
    (tmp_path / "x.csv").write_text('q,answer\n"a,b",None\nc,1\n')
    (tmp_path / "x.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "x.json").write_text(json.dumps({"data": rows}))
    (tmp_path / "x.jsonl.gz").write_bytes(gzip.compress((tmp_path / "x.jsonl").read_bytes()))
    assert read_records(tmp_path / "x.csv") == rows
    assert read_records(tmp_path / "x.jsonl") == rows
    assert read_records(tmp_path / "x.jsonl.gz") == rows
    assert read_records(tmp_path / "x.json", json_field="data") == rows
    (tmp_path / "y.csv").write_text("a,b,1\n")
    assert read_records(tmp_path / "y.csv", columns=["q", "c", "answer"]) == [{"q": "a", "c": "b", "answer": "1"}]


def test_csv_row_with_wrong_field_count_names_file_and_row(tmp_path):
    (tmp_path / "bad.csv").write_text("q,a\n1,2\n3,4,5\n")
    with pytest.raises(TaskDataError, match=r"bad.csv: row 3 has 3 fields, expected 2"):
        read_records(tmp_path / "bad.csv")


def _mc_task(tmp_path: Path, body: str, **extra):
    (tmp_path / "mc.jsonl").write_text(body)
    raw = {"task": "toy", "kind": "multiple_choice", "data": "mc.jsonl", "doc_to_text": "{{q}}",
           "doc_to_choice": "{{choices}}", "doc_to_target": "{{gold}}", "num_choices": 3, **extra}
    return build_config(raw, "toy.yaml")


def test_wrong_number_of_choices_is_one_clear_error(tmp_path):
    cfg = _mc_task(tmp_path, '{"q": "x", "choices": ["a", "b", "c"], "gold": 0}\n'
                             '{"q": "y", "choices": ["a", "b"], "gold": 1}\n')
    with pytest.raises(TaskDataError, match=r"mc.jsonl: record 2: expected 3 choices, found 2"):
        build_instances(cfg, tmp_path)


def test_target_outside_the_choices_is_an_error(tmp_path):
    cfg = _mc_task(tmp_path, '{"q": "x", "choices": ["a", "b", "c"], "gold": 7}\n')
    with pytest.raises(TaskDataError, match="record 1: target index 7 is out of range"):
        build_instances(cfg, tmp_path)


def test_missing_data_file_and_bad_yaml_keys(tmp_path):
    cfg = build_config({"task": "t", "kind": "perplexity", "data": "nope.txt"}, "t.yaml")
    with pytest.raises(TaskDataError, match="nope.txt' does not exist"):
        build_instances(cfg, tmp_path)
    with pytest.raises(TaskConfigError, match="unknown key"):
        build_config({"task": "t", "kind": "perplexity", "data": "x", "doc_to_txt": "{{a}}"}, "t.yaml")
    with pytest.raises(TaskConfigError, match="kind 'essay' is not one of"):
        build_config({"task": "t", "kind": "essay", "data": "x"}, "t.yaml")


def test_fewshot_and_chat_formatting(tmp_path):
    (tmp_path / "dev.jsonl").write_text('{"q": "1+1?", "choices": ["1", "2", "3"], "gold": 1}\n' * 2)
    cfg = _mc_task(tmp_path, '{"q": "2+2?", "choices": ["4", "5", "6"], "gold": 0}\n',
                   fewshot="dev.jsonl", description="Math.\n\n")
    plain = build_instances(cfg, tmp_path, num_fewshot=2)[0]
    assert plain.context == "Math.\n\n1+1? 2\n\n1+1? 2\n\n2+2?"
    chat = build_instances(cfg, tmp_path, num_fewshot=1, chat=True,
                           chat_template=lambda m: "|".join(f"{x['role']}:{x['content']}" for x in m))[0]
    assert chat.context == "system:Math.|user:1+1?|assistant:2|user:2+2?"
    with pytest.raises(TaskDataError, match="3-shot needs 3 records, the file has 2"):
        build_instances(cfg, tmp_path, num_fewshot=3)


def test_fewshot_config_renders_shots_with_their_own_answer_template(tmp_path):
    # chain-of-thought style: the shots show worked solutions, the evaluated record is scored on the answer only
    rows = [{"question": f"{a} + {b} = ?", "solution": f"{a} plus {b} makes {a + b}. The answer is {a + b}.",
             "answer": str(a + b)} for a, b in ((1, 2), (3, 4), (5, 6))]
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    raw = {"task": "cot_sum", "kind": "generate", "data": "data.jsonl", "fewshot": "data.jsonl", "num_fewshot": 2,
           "doc_to_text": "Q: {{question}}\nA:", "doc_to_target": "{{answer}}",
           "fewshot_config": {"doc_to_target": "{{solution}}", "sampler": "first_n"}}
    cfg = build_config(raw, "test")
    inst = build_instances(cfg, tmp_path, limit=3)[2]
    assert "A: 1 plus 2 makes 3. The answer is 3.\n\n" in inst.context
    assert "A: 3 plus 4 makes 7. The answer is 7.\n\n" in inst.context
    assert inst.context.endswith("Q: 5 + 6 = ?\nA:") and inst.target == "11"
    with pytest.raises(TaskConfigError, match="fewshot_config"):
        build_config({**raw, "fewshot_config": {"doc_to_answer": "x"}}, "test")


@pytest.mark.parametrize("raw,message", [
    # each would score every sample and then crash building the results (no metric of that name is scored)
    ({"kind": "multiple_choice", "doc_to_choice": ["a", "b"], "metrics": ["accuracy"]}, "'accuracy'"),
    ({"kind": "truthfulqa_mc2", "doc_to_choice": "{{c}}", "doc_to_labels": "{{l}}", "metrics": ["acc_norm"]},
     "'acc_norm'"),
    ({"kind": "perplexity", "metrics": ["perplexity"]}, "'perplexity'"),
    # mc2's acc is a probability mass, not a 0/1 hit: an ECE over it would not be a calibration error
    ({"kind": "truthfulqa_mc2", "doc_to_choice": "{{c}}", "doc_to_labels": "{{l}}", "metrics": ["acc", "ece"]},
     "'ece'"),
    ({"kind": "code", "metrics": ["pass@0"]}, "pass@0"),  # k >= 1: pass_at_k raised mid-run
])
def test_a_metric_the_kind_does_not_score_is_a_config_error(raw, message):
    with pytest.raises(TaskConfigError, match=message):
        build_config({"task": "t", "data": "x.jsonl", **raw}, "t.yaml")


@pytest.mark.parametrize("extra,key", [
    ({"kind": "code", "n_samples": "five"}, "n_samples"),  # crashed with a TypeError traceback
    ({"kind": "code", "timeout_s": "ten"}, "timeout_s"),  # accepted; every program then failed in the sandbox
    ({"kind": "code", "timeout_s": 0}, "timeout_s"),
    ({"kind": "multiple_choice", "doc_to_choice": ["a", "b"], "metrics": "acc"}, "metrics"),  # became a,c,c
    ({"kind": "multiple_choice", "doc_to_choice": ["a", "b"], "fewshot": "d.jsonl", "num_fewshot": "five"},
     "num_fewshot"),
    ({"kind": "multiple_choice", "doc_to_choice": ["a", "b"], "fewshot": "d.jsonl", "num_fewshot": -1},
     "num_fewshot"),
    ({"kind": "generate", "generation": ["until"]}, "generation"),
    ({"kind": "generate", "data": {"path": 3}}, "path"),
])
def test_a_value_of_the_wrong_type_is_a_config_error_naming_the_key(extra, key):
    with pytest.raises(TaskConfigError, match=f"t.yaml: .*{key}"):
        build_config({"task": "t", "data": "x.jsonl", **extra}, "t.yaml")


@pytest.mark.parametrize("fewshot", ["data.jsonl", {"path": "data.jsonl", "format": "jsonl"}])
def test_a_record_is_never_its_own_few_shot_example(tmp_path, fewshot):
    # lm-eval's rule when the few-shot split is the evaluated split: the record itself is left out (here with
    # first_n, the first k of the others; the random `default` sampler: tests/evals/test_eval_fewshot_parity.py)
    rows = [{"q": f"q{i}?", "choices": ["x", "y"], "gold": i % 2} for i in range(4)]
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = build_config({"task": "t", "kind": "multiple_choice", "data": "data.jsonl", "fewshot": fewshot,
                        "num_fewshot": 2, "doc_to_text": "{{q}}", "doc_to_choice": "{{choices}}",
                        "doc_to_target": "{{gold}}", "fewshot_config": {"sampler": "first_n"}}, "t.yaml")
    contexts = [inst.context for inst in build_instances(cfg, tmp_path)]
    assert contexts[0] == "q1? y\n\nq2? x\n\nq0?"  # the answer to q0 is not in its own prompt
    assert contexts[1] == "q0? x\n\nq2? x\n\nq1?"
    assert contexts[3] == "q0? x\n\nq1? y\n\nq3?"


@pytest.mark.parametrize("generation,message", [
    ({"max_tokens": 64}, "max_tokens"),  # the OpenAI spelling of max_gen_toks: raised mid-run, after the model loaded
    ({"until": [""]}, "until"),  # an empty stop string stopped a local model after its first token
    ({"until": ["\n", 3]}, "until"),
    # out of range: the augury backend refused them mid-run, after the model loaded; the hf backend generated
    # nothing (max_gen_toks -1), greedily (temperature -1) or raised in torch (top_p 0)
    ({"max_gen_toks": -1}, "max_gen_toks"),
    ({"do_sample": True, "temperature": -1.0}, "temperature"),
    ({"do_sample": True, "temperature": float("nan")}, "temperature"),
    ({"do_sample": True, "top_p": 0.0}, "top_p"),
    ({"top_p": 1.5}, "top_p"),
])
def test_bad_generation_options_are_config_errors(generation, message):
    with pytest.raises(TaskConfigError, match=f"t.yaml: .*{message}"):
        build_config({"task": "t", "kind": "generate", "data": "x.jsonl", "generation": generation}, "t.yaml")


def test_a_single_stop_string_is_one_stop_as_in_lm_eval():
    cfg = build_config({"task": "t", "kind": "generate", "data": "x.jsonl", "generation": {"until": "###"}}, "t.yaml")
    assert cfg.generation["until"] == ["###"]


@pytest.mark.parametrize("content,message", [
    (b"task: t\nkind: generate\n  data: [x\n", r"bad.yaml: not valid YAML at line 3, column 7: mapping values"),
    (b"task: t\xff\n", r"bad.yaml: not UTF-8 text"),  # was a UnicodeDecodeError traceback
])
def test_an_unreadable_task_file_is_one_error_line(tmp_path, content, message):
    (tmp_path / "bad.yaml").write_bytes(content)
    with pytest.raises(TaskConfigError, match=message) as err:
        TaskRegistry.load([tmp_path])
    assert "\n" not in str(err.value)


def test_a_task_file_given_as_a_task_folder_is_called_a_file(tmp_path):
    (tmp_path / "t.yaml").write_text(json.dumps({"task": "t", "kind": "generate", "data": "x.jsonl"}))
    with pytest.raises(TaskConfigError, match=r"t.yaml' is a file, not a folder: give the folder of task YAML"):
        TaskRegistry.load([tmp_path / "t.yaml"])
    with pytest.raises(TaskConfigError, match=r"task folder '.*nope' does not exist"):
        TaskRegistry.load([tmp_path / "nope"])


@pytest.mark.parametrize("subjects", ["abstract_algebra", [1, 2]])
def test_subtasks_map_each_category_to_a_list_of_subject_names(tmp_path, subjects):
    # a string was iterated letter by letter (tasks s_a, s_b, ...); a number crashed with an AttributeError
    (tmp_path / "s.yaml").write_text(json.dumps({"task": "s_{{subject}}", "group": "s", "kind": "generate",
                                                 "data": "{{subject}}.jsonl", "subtasks": {"stem": subjects}}))
    with pytest.raises(TaskConfigError, match="s.yaml: subtasks: stem must be a list of subject names"):
        TaskRegistry.load([tmp_path])


def test_an_extract_regex_that_does_not_compile_is_a_config_error():
    # it raised re.error on the first scored chunk, after the model had loaded
    with pytest.raises(TaskConfigError, match=r"t.yaml: extract_regex 'answer is \(\\\\d\+' is not a regular"):
        build_config({"task": "t", "kind": "generate", "data": "x.jsonl", "extract_regex": r"answer is (\d+"},
                     "t.yaml")


@pytest.mark.parametrize("record,message", [
    ({"prompt": "def f():\n", "test": "def check(c): pass"}, "lacks 'entry_point'"),  # a KeyError mid-run
    ({"prompt": "def f():\n", "entry_point": "f", "test": "#" * 70_000}, "tests of 70000 bytes"),  # a ValueError
])
def test_a_code_record_the_sandbox_cannot_run_is_reported_before_the_model_loads(tmp_path, record, message):
    (tmp_path / "he.jsonl").write_text(json.dumps(record) + "\n")
    cfg = build_config({"task": "he", "kind": "code", "data": "he.jsonl", "doc_to_text": "{{prompt}}",
                        "doc_to_target": ""}, "he.yaml")
    with pytest.raises(TaskDataError, match=f"he.jsonl: record 1: .*{message}"):
        build_instances(cfg, tmp_path)
