"""End to end: the smoke preset's forecast, its resume, pre-registration, result and report."""

from __future__ import annotations

import dataclasses
import json

import pytest

from augury.forecast.pipeline import run_forecast
from augury.forecast.records import ForecastTampered, content_sha256, load_forecast, read_forecast, read_result


def test_interrupt_says_how_to_resume_and_resume_never_retrains(smoke_forecast):
    out, info = smoke_forecast
    assert any("Resume with" in line and "augury forecast --config" in line for line in info["logs"])
    assert not info["forecast_existed_at_interrupt"]
    # rung1 and rung2 finished before the interruption and were not trained again on resume
    assert set(info["after_interrupt"]) == {"rung1", "rung2"}
    for name, mtime in info["after_interrupt"].items():
        assert (out / "rungs" / name / "manifest.json").stat().st_mtime_ns == mtime
    for name in ("rung1", "rung2", "rung3", "rung4"):
        manifest = json.loads((out / "rungs" / name / "manifest.json").read_text())
        assert manifest["status"] == "complete"
        assert (out / "rungs" / name / "metrics.jsonl").is_file()


def test_forecast_registered_before_target_and_unaltered(smoke_forecast):
    out, info = smoke_forecast
    forecast = load_forecast(out / "forecast.json")  # raises if its content no longer matches its sha256
    target = json.loads((out / "target" / "manifest.json").read_text())
    assert forecast["registered_at"] <= target["created"]
    assert forecast["sha256"] == content_sha256(forecast)
    assert info["result"].forecast_sha256 == forecast["sha256"]
    # only the rungs fed the fit
    assert [r["name"] for r in forecast["ladder"]] == ["rung1", "rung2", "rung3", "rung4"]
    assert forecast["loss"]["law"]["data"]["names"] == ["rung1", "rung2", "rung3", "rung4"]
    lo, hi = forecast["loss"]["interval"]
    assert lo <= forecast["loss"]["predicted"] <= hi
    assert isinstance(forecast["loss"]["flags"], list)
    assert forecast["loss"]["reliable"] == (not forecast["loss"]["flags"])


def test_records_read_the_files_back_exactly(smoke_forecast):
    out, _ = smoke_forecast
    for name, read in (("forecast.json", read_forecast), ("result.json", read_result)):
        content = json.loads((out / name).read_text())
        again = read(out / name).to_json()
        assert again == content and list(again) == list(content)  # the same fields, in the same order


def test_result_compares_prediction_with_the_target(smoke_forecast):
    out, _ = smoke_forecast
    result = json.loads((out / "result.json").read_text())
    forecast = json.loads((out / "forecast.json").read_text())
    target = json.loads((out / "target" / "manifest.json").read_text())
    actual = target["summary"]["final_val_loss"]
    assert result["loss"]["actual"] == pytest.approx(actual)
    assert result["loss"]["predicted"] == forecast["loss"]["predicted"]
    assert result["loss"]["rel_error"] == pytest.approx(forecast["loss"]["predicted"] / actual - 1)
    lo, hi = forecast["loss"]["interval"]
    assert result["loss"]["covered"] == (lo <= actual <= hi)
    assert result["timings"]["target training"] >= 0
    # the target's row has every field of a ladder row, on the same compute axis as the forecast
    assert set(forecast["ladder"][0]) - {"seed_losses"} <= set(result["target_run"])
    assert result["target_run"]["compute"] == forecast["target"]["compute"]
    assert "capability" in forecast or "capability_skipped" in forecast
    # how much of the training split each run covers, from the plan and the prepared corpus
    cov = forecast["data_coverage"]
    assert cov["share"]["target"] == pytest.approx(forecast["target"]["tokens"] / cov["train_tokens"])
    assert 0 < cov["share"]["rung1"] < cov["share"]["target"] <= 1


def test_report_files_exist_and_embed_images(smoke_forecast):
    out, _ = smoke_forecast
    html = (out / "report.html").read_text()
    md = (out / "report.md").read_text()
    assert html.count("data:image/png;base64,") >= 1 and "<img" in html
    assert "loss_vs_compute.png" in md and (out / "loss_vs_compute.png").stat().st_size > 1000
    assert "src=\"loss_vs_compute.png\"" not in html  # offline: nothing linked
    for name in ("rung1", "rung4", "target"):
        assert f"| {name} |" in md
    assert "Data coverage: the target trains on" in md


def test_rerun_verifies_without_training_or_refitting(smoke_forecast):
    out, info = smoke_forecast
    before = {p: p.stat().st_mtime_ns for p in out.rglob("manifest.json")}
    forecast_bytes = (out / "forecast.json").read_bytes()
    run_forecast(info["cfg"], log=lambda *a: None)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("manifest.json")} == before
    assert (out / "forecast.json").read_bytes() == forecast_bytes


def test_edited_forecast_is_refused(smoke_forecast, tmp_path):
    import shutil

    out, info = smoke_forecast
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    data = json.loads((copy / "forecast.json").read_text())
    data["loss"]["predicted"] = 1.0
    (copy / "forecast.json").write_text(json.dumps(data))
    with pytest.raises(ForecastTampered):
        load_forecast(copy / "forecast.json")
    cfg = info["cfg"]
    cfg2 = type(cfg)(**{**cfg.__dict__, "out": str(copy)})
    with pytest.raises(ForecastTampered):
        run_forecast(cfg2, log=lambda *a: None)


def test_out_dir_with_another_forecasts_plan_is_refused(smoke_forecast, data_cache, make_smoke_config):
    from augury.forecast.config import ForecastConfigError

    out, _ = smoke_forecast
    other = make_smoke_config(out, data_cache, ladder={"rungs": 5})
    with pytest.raises(ForecastConfigError, match="another forecast's plan"):
        run_forecast(other, log=lambda *a: None)


def test_target_procs_that_do_not_divide_the_batch_are_refused_before_anything_is_written(tmp_path, data_cache,
                                                                                        make_smoke_config):
    from augury.forecast.config import ForecastConfigError

    cfg = make_smoke_config(tmp_path / "f", data_cache, target_procs=3)  # smoke's target batch is not a multiple
    with pytest.raises(ForecastConfigError, match=r"target_procs=3 does not divide the target's batch of \d+ seq"):
        run_forecast(cfg, log=lambda *a: None)
    assert not (tmp_path / "f" / "plan.json").exists()


def test_held_out_text_folder_is_forecast_and_verified(smoke_forecast):
    out, info = smoke_forecast
    if not info["cfg"].text_folder:
        pytest.skip("shared wikitext-2 not found (set AUGURY_SHARED_DATA)")
    forecast = load_forecast(out / "forecast.json")
    result = json.loads((out / "result.json").read_text())
    assert [r["name"] for r in forecast["text_ladder"]] == ["rung1", "rung2", "rung3", "rung4"]
    assert result["text"]["predicted"] == forecast["text"]["predicted"]
    assert result["text"]["actual"] > 0
    assert "Held-out text folder" in (out / "report.md").read_text()
    assert (out / "text_loss_vs_compute.png").is_file()


@pytest.mark.integration
def test_several_seeds_per_rung_trained_two_at_a_time_are_averaged(tmp_path, data_cache, make_smoke_config,
                                                                    monkeypatch):
    from augury.forecast import pipeline
    from augury.forecast.runner import train_one

    cfg = make_smoke_config(tmp_path / "f", data_cache, ladder={"seeds": 2}, capability={"problems": 12}, jobs=2,
                            threads=1)

    def stop(*args, **kwargs):  # the target (most of a forecast's compute) is not what this test checks
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "train_target", stop)
    with pytest.raises(KeyboardInterrupt):  # stopped once the forecast is registered
        run_forecast(cfg, log=lambda *a: None)
    forecast = load_forecast(tmp_path / "f" / "forecast.json")
    for row in forecast["ladder"]:
        seed0 = json.loads((tmp_path / "f" / "rungs" / row["name"] / "manifest.json").read_text())
        seed1 = json.loads((tmp_path / "f" / "rungs" / f"{row['name']}-seed1" / "manifest.json").read_text())
        assert (seed0["seed"], seed1["seed"]) == (0, 1000)
        losses = [seed0["summary"]["final_val_loss"], seed1["summary"]["final_val_loss"]]
        assert row["seed_losses"] == losses and row["loss"] == pytest.approx(sum(losses) / 2)
        for name in (row["name"], f"{row['name']}-seed1"):  # each worker sampled its run's capability problems
            assert json.loads((tmp_path / "f" / "capability" / f"{name}.json").read_text())["run"] == name
    assert forecast["loss"]["law"]["data"]["names"] == [r["name"] for r in forecast["ladder"]]  # one point per rung
    # a worker trains exactly what this process would: rung2-seed1 again, here, with the same one thread
    from augury.forecast.ladder import plan_runs, train_config

    vocab = json.loads((tmp_path / "f" / "plan.json").read_text())["vocab_size"]
    rung2 = plan_runs(cfg, vocab)[1]
    tcfg = train_config(cfg, rung2, str(tmp_path / "again"), vocab, replica=1)
    again = train_one(dataclasses.replace(tcfg, progress=False), threads=1)
    assert again["final_val_loss"] == forecast["ladder"][1]["seed_losses"][1]


@pytest.mark.integration
def test_gpu_preset_runs_end_to_end_at_smoke_size_on_cpu(tmp_path, data_cache):
    """The `gpu` preset's own protocol (FLOPs axis, bootstrap interval, rungs spaced in log compute, its
    optimizer and capability settings) runs through plan -> rungs -> forecast.json -> target -> result -> report
    with only its sizes shrunk (a finer width dial, head_dim 4) so that a CPU finishes it in seconds."""
    from augury.forecast.config import load_forecast_config

    gpu = load_forecast_config("gpu")
    cfg = load_forecast_config("gpu", overrides={
        "out": str(tmp_path / "gpu-small"), "progress": False, "device": "cpu", "threads": 1,
        "data": {"vocab_size": 384, "max_bytes": 2_000_000, "cache_dir": str(data_cache)},
        "recipe": {"model": {**gpu.recipe.model, "head_dim": 4}, "width_step": 4, "min_width": 8, "seq_len": 64,
                   "steps_per_run": 30, "min_batch_tokens": 128, "max_batch_tokens": 8192, "dtype": "fp32",
                   "eval_tokens": 4096},
        "target": {"d_model": 48},
        "ladder": {"largest_fraction": 0.2, "smallest_fraction": 0.003},
        "capability": {"problems": 24, "samples": 4, "context_tokens": 32},
        "fit": {"bootstrap": 100},
    })
    result = run_forecast(cfg, log=lambda *a: None)
    out = tmp_path / "gpu-small"
    forecast = json.loads((out / "forecast.json").read_text())
    # the preset asks for 6 rungs; at these widths (multiples of 4 from 8) two of them share a width and are
    # planned once
    assert gpu.ladder.rungs == 6 and len(forecast["ladder"]) >= 5
    assert forecast["compute"] == gpu.fit.compute == "flops"
    assert forecast["loss"]["interval_method"] == "bootstrap"
    lo, hi = forecast["loss"]["interval"]
    assert lo < forecast["loss"]["predicted"] < hi
    assert result.loss.actual > 0 and (out / "report.html").is_file() and (out / "capability").is_dir()


@pytest.mark.integration
def test_target_in_two_processes_is_the_same_run(smoke_forecast, tmp_path):
    """The registered smoke forecast, its target trained again under torchrun in 2 processes (`target_procs`):
    the forecast is reused as registered and the actual loss is the one-process run's (fp32: to rounding)."""
    import shutil

    out, info = smoke_forecast
    copy = tmp_path / "copy"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("target", "result.json", "report.*"))
    cfg = dataclasses.replace(info["cfg"], out=str(copy), target_procs=2)
    result = run_forecast(cfg, log=lambda *a: None)
    assert result.loss.predicted == info["result"].loss.predicted
    assert result.loss.actual == pytest.approx(info["result"].loss.actual, rel=1e-5)
    assert json.loads((copy / "target" / "manifest.json").read_text())["world_size"] == 2
    assert (copy / "target" / "torchrun.log").is_file() and (copy / "report.html").is_file()


@pytest.mark.parametrize("over, message", [
    ({"recipe": {"optim": {"lr": -1.0}}}, "optim.lr must be a finite number > 0"),
    ({"recipe": {"optim": {"warmup_frac": 2.0}}}, "warmup_frac"),
    ({"recipe": {"model": {"max_seq_len": 32}}}, r"seq_len=64 must be in \[2, model.max_seq_len=32\]"),
    ({"recipe": {"model": {"max_seq_len": 64}}, "capability": {"context_tokens": 62}},
     "capability.context_tokens=62 plus max_target_tokens=3 .* exceed recipe.model.max_seq_len=64"),
    ({"capability": {"temperature": 0.0}}, "capability.temperature must be > 0"),
    ({"capability": {"context_tokens": 0}}, "capability.context_tokens must be >= 1"),
    ({"threads": -2}, "threads must be >= 1"),
    ({"capability": {"problems": 100000}}, "fewer than capability.problems=100000"),
])
def test_settings_a_run_cannot_use_are_refused_before_anything_trains(tmp_path, data_cache, make_smoke_config,
                                                                      over, message):
    """A recipe the trainer refuses, or a capability suite the sampler cannot run, is one ForecastConfigError
    before the first rung trains (not a traceback from the first run, or from sampling after the whole ladder),
    and leaves no plan.json that would refuse the corrected settings in the same --out."""
    from augury.forecast.config import ForecastConfigError

    cfg = make_smoke_config(tmp_path / "f", data_cache, **over)
    with pytest.raises(ForecastConfigError, match=message):
        run_forecast(cfg, log=lambda *a: None)
    out = tmp_path / "f"
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("files, message", [
    ({"notes.md": "# not a text file the folder's suffixes take"}, "holds no text files"),
    ({"a.txt": "too short"}, "fewer than one sequence of 65"),
])
def test_a_held_out_text_folder_that_cannot_be_scored_is_refused_before_anything_trains(
        tmp_path, data_cache, make_smoke_config, files, message):
    """The held-out text is first scored after the whole ladder has trained: a folder it cannot score is refused
    up front instead."""
    from augury.forecast.config import ForecastConfigError

    folder = tmp_path / "text"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    cfg = make_smoke_config(tmp_path / "f", data_cache, text_folder=str(folder))
    with pytest.raises(ForecastConfigError, match=message):
        run_forecast(cfg, log=lambda *a: None)
    out = tmp_path / "f"
    assert not out.exists() or not any(out.iterdir())


def test_device_cuda_without_a_gpu_is_one_error_before_anything_is_written(tmp_path, data_cache, make_smoke_config,
                                                                            monkeypatch, capsys):
    import torch

    from augury.cli import main
    from augury.forecast.config import ForecastConfigError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = make_smoke_config(tmp_path / "f", data_cache, device="cuda")
    with pytest.raises(ForecastConfigError, match="device: cuda, but torch sees no CUDA device"):
        run_forecast(cfg, log=lambda *a: None)
    out = tmp_path / "f"
    assert not out.exists() or not any(out.iterdir())
    # `augury ladder plan` plans a GPU ladder on any machine; only its throughput probe needs the device
    assert main(["ladder", "plan", "--preset", "smoke", "--device", "cuda", "--no-probe"]) == 0
    assert main(["ladder", "plan", "--preset", "smoke", "--device", "cuda"]) == 2
    assert "torch sees no CUDA device" in capsys.readouterr().err


def test_a_damaged_plan_json_is_one_error(tmp_path, data_cache, make_smoke_config):
    from augury.forecast.config import ForecastConfigError

    out = tmp_path / "f"
    out.mkdir()
    (out / "plan.json").write_text('{"identity": {"config": ')  # cut short
    with pytest.raises(ForecastConfigError, match="plan.json is not valid JSON"):
        run_forecast(make_smoke_config(out, data_cache), log=lambda *a: None)
    assert sorted(p.name for p in out.iterdir()) == ["plan.json"]


def test_a_forecast_that_stops_on_an_error_ends_its_progress_line_first(tmp_path, data_cache, make_smoke_config,
                                                                         monkeypatch):
    """The checks refusing a forecast (or any error while the ladder trains) left the progress bar's line open, and
    the one error line was printed on the end of it ("... FLOPsaugury forecast: error: ...")."""
    from augury.forecast import pipeline
    from augury.forecast.progress import Progress

    closed = []
    monkeypatch.setattr(Progress, "close", lambda self: closed.append(True))

    def refuse(*args, **kwargs):
        raise ValueError("the checks refused the forecast")

    monkeypatch.setattr(pipeline, "train_rungs", refuse)
    with pytest.raises(ValueError, match="checks refused"):
        run_forecast(make_smoke_config(tmp_path / "f", data_cache), log=lambda *a: None)
    assert closed == [True]
