"""Few-shot examples are the ones lm-eval 0.4 picks for the same task and records: its `default` sampler (random,
seeded with its fewshot seed 1234, one generator over the task's records in order, the record itself left out
when the few-shot split is the evaluated one) and `first_n`. Checked against lm-eval's own task and sampler."""

from __future__ import annotations

import json

import pytest

from augury.evals.fewshot import FEWSHOT_SEED, ShotSampler
from augury.evals.prompts import build_instances
from augury.evals.taskconfig import TaskConfigError, TaskRegistry, build_config

ROWS = [{"q": f"q{i}", "a": f"a{i}"} for i in range(12)]
DEV = [{"q": f"dev{i}", "a": f"d{i}"} for i in range(8)]


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _lm_eval_contexts(fewshot_split: str, k: int, sampler: str | None, limit: int | None,
                      seed: int = FEWSHOT_SEED) -> list[str]:
    """The prompts lm-eval builds for ROWS (its test split) with shots from `fewshot_split` (DEV is "dev"),
    seeded as its evaluator seeds every task (fewshot_random_seed, 1234 by default)."""
    pytest.importorskip("lm_eval", reason="lm-eval is not installed (pip install -e '.[bench]')")
    datasets = pytest.importorskip("datasets")
    from lm_eval.api.task import ConfigurableTask
    from lm_eval.defaults import DEFAULT_OTHER_SEED

    def splits(**_):
        return datasets.DatasetDict({"test": datasets.Dataset.from_list(ROWS),
                                     "dev": datasets.Dataset.from_list(DEV)})

    cfg = {"task": "t", "custom_dataset": splits, "test_split": "test", "fewshot_split": fewshot_split,
           "output_type": "generate_until", "doc_to_text": "{{q}}", "doc_to_target": "{{a}}", "num_fewshot": k,
           "metric_list": [{"metric": "exact_match"}]}
    if sampler is not None:
        cfg["fewshot_config"] = {"sampler": sampler}
    task = ConfigurableTask(config=cfg)
    assert DEFAULT_OTHER_SEED == FEWSHOT_SEED
    task.set_fewshot_seed(seed)
    task.build_all_requests(limit=limit)
    return [inst.args[0] for inst in task.instances]


@pytest.mark.parametrize("fewshot_split,sampler,limit", [
    ("test", None, None),  # no sampler named: lm-eval's default, random, the record left out of its own shots
    ("test", "default", 5),  # --limit: the first records get the same shots as in a full run
    ("dev", "default", None),  # another split: nothing left out
    ("test", "first_n", None),
    ("dev", "first_n", 4),
])
def test_shots_are_the_ones_lm_eval_picks(tmp_path, fewshot_split, sampler, limit):
    _write(tmp_path / "data.jsonl", ROWS)
    _write(tmp_path / "dev.jsonl", DEV)
    raw = {"task": "t", "kind": "generate", "data": "data.jsonl",
           "fewshot": {"test": "data.jsonl", "dev": "dev.jsonl"}[fewshot_split], "num_fewshot": 3,
           "doc_to_text": "{{q}}", "doc_to_target": "{{a}}"}
    if sampler is not None:
        raw["fewshot_config"] = {"sampler": sampler}
    ours = [inst.context for inst in build_instances(build_config(raw, "t.yaml"), tmp_path, limit=limit)]
    assert ours == _lm_eval_contexts(fewshot_split, 3, sampler, limit)
    if sampler != "first_n":  # not the split's first k for every record
        assert len({c.rsplit("\n\n", 1)[0] for c in ours}) > 1


@pytest.mark.parametrize("first_n", [False, True])
def test_duplicates_of_the_record_are_all_left_out_as_lm_eval_does(first_n):
    # copies of the record in the pool: lm-eval drops every copy, resampling when too few remain
    pytest.importorskip("lm_eval", reason="lm-eval is not installed (pip install -e '.[bench]')")
    from lm_eval.api.samplers import ContextSampler, FirstNSampler

    pool = [{"q": "x"}] * 5 + [{"q": f"y{i}"} for i in range(4)]
    theirs = (FirstNSampler if first_n else ContextSampler)(pool, rnd=FEWSHOT_SEED)
    ours = ShotSampler(pool, "first_n" if first_n else "default")
    for doc in [{"q": "x"}, {"q": "y1"}, {"q": "z"}] * 4:
        assert [pool[i] for i in ours.sample(3, doc)] == list(theirs.sample(3, eval_doc=doc))
    assert [pool[i] for i in ours.sample(4)] == list(theirs.sample(4))


def test_too_few_shots_once_the_record_is_left_out_is_an_error(tmp_path):
    from augury.data.records import TaskDataError

    _write(tmp_path / "data.jsonl", [{"q": "x", "a": "1"}] * 3 + [{"q": "y", "a": "2"}])
    cfg = build_config({"task": "t", "kind": "generate", "data": "data.jsonl", "fewshot": "data.jsonl",
                        "num_fewshot": 2, "doc_to_text": "{{q}}", "doc_to_target": "{{a}}",
                        "fewshot_config": {"sampler": "first_n"}}, "t.yaml")
    with pytest.raises(TaskDataError, match="record 1.*2-shot.*1 other"):
        build_instances(cfg, tmp_path)


def test_an_unknown_sampler_is_a_config_error():
    with pytest.raises(TaskConfigError, match="t.yaml: fewshot_config.sampler 'balanced'.*default, first_n"):
        build_config({"task": "t", "kind": "generate", "data": "d.jsonl", "fewshot": "d.jsonl",
                      "fewshot_config": {"sampler": "balanced"}}, "t.yaml")


@pytest.mark.parametrize("group", ["mmlu", "mmlu_ita"])
def test_shipped_mmlu_tasks_keep_lm_eval_mmlus_first_n_shots(shared_data, group):
    # lm-eval's mmlu asks for `sampler: first_n`: the dev split's first five, in order, for every question
    registry = TaskRegistry.load()
    for cfg in registry.resolve([group])[:3]:
        assert cfg.fewshot_config.get("sampler") == "first_n"
        instances = build_instances(cfg, shared_data, limit=4)
        first = instances[0].context
        shots = first[:first.rfind("\n\n") + 2]
        assert all(inst.context.startswith(shots) for inst in instances)
        assert shots.count("Answer:" if group == "mmlu" else "Risposta:") == 5


@pytest.mark.parametrize("fewshot_split", ["test", "dev"])
def test_the_task_filter_applies_to_the_few_shot_split_too(tmp_path, fewshot_split):
    # lm-eval runs a task's process_docs on every split, the few-shot one included (FewshotConfig inherits it):
    # a row the filter drops is never evaluated and never shown as an example
    rows = [{"q": f"q{i}", "a": f"a{i}", "keep": "yes"} for i in range(6)]
    dropped_rows = [{"q": f"DROPPED{i}", "a": f"x{i}", "keep": "no"} for i in range(6)]
    dev = [r for pair in zip([{**r, "q": "dev" + r["q"]} for r in rows], dropped_rows) for r in pair]
    test = [r for pair in zip(rows, dropped_rows) for r in pair]
    _write(tmp_path / "data.jsonl", test)
    _write(tmp_path / "dev.jsonl", dev)
    cfg = build_config({"task": "t", "kind": "generate", "data": "data.jsonl", "filter": {"keep": "yes"},
                        "fewshot": {"test": "data.jsonl", "dev": "dev.jsonl"}[fewshot_split], "num_fewshot": 3,
                        "doc_to_text": "{{q}}", "doc_to_target": "{{a}}"}, "t.yaml")
    ours = [inst.context for inst in build_instances(cfg, tmp_path)]
    assert len(ours) == 6
    assert not [c for c in ours if "DROPPED" in c]

    pytest.importorskip("lm_eval", reason="lm-eval is not installed (pip install -e '.[bench]')")
    datasets = pytest.importorskip("datasets")
    from lm_eval.api.task import ConfigurableTask

    task = ConfigurableTask(config={
        "task": "t", "custom_dataset": lambda **_: datasets.DatasetDict(
            {"test": datasets.Dataset.from_list(test), "dev": datasets.Dataset.from_list(dev)}),
        "test_split": "test", "fewshot_split": fewshot_split, "output_type": "generate_until",
        "process_docs": lambda ds: ds.filter(lambda d: d["keep"] == "yes"),
        "doc_to_text": "{{q}}", "doc_to_target": "{{a}}", "num_fewshot": 3,
        "metric_list": [{"metric": "exact_match"}]})
    task.set_fewshot_seed(FEWSHOT_SEED)
    task.build_all_requests()
    assert ours == [inst.args[0] for inst in task.instances]


def test_a_filter_column_the_few_shot_file_lacks_is_an_error(tmp_path):
    from augury.data.records import TaskDataError

    _write(tmp_path / "data.jsonl", [{"q": f"q{i}", "a": "1", "keep": "yes"} for i in range(3)])
    _write(tmp_path / "dev.jsonl", DEV)
    cfg = build_config({"task": "t", "kind": "generate", "data": "data.jsonl", "filter": {"keep": "yes"},
                        "fewshot": "dev.jsonl", "num_fewshot": 1, "doc_to_text": "{{q}}",
                        "doc_to_target": "{{a}}"}, "t.yaml")
    with pytest.raises(TaskDataError, match="dev.jsonl: task 't' filters on column 'keep'"):
        build_instances(cfg, tmp_path)


def test_another_fewshot_seed_picks_the_shots_lm_eval_picks_under_it(tmp_path):
    # lm-eval's fewshot_random_seed (`--seed`'s 4th value); augury eval's --fewshot_seed
    _write(tmp_path / "data.jsonl", ROWS)
    cfg = build_config({"task": "t", "kind": "generate", "data": "data.jsonl", "fewshot": "data.jsonl",
                        "num_fewshot": 3, "doc_to_text": "{{q}}", "doc_to_target": "{{a}}"}, "t.yaml")
    ours = [inst.context for inst in build_instances(cfg, tmp_path, fewshot_seed=7)]
    assert ours != [inst.context for inst in build_instances(cfg, tmp_path)]
    assert ours == _lm_eval_contexts("test", 3, None, None, seed=7)
