"""The ray executor: rungs trained as parallel tasks on a local Ray instance give the same runs as local training."""

from __future__ import annotations

import json
import os

import pytest

ray = pytest.importorskip("ray")


@pytest.mark.slow
def test_ray_executor_trains_rungs_in_parallel(data_cache, make_smoke_config, monkeypatch):
    import shutil
    import tempfile
    from pathlib import Path

    # Ray's Unix socket paths must stay under 108 bytes: a short folder instead of pytest's long tmp_path
    tmp_path = Path(tempfile.mkdtemp(prefix="rt"))
    try:
        _check_ray_executor(tmp_path, data_cache, make_smoke_config, monkeypatch)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def _check_ray_executor(tmp_path, data_cache, make_smoke_config, monkeypatch):
    from augury.data import prepare_data
    from augury.forecast.ladder import plan_runs, train_config
    from augury.forecast.runner import finished_summary, train_one, train_runs_ray

    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    cfg = make_smoke_config(tmp_path / "f", data_cache, executor="ray")
    data = prepare_data(cfg.data, log=lambda *a: None)
    vocab = data.tokenizer().get_vocab_size()
    runs = plan_runs(cfg, vocab)[:2]
    jobs = [(r, train_config(cfg, r, str(tmp_path / "f" / "rungs" / r.name), vocab)) for r in runs]
    done = []
    summaries = train_runs_ray(jobs, tmp_path / "f", None, 1, 1, on_done=lambda n, s: done.append(n))
    assert sorted(done) == sorted(r.name for r in runs)
    assert (tmp_path / "f" / "ray").is_dir()  # Ray's temporary files stay inside the forecast folder
    for plan, tcfg in jobs:
        assert finished_summary(tcfg.out, tcfg) is not None
        manifest = json.loads((tmp_path / "f" / "rungs" / plan.name / "manifest.json").read_text())
        assert manifest["status"] == "complete"
    # the same rung trained locally gives the same loss (deterministic CPU training, same seed)
    plan, tcfg = jobs[0]
    import dataclasses

    local = train_one(dataclasses.replace(tcfg, out=str(tmp_path / "local"), progress=False), threads=1)
    assert local["final_val_loss"] == pytest.approx(summaries[plan.name]["final_val_loss"], rel=1e-6)
    assert os.environ.get("RAY_USAGE_STATS_ENABLED") == "0"
