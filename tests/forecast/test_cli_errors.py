"""`augury forecast` failures that happen after the ladder trained end in one error line (exit 1), not a
traceback: a forecast.json another process registered meanwhile."""

from __future__ import annotations


def _run(monkeypatch, tmp_path, body):
    """augury forecast --preset smoke, its pipeline replaced by `body` (what fails after the rungs trained)."""
    from augury.cli import main

    monkeypatch.setattr("augury.forecast.pipeline.run_forecast", lambda cfg: body())
    return main(["forecast", "--preset", "smoke", "--out", str(tmp_path / "f")])


def test_a_forecast_registered_meanwhile_is_one_error_line(monkeypatch, tmp_path, capsys):
    from augury.forecast.records import load_forecast, write_forecast

    path = tmp_path / "forecast.json"
    first = write_forecast(path, {"loss": {"predicted": 3.0}})
    assert _run(monkeypatch, tmp_path, lambda: write_forecast(path, {"loss": {"predicted": 2.0}})) == 1
    err = capsys.readouterr().err
    assert err.startswith("augury forecast: error: ") and "never rewritten" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert load_forecast(path)["sha256"] == first["sha256"]


