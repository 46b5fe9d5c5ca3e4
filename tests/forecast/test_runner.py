"""The local executor's worker processes (`jobs` > 1): a worker that dies is one clear error."""

from __future__ import annotations

import dataclasses
import os

import pytest


@pytest.mark.integration
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
