"""An RL stage that stops inside `augury align` / `augury rl-demo` (a reward that raises, a judge endpoint that
fails, a diverged loss, bad data) is one `augury CMD: error:` line and exit status 1: the finished stages are kept,
the stopped RL stage is not marked finished, and the same command continues it from its last checkpoint."""

from __future__ import annotations

import json

import pytest

from augury.align.runs import stage_status

DEMO = ["--seed", "1", "--task.max_operand", "9", "--task.eval_problems", "8", "--task.sft_examples", "20",
        "--sft.steps", "2", "--sft.batch_size", "4", "--rl.steps", "5", "--rl.prompts_per_step", "2",
        "--rl.num_generations", "2", "--rl.response_length", "3", "--rl.eval_every", "2"]


def _stages(out) -> list[str]:
    return [json.loads(line)["stage"] for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.integration
def test_rl_demo_reward_failure_is_one_line_and_a_rerun_continues(chat_run, tmp_path, capsys, monkeypatch):
    import augury.align.arithmetic as arithmetic
    from augury.cli import main

    real, calls = arithmetic.exact_answer, []

    def fails_at_step_4(**kwargs):
        calls.append(1)
        if len(calls) == 4:  # step 4: after the checkpoint of step 2 and the record of step 3
            raise RuntimeError("grading service gone")
        return real(**kwargs)

    out = tmp_path / "demo"
    argv = ["rl-demo", "--out", str(out), "--base_run", str(chat_run), *DEMO]
    monkeypatch.setattr(arithmetic, "exact_answer", fails_at_step_4)
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert err.startswith("augury rl-demo: error: the rl stage stopped: ") and "grading service gone" in err
    assert json.loads((out / "manifest.json").read_text())["finished"] is False
    assert stage_status(out / "rl") is not True and _stages(out) == ["data", "sft", "eval-sft"]
    assert (out / "rl" / "checkpoints" / "step_00000002").is_dir()

    monkeypatch.setattr(arithmetic, "exact_answer", real)
    assert main(argv) == 0
    assert _stages(out) == ["data", "sft", "eval-sft", "rl", "report"]  # the earlier stages were not redone
    steps = [json.loads(line)["step"] for line in (out / "rl" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5]  # continued from step 2; step 3's first record is not kept twice


def _stub_earlier_stages(monkeypatch, train_rl):
    """A Pipeline whose stages before RL only write what marks them finished, and whose RL is `train_rl`."""
    import augury.align.rl as rl
    from augury.align.pipeline import Pipeline
    from augury.io import atomic_write_json

    def finished(path, **manifest):
        return lambda self: atomic_write_json(self.out / path, manifest) or {}

    monkeypatch.setattr(Pipeline, "make_data", finished("data/manifest.json", rows={}))
    monkeypatch.setattr(Pipeline, "train_grader", finished("grader/report.json"))
    monkeypatch.setattr(Pipeline, "pretrain", finished("pretrain/manifest.json", status="complete"))
    monkeypatch.setattr(Pipeline, "sft", finished("sft/manifest.json", finished=True))
    monkeypatch.setattr(Pipeline, "reward_model", finished("rm/manifest.json", finished=True))
    monkeypatch.setattr(Pipeline, "evaluate", lambda self, n: atomic_write_json(self.out / "eval" / f"{n}.json", {}))
    monkeypatch.setattr(Pipeline, "report", lambda self: (self.out / "report.md").write_text("report") and {})
    monkeypatch.setattr(rl, "train_rl", train_rl)


def _errors():
    from augury.align.data import AlignDataError
    from augury.align.rl import RLDiverged
    from augury.align.rl_rewards import RewardError
    from augury.evals.backends.errors import EndpointError

    return [RLDiverged("step 3: the loss is nan; the last checkpoint is kept in X"),
            EndpointError("the judge answered 401"), RewardError("reward function f returned inf"),
            AlignDataError("prompts.jsonl: row 3: kind 'x' is not one of the rubric's kinds")]


@pytest.mark.parametrize("error", _errors(), ids=lambda e: type(e).__name__)
def test_align_rl_failure_is_one_line_and_keeps_the_finished_stages(tmp_path, capsys, monkeypatch, error,
                                                                    shared_data):
    from augury.cli import main
    from augury.io import atomic_write_json

    def fails(cfg, log=print, after_step=None):
        raise error

    _stub_earlier_stages(monkeypatch, fails)
    out = tmp_path / "align"
    assert main(["align", "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert err == f"augury align: error: the rl stage stopped: {error}"
    assert json.loads((out / "manifest.json").read_text())["finished"] is False
    assert _stages(out) == ["data", "grader", "pretrain", "sft", "rm"]

    def works(cfg, log=print, after_step=None):
        atomic_write_json(f"{cfg.out}/manifest.json", {"kind": "rl", "finished": True})
        (tmp_path / "align" / "rl" / "metrics.jsonl").write_text('{"step": 1, "reward": 0.5}\n')
        return cfg.out

    _stub_earlier_stages(monkeypatch, works)
    assert main(["align", "--out", str(out)]) == 0
    assert _stages(out)[5:7] == ["rl", "eval-sft"]  # only what was left is run


@pytest.mark.parametrize("change,message", [({"lr": 2.0}, "lr <= 1"), ({"num_generations": 1}, "num_generations"),
                                            ({"kl_coef": float("nan")}, "kl_coef must be a finite number")])
def test_rl_settings_are_refused_before_the_first_stage(change, message, shared_data):
    """A bad RL setting is refused when the command starts, not after the stages before RL have run for an hour."""
    from dataclasses import replace

    from augury.align import demo, pipeline

    with pytest.raises(ValueError, match=message):
        pipeline.AlignConfig(rl=replace(pipeline.RLSettings(), **change)).validate()
    with pytest.raises(ValueError, match=message):
        demo.DemoConfig(rl=replace(demo.RLSettings(), **change)).validate()


@pytest.mark.parametrize("stage", ["sft", "reward_model"])
def test_a_diverged_sft_or_reward_model_stage_is_one_line_too(tmp_path, capsys, monkeypatch, stage, shared_data):
    from augury.align.pipeline import Pipeline
    from augury.align.rm import RMDiverged
    from augury.align.sft import SFTDiverged
    from augury.cli import main

    error = {"sft": SFTDiverged, "reward_model": RMDiverged}[stage]("step 7: the loss is nan; ...")

    def diverges(self):
        raise error

    _stub_earlier_stages(monkeypatch, None)
    monkeypatch.setattr(Pipeline, stage, diverges)
    out = tmp_path / "align"
    assert main(["align", "--out", str(out)]) == 1
    name = {"sft": "sft", "reward_model": "rm"}[stage]
    assert capsys.readouterr().err.strip() == f"augury align: error: the {name} stage stopped: {error}"
    assert json.loads((out / "manifest.json").read_text())["finished"] is False
