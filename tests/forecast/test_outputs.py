"""forecast.json's schema version: written on registration, a file of another major version refused on load."""

from __future__ import annotations

import json

import pytest

from augury.forecast.preregister import SCHEMA_VERSION, UnknownSchemaVersion, load_forecast, write_forecast


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
