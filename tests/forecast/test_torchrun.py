"""Training one run data-parallel under torchrun: the same run as one process, failures quoted and relaunched."""

from __future__ import annotations

import dataclasses

import pytest


def _smoke_target(tmp_path, data_cache, make_smoke_config, name: str, **changes):
    from augury.data import prepare_data
    from augury.forecast.ladder import plan_runs, train_config

    cfg = make_smoke_config(tmp_path / "f", data_cache)
    vocab = prepare_data(cfg.data, log=lambda *a, **k: None).tokenizer().get_vocab_size()
    target = plan_runs(cfg, vocab)[-1]
    tcfg = train_config(cfg, target, str(tmp_path / name), vocab)
    return dataclasses.replace(tcfg, steps=6, ckpt_every=3, progress=False, **changes)


@pytest.mark.integration
def test_torchrun_trains_the_same_run_as_one_process(tmp_path, data_cache, make_smoke_config):
    """`target_procs`: the target under torchrun in 2 processes (half the batch each) is the run one process
    trains, up to float rounding, and counts as that run's finished summary (the global batch is compared)."""
    from augury.forecast.runner import finished_summary, train_one
    from augury.forecast.torchrun import train_torchrun

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


@pytest.mark.integration
def test_torchrun_failure_is_one_error_with_the_workers_message(tmp_path, data_cache, make_smoke_config):
    from augury.forecast.torchrun import LAUNCH_MARK, TorchrunFailed, train_torchrun

    bad = _smoke_target(tmp_path, data_cache, make_smoke_config, "bad")
    bad = dataclasses.replace(bad, data=dataclasses.replace(bad.data, source=str(tmp_path / "no-such-corpus")))
    with pytest.raises(TorchrunFailed, match="no-such-corpus") as err:
        train_torchrun(bad, procs=2, threads=1)
    assert "torchrun.log" in str(err.value) and "rerun the same command" in str(err.value)
    # a configuration error fails the same way every time: not launched again
    assert (tmp_path / "bad" / "torchrun.log").read_text().count(LAUNCH_MARK) == 1
    with pytest.raises(ValueError, match="cannot share a batch"):
        train_torchrun(dataclasses.replace(bad, batch_size=3), procs=2)


def test_torchrun_failure_quotes_the_root_cause_ranks_error(tmp_path):
    """Workers' uncaught errors come prefixed "[rankN]: "; the one quoted is the rank torchrun names as the root
    cause, not the peer that failed because of it (the log is torch 2.13's own output for such a failure)."""
    from augury.forecast.torchrun import LAUNCH_MARK, worker_error

    log = tmp_path / "torchrun.log"
    log.write_text(
        "[rank0]: RuntimeError: an older launch's error\n"
        f"{LAUNCH_MARK} python -m torch.distributed.run ...\n"
        "[rank1]: Traceback (most recent call last):\n"
        "[rank1]:   File \"/tmp/w.py\", line 4, in <module>\n"
        "[rank1]: RuntimeError: boom from rank 1\n"
        "[rank0]:     work.wait()\n"
        "[rank0]: RuntimeError: [gloo/transport/tcp/pair.cc:553] Connection closed by peer [127.0.0.1]:19356.\n"
        "E1127 torch/distributed/elastic/multiprocessing/api.py:1002] failed (exitcode: 1) local_rank: 1\n"
        "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: \n"
        "Root Cause (first observed failure):\n[0]:\n  time      : 2026-11-27_23:46:20\n  host      : localhost\n"
        "  rank      : 1 (local_rank: 1)\n  exitcode  : 1 (pid: 23128)\n")
    assert worker_error(log) == "RuntimeError: boom from rank 1"
    log.write_text(f"{LAUNCH_MARK} python -m torch.distributed.run ...\nstep 3 of 10\nKilled\n")
    assert worker_error(log).startswith("no error message (killed?)") and "Killed" in worker_error(log)


@pytest.mark.integration
def test_failed_processes_are_launched_again_and_resume(tmp_path, data_cache, make_smoke_config, monkeypatch):
    """Processes that fail for another reason than a bad configuration (a crash, a lost connection) are launched
    once more and resume from the last checkpoint; the failure is reported in the summary, and a second failure
    is the error."""
    from augury.forecast import torchrun

    real = torchrun.run_logged
    calls = []

    def first_launch_crashes(cmd, env, log_path, metrics, poll):
        calls.append(cmd)
        if len(calls) == 1:  # half the run trains, then a process dies with a transport error
            rc = real(cmd[:-4] + ["--config", str(half), "--resume", "auto"], env, log_path, metrics, poll)
            assert rc == 0
            with open(log_path, "a") as f:
                f.write(f"{torchrun.LAUNCH_MARK} (the test)\n[rank1]: RuntimeError: Connection reset by peer\n")
            return 1
        return real(cmd, env, log_path, metrics, poll)

    cfg = _smoke_target(tmp_path, data_cache, make_smoke_config, "run")
    half = tmp_path / "half.yaml"
    import yaml

    from augury.io import to_jsonable

    half.write_text(yaml.safe_dump(to_jsonable(dataclasses.replace(cfg, batch_size=cfg.batch_size // 2,
                                                                   stop_after=3))))
    messages = []
    monkeypatch.setattr(torchrun, "run_logged", first_launch_crashes)
    summary = torchrun.train_torchrun(cfg, procs=2, threads=1, log=messages.append)
    assert summary["status"] == "complete" and summary["failed_launches"] == ["RuntimeError: Connection reset by peer"]
    assert "launching them again" in messages[0]
    assert "resumed from" in (tmp_path / "run" / "torchrun.log").read_text()  # the second launch continued at step 3

    calls.clear()
    monkeypatch.setattr(torchrun, "run_logged", lambda *a: calls.append(a) or 1)
    with pytest.raises(torchrun.TorchrunFailed):
        torchrun.train_torchrun(dataclasses.replace(cfg, out=str(tmp_path / "other")), procs=2, threads=1,
                                log=messages.append)
    assert len(calls) == 2
