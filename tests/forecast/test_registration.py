"""What holds a registered forecast to what it was made on: the prepared data (plan.json and forecast.json record its
sha256), the held-out text (forecast.json records the tokens' sha256) and forecast.json itself (plan.json records
its sha256 before the target starts). Each is checked on a copy of the session's smoke forecast."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from augury.forecast.config import ForecastConfigError
from augury.forecast.pipeline import run_forecast
from augury.forecast.records import ForecastTampered, content_sha256

FILES = ("plan.json", "forecast.json", "result.json", "target/manifest.json")


def _copy(smoke_forecast, tmp_path):
    out, info = smoke_forecast
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    return copy, dataclasses.replace(info["cfg"], out=str(copy))


def _snapshot(folder: Path) -> dict:
    return {name: (folder / name).read_bytes() for name in FILES}


def _edit_forecast(folder: Path, edit, pin: bool = False) -> None:
    """Edit forecast.json and recompute its own sha256 (and, with `pin`, the one plan.json recorded)."""
    content = json.loads((folder / "forecast.json").read_text())
    edit(content)
    content["sha256"] = content_sha256(content)
    (folder / "forecast.json").write_text(json.dumps(content, indent=2))
    if pin:
        plan = json.loads((folder / "plan.json").read_text())
        (folder / "plan.json").write_text(json.dumps({**plan, "forecast_sha256": content["sha256"]}))


def test_registration_records_the_data_and_the_forecasts_sha256_in_plan_json(smoke_forecast):
    out, _ = smoke_forecast
    plan = json.loads((out / "plan.json").read_text())
    forecast = json.loads((out / "forecast.json").read_text())
    assert plan["forecast_sha256"] == forecast["sha256"]
    assert plan["data_sha256"] == forecast["data_sha256"] and len(plan["data_sha256"]) == 64


@pytest.mark.parametrize("state", ["finished", "target interrupted", "plan.json without the data's sha256"])
def test_resume_on_other_prepared_data_is_refused_before_anything_runs(smoke_forecast, tmp_path, monkeypatch,
                                                                         state):
    """The same config, but data.source's content changed: the rungs, forecast and target would not describe one
    corpus. One error naming both sha256s, nothing rewritten (a target with a checkpoint included: its resume
    would otherwise die on the loader state)."""
    import augury.data

    copy, cfg = _copy(smoke_forecast, tmp_path)
    if state == "target interrupted":
        manifest = json.loads((copy / "target" / "manifest.json").read_text())
        (copy / "target" / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}))
    if state == "plan.json without the data's sha256":  # as an older augury wrote it
        plan = json.loads((copy / "plan.json").read_text())
        (copy / "plan.json").write_text(json.dumps({k: v for k, v in plan.items() if k != "data_sha256"}))
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for module in ("json", "csv", "argparse", "textwrap", "string", "shutil", "tempfile", "fractions"):
        path = Path(__import__(module).__file__)
        shutil.copy(path.parent / "__init__.py" if path.name == "__init__.py" else path, corpus / f"{module}.py")
    other = augury.data.prepare_data(dataclasses.replace(cfg.data, source=str(corpus)), log=lambda *a: None)
    monkeypatch.setattr(augury.data, "prepare_data", lambda *a, **k: other)
    before = _snapshot(copy)
    registered = json.loads((copy / "forecast.json").read_text())["data_sha256"]
    with pytest.raises(ForecastConfigError, match="the prepared data has changed since this forecast began") as err:
        run_forecast(cfg, log=lambda *a: None)
    from augury.forecast.folder import data_sha256

    if state == "plan.json without the data's sha256":
        assert "training split of" in str(err.value)
    else:
        assert registered in str(err.value) and data_sha256(other) in str(err.value)
    assert _snapshot(copy) == before


def _tamper(folder, monkeypatch):
    _edit_forecast(folder, lambda c: c["loss"].update(predicted=3.5, interval=[3.0, 4.0]))


def _other_text(folder, monkeypatch):
    from augury.forecast import heldout_text

    real = heldout_text.encode_folder
    monkeypatch.setattr(heldout_text, "encode_folder", lambda *a, **k: real(*a, **k)[::-1].copy())


EXPECTED = {(_tamper, "before the rerun"): (ForecastTampered, "is not the one .*plan.json recorded"),
            (_tamper, "while the target trains"): (ForecastTampered, "changed while the target trained"),
            (_other_text, "before the rerun"): (ForecastConfigError, "has changed since the forecast was registered"),
            (_other_text, "while the target trains"): (ForecastConfigError, "has changed since the forecast was")}


@pytest.mark.parametrize("when", ["before the rerun", "while the target trains"])
@pytest.mark.parametrize("change", [_tamper, _other_text], ids=["forecast.json edited, sha256 recomputed",
                                                                 "held-out text changed"])
def test_a_forecast_is_verified_only_as_registered_and_on_its_own_text(smoke_forecast, tmp_path, monkeypatch, when,
                                                                         change):
    from augury.forecast import pipeline

    if change is _other_text and not smoke_forecast[1]["cfg"].text_folder:
        pytest.skip("shared wikitext-2 not found (set AUGURY_SHARED_DATA)")
    copy, cfg = _copy(smoke_forecast, tmp_path)
    before = _snapshot(copy)
    if when == "before the rerun":
        change(copy, monkeypatch)
    else:
        real = pipeline.train_target

        def change_then_train(*args, **kwargs):
            change(copy, monkeypatch)
            return real(*args, **kwargs)

        monkeypatch.setattr(pipeline, "train_target", change_then_train)
    error, message = EXPECTED[change, when]
    with pytest.raises(error, match=message):
        run_forecast(cfg, log=lambda *a: None)
    assert (copy / "result.json").read_bytes() == before["result.json"]  # no result on a changed forecast or text


def test_a_forecast_whose_numbers_fail_its_checks_is_verified_as_flagged(smoke_forecast, tmp_path):
    """forecast.json and plan.json both rewritten to call a too-wide interval reliable: the stored numbers are
    checked again, and the result says the forecast was flagged."""
    copy, cfg = _copy(smoke_forecast, tmp_path)

    def widen(content):
        p = content["loss"]["predicted"]
        content["loss"].update(interval=[0.7 * p, 1.3 * p], flags=[], reliable=True)

    _edit_forecast(copy, widen, pin=True)
    logs = []
    result = run_forecast(cfg, log=logs.append)
    assert result.loss.forecast_flagged
    assert any("fail a check that forecast.json does not record" in line for line in logs)


def test_a_registered_forecast_that_is_gone_is_not_fitted_again(smoke_forecast, tmp_path):
    """plan.json records forecast.json's sha256 once it is registered: a forecast.json deleted (or lost) later,
    with the target not trained yet, is an error, not a new forecast with a new sha256 pinned over the one
    published."""
    copy, cfg = _copy(smoke_forecast, tmp_path)
    for name in ("forecast.json", "result.json"):
        (copy / name).unlink()
    shutil.rmtree(copy / "target")
    plan = (copy / "plan.json").read_bytes()
    with pytest.raises(ForecastConfigError, match="plan.json records the sha256 of a registered forecast.json"):
        run_forecast(cfg, log=lambda *a: None)
    assert (copy / "plan.json").read_bytes() == plan
    assert not (copy / "forecast.json").exists() and not (copy / "target").exists()


def test_a_resume_in_another_precision_is_refused(smoke_forecast, tmp_path, monkeypatch):
    """recipe.dtype auto is bf16 where the hardware has it, fp32 elsewhere: a forecast begun on one machine and
    resumed on another would fit rungs of both precisions and verify the forecast on a target of either. The runs
    already there name their precision, and a resume in another is refused before anything trains."""
    import augury.train.runtime

    copy, cfg = _copy(smoke_forecast, tmp_path)
    plan = json.loads((copy / "plan.json").read_text())
    plan["identity"]["config"]["recipe"]["dtype"] = "auto"  # as if begun with dtype auto on a machine without bf16
    (copy / "plan.json").write_text(json.dumps(plan))
    cfg = dataclasses.replace(cfg, recipe=dataclasses.replace(cfg.recipe, dtype="auto"), device="cpu")
    monkeypatch.setattr(augury.train.runtime, "bf16_supported", lambda device: True)
    before = _snapshot(copy)
    with pytest.raises(ForecastConfigError, match="rung1 was trained in fp32, this invocation would train in bf16"):
        run_forecast(cfg, log=lambda *a: None)
    assert _snapshot(copy) == before


@pytest.mark.parametrize("damage", ["truncated", "another major version"])
def test_an_unreadable_forecast_json_is_one_error_line(smoke_forecast, tmp_path, capsys, damage):
    """forecast.json cut short (a copy that failed, an editor) or written by an augury of another major schema
    version: `augury forecast` says so in one line and writes nothing, not a JSON or schema traceback."""
    from augury.cli import main

    copy, _ = _copy(smoke_forecast, tmp_path)
    text = (copy / "forecast.json").read_text()
    if damage == "truncated":
        (copy / "forecast.json").write_text(text[:len(text) // 2])
    else:
        (copy / "forecast.json").write_text(json.dumps({**json.loads(text), "schema_version": "9.0"}))
    before = _snapshot(copy)
    assert main(["forecast", "--config", str(copy / "config.yaml"), "--out", str(copy), "--progress", "false"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("augury forecast: error: ") and "forecast.json" in err[0]
    assert ("not valid JSON" if damage == "truncated" else "schema_version 9.0") in err[0]
    after = _snapshot(copy)
    assert all(after[name] == before[name] for name in ("forecast.json", "result.json", "target/manifest.json"))


@pytest.mark.parametrize("run", ["rungs/rung2", "target"])
def test_a_run_trained_with_other_settings_is_refused_not_reused(smoke_forecast, tmp_path, run):
    """A run folder whose manifest records settings other than the ones this forecast plans for it (here another
    weight decay: an augury with other defaults, or a hand edit) would be fitted beside runs of another recipe, or
    verify the forecast on another target. Refused before anything trains, naming the run and the setting."""
    copy, cfg = _copy(smoke_forecast, tmp_path)
    path = copy / run / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["config"]["optim"]["weight_decay"] = 0.0
    path.write_text(json.dumps(manifest))
    before = _snapshot(copy)
    with pytest.raises(ForecastConfigError, match=rf"{run.split('/')[-1]} was trained with other settings .*"
                                                  r"optim.weight_decay: 0.0 then, 0.1 now"):
        run_forecast(cfg, log=lambda *a: None)
    assert _snapshot(copy) == before
