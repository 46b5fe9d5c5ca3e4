"""The local executor's worker processes (`jobs` > 1): a worker that dies is one clear error."""

from __future__ import annotations

import dataclasses
import os

import pytest


def test_a_worker_that_dies_is_one_clear_error(tmp_path, data_cache, make_smoke_config):
    from augury.data import prepare_data
    from augury.forecast.ladder import plan_runs, train_config
    from augury.forecast.runner import WorkerDied, train_runs_parallel

    cfg = make_smoke_config(tmp_path / "f", data_cache)
    vocab = prepare_data(cfg.data, log=lambda *a, **k: None).tokenizer().get_vocab_size()
    rung1 = plan_runs(cfg, vocab)[0]
    tcfg = dataclasses.replace(train_config(cfg, rung1, str(tmp_path / "rung1"), vocab), progress=False)
    # the run trains, then its worker exits abruptly, as a process killed from outside would (no answer, no
    # exception to pass back)
    with pytest.raises(WorkerDied, match="rung1 died"):
        train_runs_parallel([(rung1, tcfg)], workers=1, threads=1, after=lambda plan: (os._exit, (3,)))
    assert (tmp_path / "rung1" / "manifest.json").is_file()  # what it finished is kept for the rerun


def _smoke_target(tmp_path, data_cache, make_smoke_config, name: str, **changes):
    from augury.data import prepare_data
    from augury.forecast.ladder import plan_runs, train_config

    cfg = make_smoke_config(tmp_path / "f", data_cache)
    vocab = prepare_data(cfg.data, log=lambda *a, **k: None).tokenizer().get_vocab_size()
    target = plan_runs(cfg, vocab)[-1]
    tcfg = train_config(cfg, target, str(tmp_path / name), vocab)
    return dataclasses.replace(tcfg, steps=6, ckpt_every=3, progress=False, **changes)


def test_torchrun_trains_the_same_run_as_one_process(tmp_path, data_cache, make_smoke_config):
    """`target_procs`: the target under torchrun in 2 processes (half the batch each) is the run one process
    trains, up to float rounding, and counts as that run's finished summary (the global batch is compared)."""
    from augury.forecast.runner import finished_summary, train_one, train_torchrun

    one = _smoke_target(tmp_path, data_cache, make_smoke_config, "one")
    two = _smoke_target(tmp_path, data_cache, make_smoke_config, "two")
    assert two.batch_size % 2 == 0
    a = train_one(one, threads=1)
    b = train_torchrun(two, procs=2, threads=1)
    assert b["status"] == "complete" and b["seconds"] > 0
    assert b["final_val_loss"] == pytest.approx(a["final_val_loss"], rel=1e-4)
    import json

    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert manifest["world_size"] == 2 and manifest["config"]["batch_size"] == two.batch_size // 2
    assert finished_summary(tmp_path / "two", two) is not None
    assert finished_summary(tmp_path / "two", dataclasses.replace(two, batch_size=two.batch_size - 2)) is None


def test_torchrun_failure_is_one_error_with_the_workers_message(tmp_path, data_cache, make_smoke_config):
    from augury.forecast.runner import TorchrunFailed, train_torchrun

    bad = _smoke_target(tmp_path, data_cache, make_smoke_config, "bad")
    bad = dataclasses.replace(bad, data=dataclasses.replace(bad.data, source=str(tmp_path / "no-such-corpus")))
    with pytest.raises(TorchrunFailed, match="no-such-corpus") as err:
        train_torchrun(bad, procs=2, threads=1)
    assert "torchrun.log" in str(err.value) and "rerun the same command" in str(err.value)
    with pytest.raises(ValueError, match="cannot share a batch"):
        train_torchrun(dataclasses.replace(bad, batch_size=3), procs=2)
