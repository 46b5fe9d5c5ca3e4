"""The local executor's worker processes (`jobs` > 1): a worker that dies is one clear error."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

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


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_workers_do_not_outlive_a_killed_forecast(tmp_path):
    """`kill` (SIGTERM's default action ends Python without its cleanup) or `kill -9` of `augury forecast` with
    `jobs` > 1: its worker processes end too, instead of training on beside the rerun in the same run folders."""
    script = tmp_path / "parent.py"
    script.write_text(
        "import os, signal, sys, time\n"
        "from augury.forecast import runner\n"
        "if __name__ == '__main__':\n"  # the spawned worker imports this file too
        "    pool = runner.worker_pool(1, gpus=None)\n"
        "    pid = pool.submit(os.getpid).result()\n"
        "    pool.submit(time.sleep, 60)\n"
        "    time.sleep(0.5)\n"
        "    open(sys.argv[1], 'w').write(str(pid))\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n")
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p)}
    with open(tmp_path / "stderr", "w") as err:  # a file, not a pipe: a worker left running would hold a pipe open
        rc = subprocess.run([sys.executable, str(script), str(tmp_path / "pid")], stdout=err, stderr=err, env=env,
                            timeout=120).returncode
    assert rc == -signal.SIGKILL, (tmp_path / "stderr").read_text()
    worker = int((tmp_path / "pid").read_text())
    for _ in range(300):  # the signal is delivered at once; allow a slow machine to reap it
        if not _alive(worker):
            break
        time.sleep(0.1)
    alive = _alive(worker)
    if alive:
        os.kill(worker, signal.SIGKILL)
    assert not alive, "the worker kept running after its parent was killed"


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, ended but not yet reaped by init, counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
