"""The main job: train a model ladder, pre-register a forecast of the target, train the target, verify, report.

    augury forecast [--preset smoke|cpu-demo|gpu|naive-demo] [--config FILE] [--out DIR]
    augury ladder plan [--preset P] [--config FILE] [--no-probe]

    from augury.forecast import load_forecast_config, run_forecast, plan_runs
    result = run_forecast(load_forecast_config("smoke", overrides={"out": "runs/smoke"}))

See docs/forecast.md for the protocol (recipe, N and C, ladder rules, checks).
"""

from augury.forecast.checks import validate
from augury.forecast.config import ForecastConfig, ForecastConfigError, load_forecast_config
from augury.forecast.fits import fit_loss
from augury.forecast.ladder import RunPlan, format_plan, plan_runs, probe_throughput, train_config
from augury.forecast.pipeline import run_forecast
from augury.forecast.records import (
    Forecast,
    ForecastTampered,
    Result,
    load_forecast,
    read_forecast,
    read_result,
    write_forecast,
)

__all__ = [
    "Forecast",
    "ForecastConfig",
    "ForecastConfigError",
    "ForecastTampered",
    "Result",
    "RunPlan",
    "fit_loss",
    "format_plan",
    "load_forecast",
    "load_forecast_config",
    "plan_runs",
    "probe_throughput",
    "read_forecast",
    "read_result",
    "run_forecast",
    "train_config",
    "validate",
    "write_forecast",
]
