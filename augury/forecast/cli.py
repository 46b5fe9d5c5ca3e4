"""`augury forecast`: train a ladder, pre-register the target's loss and capability, train the target, verify.

    augury forecast                                   # preset cpu-demo: the whole loop, <= 15 min on 2 CPU cores
    augury forecast --preset smoke --out runs/smoke   # < 60 s, for tests
    augury forecast --target.d_model 200 --ladder.rungs 5    # cpu-demo, a wider target and one more rung
    augury forecast --config runs/forecast-cpu-demo/config.yaml      # resume an interrupted forecast

Presets are YAML files in augury/forecast/presets/ (copy one to start your own). Rerunning with the same
settings and --out resumes: finished runs are never retrained and forecast.json is never rewritten.
"""

from __future__ import annotations

import sys

from augury.command import underscore_flags
from augury.errors import UsageError


def split_preset(argv: list[str], default: str | None = "cpu-demo") -> tuple[str | None, str | None, list[str]]:
    """(preset, config file, the other flags) of a command line: `--preset NAME` and `--config FILE` taken out of
    argv; a given --config without --preset starts from no preset."""
    argv = underscore_flags(argv)
    found: dict[str, list[str]] = {"--preset": [], "--config": []}
    rest, i = [], 0
    while i < len(argv):
        name, eq, value = argv[i].partition("=")
        if name in found and (eq or i + 1 < len(argv)):
            found[name].append(value if eq else argv[i + 1])
            i += 1 if eq else 2
            continue
        rest.append(argv[i])
        i += 1
    for name, values in found.items():
        if len(values) > 1:
            raise UsageError(f"give {name} once (got {', '.join(values)})")
    config = found["--config"][0] if found["--config"] else None
    preset = found["--preset"][0] if found["--preset"] else (None if config else default)
    return preset, config, rest


def parse_config(argv: list[str], prog: str = "augury forecast", default_preset: str | None = "cpu-demo"):
    """The ForecastConfig of a command line (config.load_forecast_config: preset, --config FILE, dotted flags);
    UsageError on a bad preset, file, key or value."""
    from augury.forecast.config import ForecastConfigError, load_forecast_config

    preset, config, rest = split_preset(argv, default_preset)
    try:
        return load_forecast_config(preset, config, argv=rest, prog=prog)
    except ForecastConfigError as err:
        raise UsageError(str(err), prog=prog) from None


def print_help(prog: str, doc: str, listed: dict[str, dict] | None = None) -> None:
    """The module's docstring, then every option: the config's, `--preset NAME` (the starting YAML) and `listed`
    (other flags the command reads before its parser)."""
    from augury.command import config_cli, preset_option
    from augury.forecast.config import PRESETS, ForecastConfig

    print(doc)
    try:
        config_cli(ForecastConfig, ["--help"], prog,
                   listed={**preset_option(list(PRESETS), "augury/forecast/presets/NAME.yaml",
                                           "cpu-demo unless --config is given"), **(listed or {})})
    except SystemExit:
        pass


def main(argv: list[str]) -> int:
    from augury.data import DataError
    from augury.forecast.config import ForecastConfigError
    from augury.forecast.pipeline import run_forecast
    from augury.forecast.records import AlreadyRegistered, ForecastTampered, UnknownSchemaVersion
    from augury.forecast.runner import WorkerDied
    from augury.forecast.torchrun import TorchrunFailed
    from augury.scaling import TableError
    from augury.train import TrainingDiverged

    if any(a in ("-h", "--help") for a in argv):
        print_help("augury forecast", __doc__)
        return 0
    cfg = parse_config(argv, "augury forecast")
    try:
        run_forecast(cfg)
    except (ForecastConfigError, DataError) as err:
        raise UsageError(str(err)) from None
    # TableError: a fit that refuses the target once the rungs trained (fits.fit_loss, preregister._fit)
    except (AlreadyRegistered, ForecastTampered, TableError, TorchrunFailed, TrainingDiverged, UnknownSchemaVersion,
            WorkerDied) as err:
        print(f"augury forecast: error: {err}", file=sys.stderr)
        return 1
    return 0
