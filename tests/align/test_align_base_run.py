"""`augury align --base_run RUN` starts the safety pipeline from a run pretrained elsewhere (a larger model, another
corpus): no `pretrain` stage, SFT fine-tunes that run, and the report's base column is that run."""

from __future__ import annotations

import json

import pytest


def _stub_stages(monkeypatch, seen: dict):
    """A Pipeline whose stages only record what they were given and write what marks them finished."""
    import augury.align.sft as sft
    from augury.align.pipeline import Pipeline
    from augury.io import atomic_write_json

    def finished(path, **manifest):
        return lambda self: atomic_write_json(self.out / path, manifest) or {}

    def fake_sft(cfg, log=print):
        seen["sft_base_run"] = cfg.base_run
        atomic_write_json(f"{cfg.out}/manifest.json", {"kind": "sft", "finished": True})

    def fake_evaluate(self, name):
        seen.setdefault("evaluated", {})[name] = str(self.model_run(name))
        atomic_write_json(self.out / "eval" / f"{name}.json", {})

    monkeypatch.setattr(Pipeline, "make_data", finished("data/manifest.json", rows={}))
    monkeypatch.setattr(Pipeline, "train_grader", finished("grader/report.json"))
    monkeypatch.setattr(Pipeline, "pretrain", lambda self: pytest.fail("pretrained although --base_run was given"))
    monkeypatch.setattr(sft, "train_sft", fake_sft)
    monkeypatch.setattr("augury.align.pipeline.last_metric", lambda out, key: None)
    monkeypatch.setattr(Pipeline, "reward_model", finished("rm/manifest.json", finished=True))
    monkeypatch.setattr(Pipeline, "rl", finished("rl/manifest.json", finished=True))
    monkeypatch.setattr(Pipeline, "evaluate", fake_evaluate)
    monkeypatch.setattr(Pipeline, "report", lambda self: (self.out / "report.md").write_text("report") and {})


def test_align_fine_tunes_and_evaluates_the_given_base_run(chat_run, tmp_path, monkeypatch, capsys, shared_data):
    from augury.cli import main

    seen: dict = {}
    _stub_stages(monkeypatch, seen)
    out = tmp_path / "align"
    assert main(["align", "--out", str(out), "--base_run", str(chat_run)]) == 0
    stages = [json.loads(line)["stage"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert stages[:4] == ["data", "grader", "sft", "rm"] and "pretrain" not in stages
    assert not (out / "pretrain").exists()
    assert seen["sft_base_run"] == str(chat_run)
    assert seen["evaluated"] == {"base": str(chat_run), "sft": str(out / "sft"), "rlhf": str(out / "rl")}
    # the finished run asked for again from another base: refused naming the setting, before anything runs
    other = tmp_path / "other"
    other.mkdir()
    (other / "tokenizer.json").write_text((chat_run / "tokenizer.json").read_text())
    capsys.readouterr()
    for again in (["--base_run", str(other)], []):  # nor continued as if it had pretrained its own
        assert main(["align", "--out", str(out), *again]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "finished stage 'sft'" in err and "base_run" in err
    assert not (out / "pretrain").exists()


def test_a_base_run_that_is_no_policy_is_refused_before_anything_runs(tmp_path, shared_data):
    from augury.align.pipeline import AlignConfig

    with pytest.raises(ValueError, match=r"--base_run .* is not an augury run \(no tokenizer.json\)"):
        AlignConfig(base_run=str(tmp_path)).validate()
    rm = tmp_path / "rm"
    rm.mkdir()
    (rm / "tokenizer.json").write_text("{}")
    (rm / "manifest.json").write_text(json.dumps({"kind": "reward_model"}))
    with pytest.raises(ValueError, match=r"--base_run .*rm is a reward model \(an augury rm run\), not a policy"):
        AlignConfig(base_run=str(rm)).validate()


def test_the_report_names_the_base_model():
    from augury.align.pipeline import AlignConfig
    from augury.align.report import render_report

    families = {"families": {"held_harmful": ["a"], "held_safe": ["b"]}}
    assert "Base model: the run runs/big." in render_report({}, AlignConfig(base_run="runs/big"), families)[0]
    assert "Base model: pretrained by this run." in render_report({}, AlignConfig(), families)[0]
