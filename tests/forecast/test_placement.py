"""Ladder runs on GPUs: each run's share of a GPU by size, best-fit packing, and both executors placing runs on
(fake) GPUs: the local one through CUDA_VISIBLE_DEVICES per worker, Ray through fractional num_gpus."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path

import pytest

from augury.forecast.placement import GpuSlots, gpu_share, training_memory_bytes, visible_gpu_ids

GIB = 2**30


def test_share_is_the_smallest_power_of_two_fraction_that_holds_the_run():
    assert gpu_share(5 * GIB, 80 * GIB, rungs_per_gpu=8) == 1 / 8   # 5 GiB x 8 fits 72 usable GiB
    assert gpu_share(10 * GIB, 80 * GIB, rungs_per_gpu=8) == 1 / 4  # x 8 would not
    assert gpu_share(30 * GIB, 80 * GIB, rungs_per_gpu=8) == 1 / 2
    assert gpu_share(50 * GIB, 80 * GIB, rungs_per_gpu=8) == 1.0
    assert gpu_share(500 * GIB, 80 * GIB, rungs_per_gpu=8) == 1.0   # needs more than a GPU: a whole one
    assert gpu_share(1 * GIB, 80 * GIB, rungs_per_gpu=4) == 1 / 4   # never more runs per GPU than asked
    assert gpu_share(1 * GIB, 80 * GIB, rungs_per_gpu=3) == 1 / 2   # 3 is not a power of two: 2
    assert gpu_share(1 * GIB, 80 * GIB, rungs_per_gpu=1) == 1.0
    with pytest.raises(ValueError):
        gpu_share(GIB, 80 * GIB, rungs_per_gpu=0)


def test_best_fit_fills_one_gpu_before_spreading_and_keeps_whole_gpus_free():
    slots = GpuSlots(2)
    assert [slots.place(s) for s in (0.25, 0.25, 0.5)] == [0, 0, 0]  # small runs share GPU 0
    assert slots.place(1.0) == 1                                    # a whole GPU is still free for a large one
    assert slots.place(0.25) is None                                # full: it waits
    slots.release(0, 0.5)
    assert slots.place(0.25) == 0 and slots.place(0.25) == 0 and slots.place(0.25) is None
    assert slots.free == [0.0, 0.0]


def test_first_fit_decreasing_packs_a_ladder_onto_two_gpus_at_once():
    # a ladder's shares, largest first (as the executors order them): everything fits at once on 2 GPUs
    shares = [1.0, 0.5, 0.25, 0.125, 0.125]
    slots = GpuSlots(2)
    placed = [slots.place(s) for s in shares]
    assert placed == [0, 1, 1, 1, 1] and slots.free == [0.0, 0.0]


def test_run_memory_grows_with_size_and_the_smoke_ladder_shares_gpus(make_smoke_config, tmp_path):
    from augury.forecast.ladder import plan_runs, train_config

    cfg = make_smoke_config(tmp_path / "f", tmp_path / "cache")
    runs = plan_runs(cfg, 512)
    tcfgs = [train_config(cfg, r, str(tmp_path / r.name), 512) for r in runs]
    memory = [training_memory_bytes(t) for t in tcfgs]
    assert memory == sorted(memory) and memory[0] < memory[-1]  # the plan goes from small to large
    big = dataclasses.replace(tcfgs[-1], batch_size=tcfgs[-1].batch_size * 4)
    assert training_memory_bytes(big) > memory[-1]
    # smoke-sized runs are tiny: on an 80 GiB GPU each takes the smallest share allowed
    assert {gpu_share(m, 80 * GIB, 4) for m in memory} == {0.25}
    # on a (fictitious) 4 GiB GPU the 1 GiB process overhead alone makes them take half of one each
    assert {gpu_share(m, 4 * GIB, 4) for m in memory} == {0.5}


def test_visible_ids_follow_this_process_cuda_visible_devices(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert visible_gpu_ids(2) == ["0", "1"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert visible_gpu_ids(2) == ["3", "5"]


def _tiny_jobs(make_smoke_config, root: Path, data_cache, n: int):
    from augury.data import prepare_data
    from augury.forecast.ladder import plan_runs, train_config

    cfg = make_smoke_config(root / "f", data_cache, device="cpu")
    vocab = prepare_data(cfg.data, log=lambda *a: None).tokenizer().get_vocab_size()
    runs = plan_runs(cfg, vocab)[:n]
    return [(r, dataclasses.replace(train_config(cfg, r, str(root / "f" / "rungs" / r.name), vocab), steps=3))
            for r in runs]


@pytest.mark.integration
def test_local_executor_packs_runs_on_fake_gpus(make_smoke_config, data_cache, tmp_path):
    """Two fake GPUs "3" and "5": a whole-GPU run and two half-GPU runs, 2 workers. Largest first: the whole run
    on "3", a half on "5", the other half waits for a worker and then also goes to "5" (best fit). Each worker
    process sees only its GPU in CUDA_VISIBLE_DEVICES."""
    import os

    from augury.forecast.runner import train_runs_parallel

    jobs = _tiny_jobs(make_smoke_config, tmp_path, data_cache, 3)
    shares = {jobs[0][0].name: 1.0, jobs[1][0].name: 0.5, jobs[2][0].name: 0.5}
    seen = tmp_path / "seen"
    seen.mkdir()

    def after(plan):  # runs in the worker: its environment, as a shell started there sees it
        return os.system, (f'echo "$CUDA_VISIBLE_DEVICES" > {seen / plan.name}',)

    started = []
    out = train_runs_parallel(jobs, workers=2, threads=1, after=after, gpu_shares=shares, gpus=["3", "5"],
                              on_start=lambda i, plan: started.append(plan.name))
    names = [plan.name for plan, _ in jobs]
    assert started == names
    assert [out[n]["gpu"] for n in names] == ["3", "5", "5"]
    assert [(seen / n).read_text().strip() for n in names] == ["3", "5", "5"]
    assert all(out[n]["status"] == "complete" for n in names)


@pytest.mark.integration
def test_ray_executor_requests_gpu_fractions(make_smoke_config, data_cache, monkeypatch):
    """A local Ray instance with 2 (fake) GPUs: runs asking for 1/2 and 1/4 of a GPU are given one by Ray
    (each task's summary records Ray's GPU id); without shares no GPU is requested, as on a CPU cluster."""
    pytest.importorskip("ray", reason="the ray executor's test needs ray (pip install 'augury[ray]')")
    from augury.forecast.runner import train_runs_ray

    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    root = Path(tempfile.mkdtemp(prefix="rg"))  # Ray's socket paths must stay short
    try:
        jobs = _tiny_jobs(make_smoke_config, root, data_cache, 3)
        shares = {jobs[0][0].name: 0.25, jobs[1][0].name: 0.5, jobs[2][0].name: 0.25}
        out = train_runs_ray(jobs[:3], root / "f", None, 1, 1, gpu_shares=shares, num_gpus=2)
        assert {n: s["status"] for n, s in out.items()} == {p.name: "complete" for p, _ in jobs}
        assert all(out[p.name]["gpu"] in ("0", "1") for p, _ in jobs)
        cpu_only = [(p, dataclasses.replace(c, out=c.out + "-cpu")) for p, c in jobs[:1]]
        out = train_runs_ray(cpu_only, root / "f", None, 1, 1, num_gpus=2)
        assert "gpu" not in out[jobs[0][0].name]
    finally:
        shutil.rmtree(root, ignore_errors=True)
