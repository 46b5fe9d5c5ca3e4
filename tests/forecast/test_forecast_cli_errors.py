"""`augury forecast` failures that happen after the ladder trained end in one error line (exit 1), not a
traceback: a forecast.json another process registered meanwhile, a loss law that refuses the target."""

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




def test_a_loss_fit_that_refuses_the_target_is_one_error_line(monkeypatch, tmp_path, capsys):
    """A ladder given by hand whose target lies beyond 4 decades: the fit refuses it once the rungs trained."""
    import numpy as np

    from augury.forecast.config import FitConfig
    from augury.forecast.fits import fit_loss

    flops = np.geomspace(1e10, 1e11, 5)
    rows = [{"name": f"rung{i}", "flops": float(c), "loss": float(40 * c ** -0.12 + 1.5)} for i, c in enumerate(flops)]
    assert _run(monkeypatch, tmp_path, lambda: fit_loss(rows, 1e16, FitConfig(bootstrap=50), seed=0)) == 1
    err = capsys.readouterr().err
    assert err.startswith("augury forecast: error: ") and "cannot be forecast" in err and "decades" in err
    assert "Traceback" not in err
    from types import SimpleNamespace

    from augury.forecast.preregister import _fit

    cfg = SimpleNamespace(fit=FitConfig(bootstrap=50), seed=0)
    rows = [{**r, "compute": r["flops"]} for r in rows]  # preregister fits on the `compute` axis
    assert _run(monkeypatch, tmp_path, lambda: _fit(rows, 1e16, cfg, tmp_path / "f", "the loss law")) == 1
    err = capsys.readouterr().err
    assert err.startswith("augury forecast: error: the loss law: the target cannot be forecast")
    assert "nothing was registered and the target was not trained" in err
