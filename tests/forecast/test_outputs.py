"""forecast.json and result.json: the schema version (a file of another major version refused on load), the tamper
check, and the typed records reading back what they wrote."""

from __future__ import annotations

import json

import pytest

from augury.forecast.records import (
    SCHEMA_VERSION,
    CapabilityBucket,
    CapabilityFold,
    CapabilityForecast,
    ForecastTampered,
    UnknownSchemaVersion,
    load_forecast,
    read_result,
    write_forecast,
)


def test_forecast_json_carries_its_schema_version_and_an_unknown_major_is_refused(tmp_path):
    path = tmp_path / "forecast.json"
    written = write_forecast(path, {"name": "t", "loss": {"predicted": 3.0}})
    assert written["schema_version"] == SCHEMA_VERSION
    assert load_forecast(path)["loss"] == {"predicted": 3.0}
    older = tmp_path / "old.json"  # written before the field existed: read as 1.0
    older.write_text(json.dumps({k: v for k, v in written.items() if k != "schema_version"}))
    with pytest.raises(Exception) as err:  # its sha256 was over the content with the field: tampered, not unknown
        load_forecast(older)
    assert not isinstance(err.value, UnknownSchemaVersion)
    future = tmp_path / "future.json"
    future.write_text(json.dumps({**written, "schema_version": "2.0"}))
    with pytest.raises(UnknownSchemaVersion, match="schema_version 2.0"):
        load_forecast(future)


def test_forecast_file_is_never_rewritten_and_detects_edits(tmp_path):
    path = tmp_path / "forecast.json"
    content = write_forecast(path, {"loss": {"predicted": 3.0}})
    assert load_forecast(path)["sha256"] == content["sha256"]
    with pytest.raises(FileExistsError):
        write_forecast(path, {"loss": {"predicted": 2.0}})
    data = json.loads(path.read_text())
    data["loss"]["predicted"] = 2.9
    path.write_text(json.dumps(data))
    with pytest.raises(ForecastTampered):
        load_forecast(path)


def test_a_forecast_registered_by_another_process_meanwhile_is_not_overwritten(tmp_path, monkeypatch):
    """Two `augury forecast` runs on one --out: the second passes the exists check, then the first registers;
    the second's write must fail rather than replace the first's registration, and leave no temp file."""
    import augury.forecast.records as records

    path = tmp_path / "forecast.json"
    first: dict = {}
    real = records.content_sha256

    def register_first_meanwhile(content):
        if "sha256" not in first:  # the other process: registered between our check and our write
            monkeypatch.setattr(records, "content_sha256", real)
            first.update(write_forecast(path, {"loss": {"predicted": 3.0}}))
        return real(content)

    monkeypatch.setattr(records, "content_sha256", register_first_meanwhile)
    with pytest.raises(FileExistsError, match="never rewritten"):
        write_forecast(path, {"loss": {"predicted": 2.0}})
    assert load_forecast(path)["sha256"] == first["sha256"]
    assert [p.name for p in tmp_path.iterdir()] == ["forecast.json"]


def test_records_ignore_unknown_fields_and_read_a_single_fold_capability_section():
    # a newer minor version may add fields; a forecast registered before cross-fitting has no `folds`
    bucket = CapabilityBucket(bucket=0, problems=["p1", "p2"], n_problems=2, small_run_pass_rate=0.3, predicted=0.5,
                              interval=[0.4, 0.6], params={"alpha": 1.0, "k": 0.2}, k_interval=[0.1, 0.3])
    fold = {**CapabilityFold(predicted=0.5, interval=[0.4, 0.6], buckets=[bucket], kept_problems=2).to_json(),
            "added_later": 1}
    cap = CapabilityForecast.from_json(fold)
    assert cap.status == "ok" and cap.predicted == 0.5 and len(cap.folds) == 1
    assert cap.folds[0].kept() == ["p1", "p2"] and cap.folds[0].buckets[0].params["k"] == 0.2
    assert "added_later" not in cap.folds[0].to_json()


def test_result_json_of_an_unknown_major_version_is_refused(tmp_path):
    path = tmp_path / "result.json"
    path.write_text(json.dumps({"schema_version": "2.0", "name": "t"}))
    with pytest.raises(UnknownSchemaVersion, match="schema_version 2.0"):
        read_result(path)


def test_non_finite_numbers_read_back_under_the_sha256_they_were_registered_with(tmp_path):
    # a fit diagnostic can be NaN (a correlation of a parameter stuck at its bound) or infinite; the file holds
    # null and ±1e308 for them, and its sha256 is of what the file holds
    path = tmp_path / "forecast.json"
    law = {"correlations": {"a~b": float("nan")}, "bound": float("inf"), "low": float("-inf")}
    written = write_forecast(path, {"name": "t", "loss": {"predicted": 3.0, "law": law}})
    loaded = load_forecast(path)
    assert loaded["sha256"] == written["sha256"]
    assert loaded["loss"]["law"] == {"correlations": {"a~b": None}, "bound": 1e308, "low": -1e308}


def test_result_records_each_failed_target_launch_as_its_error_line(tmp_path):
    """torchrun's summary lists one error line per failed launch; result.json's field is typed and reads back so."""
    import typing

    from augury.forecast.records import Result, Verification, write_result

    failures = ["RuntimeError: Connection reset by peer"]
    assert typing.get_type_hints(Result)["target_failed_launches"] == list[str] | None
    loss = Verification(predicted=3.0, interval=[2.9, 3.1], actual=3.0, rel_error=0.0, covered=True)
    result = Result(name="t", forecast_sha256="0" * 64, verified_at="now", loss=loss, target_run={},
                    largest_rung_fraction=0.1, target_failed_launches=failures)
    write_result(tmp_path / "result.json", result)
    assert read_result(tmp_path / "result.json").target_failed_launches == failures
