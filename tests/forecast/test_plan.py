"""Ladder planning: spacing, the recipe's rules, compute accounting, `augury ladder plan`, bad inputs."""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import pytest

from augury.forecast.checks import validate
from augury.forecast.config import ForecastConfigError, load_forecast_config
from augury.forecast.ladder import check_runs_train, plan_runs, run_model_config, train_config
from augury.forecast.preregister import MAX_TARGET_STEP_RATIO, step_extrapolation_flag
from augury.model import flops_per_token, param_counts


def cpu_demo(**over):
    return load_forecast_config("cpu-demo", overrides=over)


def step_ratio(runs) -> float:
    """The target's optimizer steps over the most any rung takes."""
    return runs[-1].steps / max(r.steps for r in runs[:-1])


@pytest.mark.parametrize("preset", ["smoke", "cpu-demo", "gpu", "naive-demo"])
def test_presets_load_and_plan(preset):
    cfg = load_forecast_config(preset)
    validate(cfg)
    runs = plan_runs(cfg, cfg.data.vocab_size)
    check_runs_train(cfg, runs, cfg.data.vocab_size)  # every run's settings are ones the trainer accepts
    assert runs[-1].role == "target" and all(r.role == "rung" for r in runs[:-1])
    assert runs[-2].flops <= cfg.ladder.largest_fraction * runs[-1].flops * 1.3
    flag = step_extrapolation_flag(runs[:-1], runs[-1])
    assert (flag is not None) == (step_ratio(runs) > MAX_TARGET_STEP_RATIO)
    if preset != "naive-demo":  # the deliberately naive recipe may be flagged; the others keep the steps comparable
        assert flag is None


def test_a_target_with_far_more_steps_than_its_rungs_is_flagged():
    rungs_and_target = plan_runs(cpu_demo(), 1024)
    rungs, target = rungs_and_target[:-1], rungs_and_target[-1]
    most = max(rungs, key=lambda r: r.steps)
    at_limit = dataclasses.replace(target, steps=int(most.steps * MAX_TARGET_STEP_RATIO))
    assert step_extrapolation_flag(rungs, at_limit) is None
    beyond = dataclasses.replace(target, steps=int(most.steps * MAX_TARGET_STEP_RATIO) + 2)
    flag = step_extrapolation_flag(rungs, beyond)
    assert flag is not None and f"{beyond.steps:,} optimizer steps" in flag and most.name in flag
    # a fixed batch: steps grow with the tokens, so the target takes several times any rung's steps
    fixed = plan_runs(cpu_demo(recipe={"min_batch_tokens": 2048, "max_batch_tokens": 2048}), 1024)
    assert [r.steps for r in fixed] == sorted(r.steps for r in fixed) and len({r.batch_size for r in fixed}) == 1
    flag = step_extrapolation_flag(fixed[:-1], fixed[-1])
    assert step_ratio(fixed) > MAX_TARGET_STEP_RATIO and f"{step_ratio(fixed):.1f}x the most of any rung" in flag
    # a batch growing as D^(2/3): the steps grow as D^(1/3), more slowly than with a fixed batch
    grown = plan_runs(cpu_demo(recipe={"batch_exponent": 2 / 3, "batch_base_tokens": 600_000}), 1024)
    assert 1 < step_ratio(grown) < step_ratio(fixed)
    assert (step_extrapolation_flag(grown[:-1], grown[-1]) is not None) == (step_ratio(grown) > MAX_TARGET_STEP_RATIO)


def test_rungs_are_even_in_log_compute_and_follow_the_recipe():
    cfg = cpu_demo(ladder={"tokens": "compute"})
    runs = plan_runs(cfg, 1024)
    rungs, target = runs[:-1], runs[-1]
    logs = np.log([r.flops for r in rungs])
    steps = np.diff(logs)
    # whole optimizer steps round each rung's tokens: spacing is even up to that rounding
    assert np.allclose(steps, steps.mean(), atol=0.15)
    assert rungs[-1].flops / target.flops <= cfg.ladder.largest_fraction * 1.1
    for r in runs:
        m = run_model_config(cfg, r, 1024)
        assert r.depth == cfg.recipe.model["depth"] and m.d_model == r.d_model  # a width ladder at fixed depth
        assert r.d_model >= cfg.recipe.min_width and r.d_model % cfg.recipe.width_step == 0
        assert m.head_dim == cfg.recipe.model["head_dim"]
        assert r.flops == flops_per_token(m, cfg.recipe.seq_len) * r.tokens  # C = flops/token x D, exactly
        assert r.params_matmul == param_counts(m).matmul
        assert r.tokens == r.steps * r.batch_size * cfg.recipe.seq_len
        assert m.parametrization == "mup" and m.zero_init_output
    widths = [r.d_model for r in runs]
    assert widths == sorted(widths) and len(set(widths[:-1])) == len(rungs)  # one size per rung
    assert all(abs(math.log(r.tokens_per_param / cfg.recipe.tokens_per_param)) < math.log(1.6) for r in runs)


def test_depth_dial_scales_width_with_depth():
    cfg = load_forecast_config("naive-demo")
    for r in plan_runs(cfg, 2048):
        m = run_model_config(cfg, r, 2048)
        assert m.d_model == r.depth * cfg.recipe.model["aspect_ratio"]


def test_ratio_tokens_put_every_rung_at_the_recipe_d_over_n():
    cfg = cpu_demo(ladder={"tokens": "ratio", "rungs": 8})
    runs = plan_runs(cfg, 1024)
    rungs = runs[:-1]
    assert len({r.d_model for r in rungs}) == len(rungs) >= 3  # rungs landing on one size are merged
    for r in runs:
        # D = tokens_per_param x N up to whole optimizer steps
        assert r.tokens_per_param == pytest.approx(cfg.recipe.tokens_per_param, rel=0.03)
    assert rungs[-1].flops <= cfg.ladder.largest_fraction * runs[-1].flops


def test_train_config_shares_one_recipe():
    cfg = cpu_demo()
    runs = plan_runs(cfg, 512)
    tcs = [train_config(cfg, r, f"/tmp/x/{r.name}", 512) for r in runs]
    assert len({(t.optim.lr, t.optim.schedule, t.seq_len, t.dtype) for t in tcs}) == 1
    # every run is evaluated on the same validation tokens
    assert len({(t.eval_batches, t.eval_batch_size, t.seq_len) for t in tcs}) == 1
    assert len({t.batch_size for t in tcs}) > 1  # although they train with different batches


def test_lr_batch_rule_scales_the_learning_rate_with_the_square_root_of_the_batch():
    cfg = cpu_demo(recipe={"lr_batch_exponent": 0.5, "lr_base_batch_tokens": 1024, "optim": {"lr": 0.01}})
    validate(cfg)
    runs = plan_runs(cfg, 512)
    for r in runs:  # lr = 0.01 * sqrt(batch tokens / 1024)
        tc = train_config(cfg, r, f"/tmp/x/{r.name}", 512)
        assert tc.optim.lr == pytest.approx(0.01 * math.sqrt(r.batch_size * tc.seq_len / 1024))
    assert runs[-1].batch_size > runs[0].batch_size  # so the target trains at a larger lr than the smallest rung
    with pytest.raises(ForecastConfigError, match="lr_batch_exponent needs recipe.optim.lr"):
        validate(load_forecast_config("smoke", overrides={"recipe": {"lr_batch_exponent": 0.5,
                                                                      "lr_base_batch_tokens": 0}}))


def test_batch_exponent_grows_the_batch_as_a_power_of_the_run_tokens():
    base = cpu_demo()
    runs1 = plan_runs(base, 1024)  # exponent 1, the default: every run takes ~steps_per_run steps
    assert all(abs(r.steps / base.recipe.steps_per_run - 1) < 0.1 for r in runs1)
    cfg = cpu_demo(recipe={"batch_exponent": 2 / 3, "batch_base_tokens": 600_000})
    validate(cfg)
    runs = plan_runs(cfg, 1024)
    assert [r.tokens for r in runs] == pytest.approx([r.tokens for r in runs1], rel=0.01)  # same D, other batches
    seq_len, base_batch_tokens = cfg.recipe.seq_len, 600_000 / cfg.recipe.steps_per_run
    for r in runs:  # the whole number of sequences nearest (600,000 / steps_per_run) * (D / 600,000)^(2/3) tokens
        ideal = base_batch_tokens * (r.tokens / 600_000) ** (2 / 3) / seq_len
        assert abs(r.batch_size - ideal) <= 0.5 + 1e-6 * ideal and r.tokens == r.steps * r.batch_size * seq_len
    assert runs[0].steps < runs[-2].steps < runs[-1].steps  # steps ∝ D^(1/3), up to whole sequences
    steps = cfg.recipe.steps_per_run
    fixed = plan_runs(cpu_demo(recipe={"batch_exponent": 0.0, "batch_base_tokens": 2048 * steps}), 1024)
    assert {r.batch_size for r in fixed} == {2048 // seq_len}  # exponent 0: one batch (2048 tokens) for every run
    for bad in ({"batch_exponent": 0.5}, {"batch_exponent": 1.5, "batch_base_tokens": 1000}):
        with pytest.raises(ForecastConfigError, match="recipe.batch_exponent"):
            validate(cpu_demo(recipe=bad))


def test_dotted_overrides_of_the_recipe_arrive_typed():
    flags = ["--recipe.optim.beta2", "0.95", "--recipe.model.output_bias", "false", "--recipe.optim.schedule", "wsd"]
    cfg = load_forecast_config("smoke", argv=flags)
    validate(cfg)
    assert cfg.recipe.optim["beta2"] == 0.95 and cfg.recipe.model["output_bias"] is False  # typed when loaded
    tc = train_config(cfg, plan_runs(cfg, 512)[0], "/tmp/x/rung1", 512)
    assert tc.optim.beta2 == 0.95 and tc.optim.schedule == "wsd" and tc.model.output_bias is False
    assert cfg.recipe.optim["lr"] == load_forecast_config("smoke").recipe.optim["lr"]  # the preset's other keys stay
    with pytest.raises(ForecastConfigError, match="recipe.optim.beta2: cannot read 'abc' as float"):
        load_forecast_config("smoke", argv=["--recipe.optim.beta2", "abc"])
    with pytest.raises(ForecastConfigError, match="recipe.optim: unknown key 'beta3'"):
        load_forecast_config("smoke", argv=["--recipe.optim.beta3", "1"])
    with pytest.raises(ForecastConfigError, match="ladder.rungs"):
        load_forecast_config("smoke", argv=["--ladder.rungs", "many"])


def test_command_line_and_python_load_the_same_config(tmp_path):
    from augury.forecast.cli import parse_config

    own = tmp_path / "mine.yaml"
    own.write_text("ladder:\n  rungs: 6\nrecipe:\n  optim:\n    lr: 0.02\n")
    by_flags = parse_config(["--preset", "smoke", "--config", str(own), "--target.d_model", "80",
                             "--recipe.optim.beta2", "0.9"])
    by_python = load_forecast_config("smoke", str(own), overrides={"target": {"d_model": 80},
                                                                    "recipe": {"optim": {"beta2": 0.9}}})
    assert by_flags == by_python
    assert by_python.ladder.rungs == 6 and by_python.recipe.optim["lr"] == 0.02 and "schedule" in by_python.recipe.optim
    # validate() checks without changing what it checks
    before = copy.deepcopy(by_python)
    validate(by_python)
    assert by_python == before


def test_a_folder_given_as_the_config_is_called_a_folder(tmp_path):
    with pytest.raises(ForecastConfigError, match=f"--config {tmp_path} is a folder, not a YAML file"):
        load_forecast_config("smoke", str(tmp_path))
    with pytest.raises(ForecastConfigError, match="no such file"):
        load_forecast_config("smoke", str(tmp_path / "missing.yaml"))


def test_bad_inputs_fail_before_training():
    with pytest.raises(ForecastConfigError, match="largest_fraction"):
        validate(cpu_demo(ladder={"largest_fraction": 1.5}))
    with pytest.raises(ForecastConfigError, match="smaller than the ladder"):
        validate(load_forecast_config("naive-demo", overrides={"target": {"depth": 0}}))
    with pytest.raises(ForecastConfigError, match="multiple of recipe.width_step"):
        validate(cpu_demo(target={"d_model": 100}))
    with pytest.raises(ForecastConfigError, match="smaller than the ladder"):
        validate(cpu_demo(target={"d_model": 8}))
    with pytest.raises(ForecastConfigError, match="too small for the smallest sensible rung"):
        plan_runs(cpu_demo(target={"d_model": 32, "tokens": 100_000}), 512)
    with pytest.raises(ForecastConfigError, match="recipe.dial"):
        validate(cpu_demo(recipe={"dial": "height"}))
    with pytest.raises(ForecastConfigError, match="unknown key"):
        cpu_demo(ladder={"rungz": 3})
    with pytest.raises(ForecastConfigError, match="rungs must be >= 3 for fit.law 'power-loss'"):
        validate(cpu_demo(ladder={"rungs": 2}))
    with pytest.raises(ForecastConfigError, match="rungs must be >= 4 for fit.law 'gpt4-loss'"):
        validate(load_forecast_config("naive-demo", overrides={"ladder": {"rungs": 3}}))
    with pytest.raises(ForecastConfigError, match="target lies 4.2 decades of compute .* beyond the largest rung"):
        gpu = load_forecast_config("gpu", overrides={"ladder": {"largest_fraction": 8e-5, "smallest_fraction": 3e-6}})
        plan_runs(gpu, gpu.data.vocab_size)
    with pytest.raises(ForecastConfigError, match="fit.compute"):
        validate(cpu_demo(fit={"compute": "params"}))
    with pytest.raises(ForecastConfigError, match="needs fit.law 'power-loss'"):
        validate(cpu_demo(fit={"law": "gpt4-loss"}))  # cpu-demo's prediction interval needs a straight line
    with pytest.raises(ForecastConfigError, match="random-effects' needs ladder.seeds >= 2"):
        validate(cpu_demo(fit={"interval": "random-effects"}, ladder={"seeds": 1}))
    with pytest.raises(ForecastConfigError, match="jobs must be >= 1"):
        validate(cpu_demo(jobs=0))
    with pytest.raises(ForecastConfigError, match="target_procs must be >= 1"):
        validate(cpu_demo(target_procs=0))


@pytest.mark.parametrize("preset, target, message", [
    ("cpu-demo", {"depth": 8}, "target.depth has no effect under recipe.dial='width'"),
    ("naive-demo", {"d_model": 256}, "target.d_model has no effect under recipe.dial='depth'"),
])
def test_the_other_dials_target_size_is_refused_not_ignored(preset, target, message):
    with pytest.raises(ForecastConfigError, match=message):
        validate(load_forecast_config(preset, overrides={"target": target}))


def test_ladder_plan_says_how_many_rungs_were_merged(capsys):
    from augury.cli import main

    # cpu-demo's span holds four widths of its dial: six rungs asked for become four
    assert main(["ladder", "plan", "--no-probe", "--ladder.rungs", "6"]) == 0
    text = capsys.readouterr().out
    assert "ladder: 4 rungs" in text and "2 of the 6 rungs asked for (ladder.rungs) merged" in text
    assert main(["ladder", "plan", "--no-probe"]) == 0
    assert "merged" not in capsys.readouterr().out


@pytest.mark.parametrize("fit, message", [
    ({"bootstrap": -1}, "fit.bootstrap must be at least 20 resamples for a 90% interval"),
    ({"bootstrap": 0}, "fit.bootstrap must be at least 20"),
    ({"bootstrap": 19}, "fit.bootstrap must be at least 20"),
    ({"bootstrap": 100, "level": 0.99}, "fit.bootstrap must be at least 200 resamples for a 99% interval"),
    ({"level": 2}, r"fit.level must be in \(0, 1\)"),
    ({"huber_delta": 0}, "fit.huber_delta must be > 0"),
])
def test_a_fit_that_cannot_give_an_interval_is_refused(fit, message):
    # a bootstrap too small for the level would print an interval of NaNs, or of one draw, as the forecast's
    with pytest.raises(ForecastConfigError, match=message):
        validate(cpu_demo(fit=fit))
    validate(cpu_demo(fit={"bootstrap": 20}))


def test_target_from_a_flop_budget_picks_its_size_by_the_allocation_rule():
    cfg = cpu_demo(target={"d_model": None, "flops": 3e13})
    target = plan_runs(cfg, 512)[-1]
    assert target.flops == pytest.approx(3e13, rel=0.05)
    assert abs(math.log(target.tokens_per_param / cfg.recipe.tokens_per_param)) < math.log(3)


def test_ladder_plan_cli(capsys):
    from augury.cli import main

    assert main(["ladder", "plan", "--preset", "smoke", "--no-probe"]) == 0
    text = capsys.readouterr().out
    assert "rung1" in text and "target" in text and "largest rung = 1/" in text
    # each run's learning rate, as the recipe's rules give it: here the batch rule
    assert main(["ladder", "plan", "--preset", "smoke", "--no-probe", "--recipe.optim.lr", "0.01",
                 "--recipe.lr_batch_exponent", "1", "--recipe.lr_base_batch_tokens", "1000000"]) == 0
    rows = [ln.split() for ln in capsys.readouterr().out.splitlines() if ln.startswith(("rung1 ", "target "))]
    assert float(rows[1][-1]) > float(rows[0][-1]) > 0  # the target trains with a larger batch
    assert main(["ladder", "plan", "--preset", "smoke", "--ladder.largest_fraction", "2", "--no-probe"]) == 2
    assert "largest_fraction" in capsys.readouterr().err
    assert main(["ladder", "plan", "--preset", "smoke", "--recipe.optim.lr", "-1", "--no-probe"]) == 2
    assert "the recipe cannot train rung1: optim.lr must be" in capsys.readouterr().err


@pytest.mark.integration
def test_ladder_plan_cli_probe_estimates_time(capsys):
    from augury.cli import main

    assert main(["ladder", "plan", "--preset", "smoke"]) == 0
    assert "estimated training time" in capsys.readouterr().out


def test_forecast_cli_bad_inputs(tmp_path, capsys):
    from augury.cli import main

    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "x.txt").write_text("mine")
    assert main(["forecast", "--preset", "smoke", "--out", str(tmp_path / "notes")]) == 2
    assert "not a forecast folder" in capsys.readouterr().err
    (tmp_path / "afile").write_text("x")
    assert main(["forecast", "--preset", "smoke", "--out", str(tmp_path / "afile" / "sub")]) == 2
    assert "afile is a file, not a folder" in capsys.readouterr().err
    assert main(["forecast", "--preset", "nope"]) == 2
    assert "unknown preset" in capsys.readouterr().err


def test_overall_eta_adds_probed_run_times_and_learns_from_finished_runs(monkeypatch):
    from augury.forecast import progress as progress_module
    from augury.forecast.progress import Progress

    cfg = cpu_demo()
    runs = plan_runs(cfg, 1024)
    rates = {r.name: 10_000.0 for r in runs}
    progress = Progress(runs, False, lambda *a: None, rates)
    assert progress.eta() == pytest.approx(sum(r.tokens for r in runs) / 10_000.0)
    now = [100.0]
    monkeypatch.setattr(progress_module.time, "perf_counter", lambda: now[0])
    progress.starting(1, runs[0])
    now[0] += 2 * runs[0].tokens / 10_000.0  # the first run takes twice its estimate
    progress.finished(runs[0], True)
    assert progress.eta() == pytest.approx(2 * sum(r.tokens for r in runs[1:]) / 10_000.0)
    assert Progress(runs, False, lambda *a: None, None).eta() is None  # no probe: no ETA


def test_target_procs_are_at_most_one_per_gpu(monkeypatch):
    """cpu-demo asks for 2 target processes (for 2 CPU cores); on a one-GPU machine it still runs, with one."""
    import torch

    from augury.forecast.ladder import target_processes

    cfg = cpu_demo()
    assert cfg.target_procs == 2
    logs = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert target_processes(cfg, logs.append) == 1 and "lowered to 1" in logs[0]
    assert target_processes(cpu_demo(device="cpu"), logs.append) == 2
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert target_processes(cfg, logs.append) == 2


def test_ladder_plan_takes_no_probe_in_either_spelling(capsys):
    # docs/cli.md: hyphenated spellings are aliases of the underscore ones in every command; `--no_probe` was an
    # unrecognized argument
    from augury.cli import main

    assert main(["ladder", "plan", "--preset", "smoke", "--no_probe"]) == 0
    underscore = capsys.readouterr().out
    assert main(["ladder", "plan", "--preset", "smoke", "--no-probe"]) == 0
    assert capsys.readouterr().out == underscore and "ladder:" in underscore
