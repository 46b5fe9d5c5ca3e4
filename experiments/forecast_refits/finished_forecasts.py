"""Finished forecast folders, for the benchmarks that look back at them without training (refit_compute_axis.py,
refit_fewer_seeds.py, capability_crossfit_replay.py): finding them, and replaying one's capability forecast.

    from experiments.forecast_refits.finished_forecasts import finished_forecasts, replay_capability
"""

from __future__ import annotations

import glob
import json
from pathlib import Path


def finished_forecasts(patterns: list[str]) -> list[Path]:
    """The folders matching the globs (files beside them, such as forecast_seeds' logs, are not forecasts), sorted.
    Exits on a pattern that matches no folder or a folder without a finished forecast (forecast.json and
    result.json): leaving it out would make every count over the forecasts cover fewer than were named."""
    folders: set[Path] = set()
    for pattern in patterns:
        matched = [Path(p) for p in glob.glob(pattern) if Path(p).is_dir()]
        if not matched:
            raise SystemExit(f"{pattern}: no forecast folder matches")
        folders.update(matched)
    for folder in sorted(folders):
        if not ((folder / "forecast.json").is_file() and (folder / "result.json").is_file()):
            raise SystemExit(f"{folder}: not a finished forecast (no forecast.json and result.json)")
    return sorted(folders)


def replay_capability(folder: Path, cfg):
    """(CapabilityForecast, CapabilityVerification): the folder's capability forecast refitted under `cfg` from its
    recorded samples (capability/<run>.json, the replicas `cfg.ladder.seeds` names) and verified on its target's
    samples, exactly as a new forecast would be. Nothing is trained or sampled."""
    from augury.forecast import crossfit, verify
    from augury.forecast.fits import fit_compute
    from augury.forecast.ladder import plan_runs

    vocab = json.loads((folder / "plan.json").read_text())["vocab_size"]
    runs = plan_runs(cfg, vocab)
    xs = {p.name: fit_compute(p, cfg.fit.compute) for p in runs}
    cap = crossfit.capability_forecast(cfg, folder, None, runs[:-1], xs, xs[runs[-1].name])
    target = json.loads((folder / "capability" / "target.json").read_text())["records"]
    return cap, verify.verify_capability(cap, target)
