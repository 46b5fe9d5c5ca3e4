"""Staged runs (augury align, augury rl-demo): finished stages are skipped, and one made with other settings is
refused before anything runs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from augury.align.runs import Stage, StageConfigError, StagedRun, settings
from augury.io import read_jsonl


@dataclass
class Section:
    steps: int = 2
    lr: float = 0.1


@dataclass
class Config:
    out: str = ""
    seed: int = 0
    first: Section = field(default_factory=Section)
    second: Section = field(default_factory=Section)


class TwoStages(StagedRun):
    kind = "test"

    def run(self):
        def make(name):
            def write():
                (self.out / name).write_text("done")
                self.ran.append(name)
            return write

        self.ran = []
        self.run_stages([Stage(n, lambda n=n: (self.out / n).is_file(), make(n), settings(self.cfg, "seed", n))
                         for n in ("first", "second")])
        return self.ran


def test_settings_are_stored_and_a_rerun_with_the_same_ones_skips_finished_stages(tmp_path):
    cfg = Config(out=str(tmp_path / "run"))
    assert TwoStages(cfg, log=lambda *_: None).run() == ["first", "second"]
    records = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert records[0]["config"] == {"seed": 0, "first": {"steps": 2, "lr": 0.1}}
    assert TwoStages(cfg, log=lambda *_: None).run() == []
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["finished"] is True


def test_a_finished_stage_made_with_other_settings_is_refused_before_anything_runs(tmp_path):
    cfg = Config(out=str(tmp_path / "run"))
    TwoStages(cfg, log=lambda *_: None).run()
    (tmp_path / "run" / "first").unlink()  # the first stage is to be redone, the second was made with lr 0.1
    changed = Config(out=cfg.out, second=Section(lr=0.2))
    manifest = (tmp_path / "run" / "manifest.json").read_text()
    run = TwoStages(changed, log=lambda *_: None)
    with pytest.raises(StageConfigError, match=r"'second'.*second\.lr 0\.1 there, 0\.2 now"):
        run.run()
    assert run.ran == [] and not (tmp_path / "run" / "first").exists()
    assert (tmp_path / "run" / "manifest.json").read_text() == manifest  # nothing rewritten
    # a changed setting of a stage still to run is no conflict
    assert TwoStages(Config(out=cfg.out, first=Section(steps=3)), log=lambda *_: None).run() == ["first"]


def test_a_stage_finished_without_recorded_settings_is_not_refused(tmp_path):
    cfg = Config(out=str(tmp_path / "run"))
    TwoStages(cfg, log=lambda *_: None).run()
    path = tmp_path / "run" / "metrics.jsonl"
    path.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "config"}) + "\n"
                            for r in read_jsonl(path)))
    notes = []
    assert TwoStages(Config(out=cfg.out, seed=1), log=notes.append).run() == []
    assert any("not checked" in n for n in notes)


@pytest.mark.parametrize("command", ["align", "rl-demo"])
@pytest.mark.parametrize("holds", ["an sft run", "other files", "a file", "a file above"])
def test_a_staged_command_refuses_an_out_it_does_not_own_before_writing(tmp_path, monkeypatch, shared_data, capsys,
                                                                         command, holds):
    from augury.cli import main

    def no_stage(*args, **kwargs):
        raise AssertionError("a stage ran")

    monkeypatch.setenv("AUGURY_SHARED_DATA", str(shared_data))
    monkeypatch.setattr(StagedRun, "stage", no_stage)  # the refusal comes first (else the preset would run whole)
    out = tmp_path / "out"
    if holds.startswith("a file"):
        out.write_text("mine")
    else:
        out.mkdir()
        (out / "metrics.jsonl").write_text('{"step": 3}\n')
        if holds == "an sft run":
            (out / "manifest.json").write_text(json.dumps({"kind": "sft", "finished": True}))
    before = {p: p.read_bytes() for p in [out, *out.rglob("*")] if p.is_file()}
    preset = "cpu-demo" if command == "align" else "arithmetic"
    given = out / "run" if holds == "a file above" else out
    assert main([command, "--preset", preset, "--out", str(given)]) == 2
    err = capsys.readouterr().err
    assert f"augury {command}: error: --out {given}" in err and "Traceback" not in err
    assert {"an sft run": "holds an augury sft run", "other files": "not an augury run (no manifest.json)",
            "a file": "is a file, not a folder", "a file above": f"{out} is a file, not a folder"}[holds] in err
    assert {p: p.read_bytes() for p in [out, *out.rglob("*")] if p.is_file()} == before


def test_a_staged_run_continues_its_own_folder(tmp_path):
    cfg = Config(out=str(tmp_path / "run"))
    (tmp_path / "run").mkdir()  # an empty folder is taken; a folder holding a run of this kind is continued
    assert TwoStages(cfg, log=lambda *_: None).run() == ["first", "second"]
    (tmp_path / "run" / "second").unlink()
    assert TwoStages(cfg, log=lambda *_: None).run() == ["second"]


@pytest.mark.parametrize("module, cls, section", [("augury.align.sft", "SFTConfig", "sft"),
                                                  ("augury.align.rm", "RMConfig", "rm"),
                                                  ("augury.align.rl", "RLConfig", "rl")])
def test_a_runs_own_config_yaml_is_read_back_by_its_command(tmp_path, module, cls, section):
    import importlib
    from dataclasses import replace

    from augury.align.runs import start_output
    from augury.command import config_cli
    from augury.model import ModelConfig

    kind = getattr(importlib.import_module(module), cls)
    source = tmp_path / "base"
    source.mkdir()
    (source / "tokenizer.json").write_text("{}")
    cfg = replace(kind(), out=str(tmp_path / "run"), seed=7, lr=0.0123)
    start_output(tmp_path / "run", str(source), ModelConfig(vocab_size=64, depth=1).resolved(), section, cfg)
    config = str(tmp_path / "run" / "config.yaml")
    for argv in (["--config", config], [f"--config={config}"]):
        assert config_cli(kind, argv + ["--seed", "8"], prog=f"augury {section}", run_section=section) == \
            replace(cfg, seed=8)


@pytest.mark.parametrize("command, preset", [("align", "cpu-demo"), ("rl-demo", "arithmetic")])
def test_a_preset_may_be_given_as_name_equals_value(capsys, command, preset):
    # docs/cli.md: `--name=value` and `--name value` are equivalent; `--preset=cpu-demo` was an unrecognized argument
    from augury.cli import main

    printed = []
    for spelling in (["--preset", preset], [f"--preset={preset}"]):
        with pytest.raises(SystemExit) as stop:
            main([command, *spelling, "--seed", "3", "--print_config"])
        assert stop.value.code == 0
        printed.append(capsys.readouterr().out)
    assert printed[0] == printed[1] and "seed: 3" in printed[0]
