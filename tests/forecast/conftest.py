"""A smoke forecast shared by the tests of this folder (trained once per session, ~30-60 s on 2 cores)."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items):
    # a test that needs the smoke forecast trains a whole ladder and its target: an integration test
    for item in items:
        if "smoke_forecast" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)


def smoke_config(out, cache, **overrides):
    from augury.forecast.config import load_forecast_config

    over = {"out": str(out), "progress": False, "data": {"cache_dir": str(cache)}}
    for key, value in overrides.items():
        over[key] = {**over.get(key, {}), **value} if isinstance(value, dict) else value
    return load_forecast_config("smoke", overrides=over)


@pytest.fixture(scope="session")
def make_smoke_config():
    return smoke_config


@pytest.fixture(scope="session")
def data_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("forecast-data-cache")


@pytest.fixture(scope="session")
def smoke_forecast(tmp_path_factory, data_cache):
    """A smoke forecast interrupted (Ctrl-C) during rung3, then resumed to the end.

    Returns (out_dir, info) with the rung folders' state right after the interruption and the log lines.
    """
    import os
    from pathlib import Path

    from augury.forecast import training
    from augury.forecast.pipeline import run_forecast

    out = tmp_path_factory.mktemp("smoke") / "forecast"
    repo = Path(__file__).resolve().parents[2]
    wikitext = Path(os.environ.get("AUGURY_SHARED_DATA", repo.parent / "shared" / "data")) / "wikitext-2"
    cfg = smoke_config(out, data_cache, text_folder=str(wikitext) if wikitext.is_dir() else None)
    logs: list[str] = []
    real = training.train_one
    calls = {"n": 0}

    def interrupting(tcfg, threads=None, log=None):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(tcfg, threads, log)

    training.train_one = interrupting
    try:
        with pytest.raises(KeyboardInterrupt):
            run_forecast(cfg, log=logs.append)
    finally:
        training.train_one = real
    after_interrupt = {p.name: (p / "manifest.json").stat().st_mtime_ns for p in (out / "rungs").iterdir()
                       if (p / "manifest.json").exists()}
    forecast_before = (out / "forecast.json").exists()
    result = run_forecast(cfg, log=logs.append)
    return out, {"after_interrupt": after_interrupt, "forecast_existed_at_interrupt": forecast_before,
                 "logs": logs, "result": result, "cfg": cfg}
