"""The resume fingerprint of a graded task (`augury.safety.evaluation.resume_key`) follows every kind of grader:
a grader given by code (`rules`, `rules:MODULE:ATTR`), by training data (`offline`) or by weights (`augury:RUN`,
`hf:PATH`) that changed between two runs must rescore the samples rather than reuse the old verdicts."""

from __future__ import annotations

import json
import os

from augury.evals.runner import run_fingerprint
from augury.evals.taskconfig import build_config
from augury.io import sha256_file


def _fingerprint(grader: str, model_args: str = "") -> str:
    cfg = build_config({"task": "s", "kind": "graded", "data": "x.jsonl", "grader": grader,
                        "grader_model_args": model_args, "rubric": "default"}, "s.yaml")
    return run_fingerprint(cfg, "hf:m", {}, None, True)


def test_a_rules_module_edited_between_two_runs_rescores(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "resume_rules_helper.py").write_text("def refuses(p, r, k):\n    return 'no' in r\n")
    module = tmp_path / "resume_rules_mod.py"
    module.write_text("from resume_rules_helper import refuses\n\nRULES = {'refusal': refuses}\n")
    before = _fingerprint("rules:resume_rules_mod:RULES")
    assert _fingerprint("rules:resume_rules_mod:RULES") == before  # unchanged source: resumed
    module.write_text(module.read_text() + "# stricter now\n")
    edited = _fingerprint("rules:resume_rules_mod:RULES")
    assert edited != before
    # a rule defined in another module than the one the spec names
    (tmp_path / "resume_rules_helper.py").write_text("def refuses(p, r, k):\n    return 'cannot' in r\n")
    assert _fingerprint("rules:resume_rules_mod:RULES") != edited


def test_the_shipped_rules_are_keyed_by_their_source(tmp_path, monkeypatch):
    """augury's own rules change between versions under the same `rules` spec."""
    import augury.safety.rules as rules

    before = _fingerprint("rules")
    assert _fingerprint("rules") == before
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "resume_shipped_rules.py").write_text("def refuses(p, r, k):\n    return 'no' in r\n")
    import resume_shipped_rules

    # a newer augury whose shipped rule lives in (or was edited to) other source
    monkeypatch.setattr(rules, "RUBRIC_RULES", {**rules.RUBRIC_RULES, "extra": {"x": resume_shipped_rules.refuses}})
    assert _fingerprint("rules") != before


def test_the_offline_grader_is_keyed_by_its_training_data(tmp_path, monkeypatch):
    train = tmp_path / "rbr-gold" / "train.jsonl"
    train.parent.mkdir()
    train.write_text('{"id": 1}\n')
    monkeypatch.setenv("AUGURY_SHARED_DATA", str(tmp_path))
    before = _fingerprint("offline")
    assert _fingerprint("offline") == before
    train.write_text('{"id": 1}\n{"id": 2}\n')  # the gold data grew: the classifier trained on it differs
    assert _fingerprint("offline") != before


def test_an_hf_judge_is_keyed_by_its_weights_files(tmp_path):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"\0" * 64)
    (tmp_path / "config.json").write_text("{}")
    before = _fingerprint(f"hf:{tmp_path}")
    assert _fingerprint(f"hf:{tmp_path}") == before
    weights.write_bytes(b"\1" * 64)  # same size, rewritten: its modification time moved
    os.utime(weights, ns=(1, 1))
    assert _fingerprint(f"hf:{tmp_path}") != before


def _checkpoint(run, step: int, payload: bytes):
    ckpt = run / "checkpoints" / f"step_{step:08d}"
    ckpt.mkdir(parents=True)
    (ckpt / "model.safetensors").write_bytes(payload)
    (ckpt / "manifest.json").write_text(json.dumps({"files": {"model.safetensors":
                                                              sha256_file(ckpt / "model.safetensors")}}))
    return ckpt


def test_an_augury_judge_is_keyed_by_the_checkpoint_it_loads(tmp_path):
    run = tmp_path / "judge"
    run.mkdir()
    (run / "config.yaml").write_text("model: {}\n")
    first = _checkpoint(run, 10, b"a")
    before = _fingerprint(f"augury:{run}")
    pinned = _fingerprint(f"augury:{run}", f"checkpoint={first}")
    assert _fingerprint(f"augury:{run}") == before
    _checkpoint(run, 20, b"b")  # trained on: the judge now loads the newer checkpoint
    assert _fingerprint(f"augury:{run}") != before
    assert _fingerprint(f"augury:{run}", f"checkpoint={first}") == pinned  # still reads the one it names
    (run / "tokenizer.json").write_text("{}")  # a retokenised judge reads other ids
    assert _fingerprint(f"augury:{run}", f"checkpoint={first}") != pinned
