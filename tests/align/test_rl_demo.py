"""`augury rl-demo` end to end on a tiny configuration: every stage runs, the report and curves are written, the
held-out evaluation lands in the RL run's metrics, and a finished demo is not redone."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest


@pytest.mark.integration
def test_rl_demo_runs_end_to_end_and_writes_its_report(chat_run, tmp_path):
    from augury.align.demo import Demo, DemoConfig, RLSettings, SFTSettings, TaskSettings
    from augury.align.runs import StageConfigError

    out = tmp_path / "demo"
    cfg = DemoConfig(out=str(out), seed=1, base_run=str(chat_run),
                     task=TaskSettings(max_operand=9, eval_problems=12, sft_examples=30),
                     sft=SFTSettings(steps=3, batch_size=4, lr=1e-3),
                     rl=RLSettings(steps=3, prompts_per_step=2, num_generations=2, response_length=3, eval_every=2))
    Demo(cfg, log=lambda *_: None).run()
    assert json.loads((out / "manifest.json").read_text())["finished"] is True
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    report = (out / "report.md").read_text()
    assert "| SFT |" in report and "| RL (step 3) |" in report
    results = json.loads((out / "results.json").read_text())
    assert [c["step"] for c in results["curve"]] == [0, 2, 3]  # SFT, every eval_every steps, the last
    assert results["sft"]["heldout_n"] == 12 and results["rl"]["step"] == 3
    rl_metrics = [json.loads(line) for line in (out / "rl" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rl_metrics if "heldout_accuracy" in r] == [2, 3]
    # held-out problems never reach SFT or RL
    held = {json.loads(line)["prompt"] for line in (out / "data" / "held_out.jsonl").read_text().splitlines()}
    for name in ("sft.jsonl", "rl_prompts.jsonl"):
        rows = [json.loads(line) for line in (out / "data" / name).read_text().splitlines()]
        assert not held & {r["prompt"] for r in rows}
    stamp = (out / "report.md").stat().st_mtime_ns
    Demo(cfg, log=lambda *_: None).run()  # every stage is finished: nothing is redone
    assert (out / "report.md").stat().st_mtime_ns == stamp
    # the same folder with other RL settings: refused before anything is redone, so no report mixes two runs
    with pytest.raises(StageConfigError, match=r"stage 'rl' .*rl\.steps 3 there, 5 now"):
        Demo(replace(cfg, rl=replace(cfg.rl, steps=5)), log=lambda *_: None).run()
    assert (out / "report.md").stat().st_mtime_ns == stamp


def test_rl_demo_preset_loads_and_bad_settings_are_refused(tmp_path):
    from augury.align.demo import PRESETS, DemoConfig, TaskSettings
    from augury.command import config_cli

    cfg = config_cli(DemoConfig, ["--config", str(PRESETS / "rl-demo-arithmetic.yaml"), "--seed", "2",
                                  "--rl.steps", "5"], prog="augury rl-demo")
    cfg.validate()
    assert (cfg.seed, cfg.rl.steps, cfg.task.ops) == (2, 5, "+")
    with pytest.raises(ValueError, match="ops"):
        DemoConfig(task=TaskSettings(ops="*")).validate()
    with pytest.raises(ValueError, match="base_run"):
        DemoConfig(base_run=str(tmp_path)).validate()
    rm = tmp_path / "rm"  # an `augury rm` run: a backbone trained to score, not to write
    rm.mkdir()
    (rm / "tokenizer.json").write_text("{}")
    (rm / "manifest.json").write_text(json.dumps({"kind": "reward_model", "finished": True}))
    with pytest.raises(ValueError, match=r"--base_run .*rm is a reward model \(an augury rm run\), not a policy"):
        DemoConfig(base_run=str(rm)).validate()


def test_the_help_defaults_are_the_presets():
    # `augury rl-demo --preset arithmetic --help` listed defaults (sft.steps 100, rl.steps 100, ...) that the preset
    # overrides (500, 200): the settings a run gets, as `augury align --help` gives the cpu-demo preset's
    from augury.align.demo import PRESETS, DemoConfig
    from augury.align.pipeline_config import AlignConfig
    from augury.command import config_cli

    assert config_cli(DemoConfig, ["--config", str(PRESETS / "rl-demo-arithmetic.yaml")], prog="r") == DemoConfig()
    assert config_cli(AlignConfig, ["--config", str(PRESETS / "cpu-demo.yaml")], prog="a") == AlignConfig()


def test_a_rise_within_noise_is_not_called_significant():
    from augury.align.demo_report import rise_p_value

    assert rise_p_value(0.30, 0.30, 400) == pytest.approx(0.5)
    assert rise_p_value(0.0725, 0.075, 400) > 0.3  # a quarter-point rise on 400 problems is noise
    assert rise_p_value(0.10, 0.20, 400) < 0.001
    assert rise_p_value(0.20, 0.10, 400) > 0.999  # a fall is never a significant rise
    assert rise_p_value(0.0, 0.0, 400) == 0.5 and rise_p_value(0.0, 0.05, 400) < 0.01
