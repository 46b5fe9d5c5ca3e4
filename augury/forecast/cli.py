"""`augury forecast`: train a ladder, pre-register the target's loss and capability, train the target, verify.

    augury forecast                                   # preset cpu-demo: the whole loop, <= 15 min on 2 CPU cores
    augury forecast --preset smoke --out runs/smoke   # < 60 s, for tests
    augury forecast --config my.yaml --ladder.rungs 6 --target.depth 8
    augury forecast --config runs/forecast-cpu-demo/config.yaml      # resume an interrupted forecast

Presets are YAML files in augury/forecast/presets/ (copy one to start your own). Rerunning with the same
settings and --out resumes: finished runs are never retrained and forecast.json is never rewritten.
"""

from __future__ import annotations

import sys

from augury.command import underscore_flags
from augury.errors import UsageError


def split_preset(argv: list[str], default: str | None = "cpu-demo") -> tuple[str | None, list[str]]:
    """Take `--preset NAME` out of argv; a given --config without --preset starts from no preset."""
    argv = list(argv)
    preset = default
    if "--config" in argv or any(a.startswith("--config=") for a in argv):
        preset = None
    for i, a in enumerate(argv):
        if a == "--preset" and i + 1 < len(argv):
            preset = argv[i + 1]
            del argv[i:i + 2]
            break
        if a.startswith("--preset="):
            preset = a.split("=", 1)[1]
            del argv[i]
            break
    return preset, argv


def build_parser(prog: str, description: str):
    from jsonargparse import ActionConfigFile, ArgumentParser

    from augury.forecast.config import ForecastConfig

    parser = ArgumentParser(prog=prog, description=description, default_env=False, allow_abbrev=False)
    parser.add_argument("--preset", type=str, default=None,
                        help="smoke | cpu-demo (default) | gpu | naive-demo: a YAML preset in augury/forecast/presets")
    parser.add_argument("--config", action=ActionConfigFile, help="a YAML file with any of the options below")
    parser.add_class_arguments(ForecastConfig, None)
    return parser


def parse_config(argv: list[str], prog: str, description: str, default_preset: str | None = "cpu-demo"):
    """ForecastConfig from preset + --config + dotted overrides; UsageError on a bad preset, key or value."""
    from augury.forecast.config import ForecastConfig, ForecastConfigError, preset_path

    preset, rest = split_preset(argv, default_preset)
    try:
        head = ["--config", str(preset_path(preset))] if preset else []
    except ForecastConfigError as err:
        raise UsageError(str(err)) from None
    parser = build_parser(prog, description)
    try:
        ns = parser.parse_args(head + underscore_flags(rest))
    except SystemExit as exc:
        if exc.code == 0:  # --help
            raise
        raise UsageError("invalid arguments (see the message above)") from None
    ns.pop("config", None)
    ns.pop("preset", None)
    cfg = parser.instantiate_classes(ns)
    return ForecastConfig(**{k: getattr(cfg, k) for k in ForecastConfig.__dataclass_fields__})


def main(argv: list[str]) -> int:
    from augury.data import DataError
    from augury.forecast.config import ForecastConfigError
    from augury.forecast.pipeline import run_forecast
    from augury.forecast.records import ForecastTampered
    from augury.forecast.runner import TorchrunFailed, WorkerDied
    from augury.train import TrainingDiverged

    if any(a in ("-h", "--help") for a in argv):
        build_parser("augury forecast", __doc__.split("\n")[0]).print_help()
        return 0
    cfg = parse_config(argv, "augury forecast", "Forecast a training run from a model ladder.")
    try:
        run_forecast(cfg)
    except (ForecastConfigError, DataError) as err:
        raise UsageError(str(err)) from None
    except (ForecastTampered, TorchrunFailed, TrainingDiverged, WorkerDied) as err:
        print(f"augury forecast: error: {err}", file=sys.stderr)
        return 1
    return 0
