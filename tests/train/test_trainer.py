"""The training loop: records, exact resume (also after kill -9), NaN handling, bad input, DDP on gloo."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from augury.io import read_jsonl
from augury.train import TrainConfigError, TrainingDiverged, train
from augury.train.checkpoint import find_latest_checkpoint

REPO = Path(__file__).resolve().parents[2]


def losses(run: str | Path) -> dict[int, float]:
    return {r["step"]: r["train_loss"] for r in read_jsonl(Path(run) / "metrics.jsonl")}


def test_run_writes_records_manifest_and_checkpoint(tiny_cfg):
    cfg = tiny_cfg()
    summary = train(cfg, log=lambda *a: None)
    out = Path(cfg.out)
    records = read_jsonl(out / "metrics.jsonl")
    assert [r["step"] for r in records] == list(range(1, 13))
    for key in ("step", "tokens", "flops", "train_loss", "lr", "tokens_per_s", "mfu"):
        assert key in records[0]
    evals = [r for r in records if "val_loss" in r]
    assert [r["step"] for r in evals] == [6, 12]
    assert evals[-1]["val_bpb"] > 0 and evals[-1]["val_loss"] > 0
    assert records[-1]["tokens"] == 12 * 4 * 32
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["seed"] == 0
    assert manifest["flops_per_token"] * records[-1]["tokens"] == records[-1]["flops"]
    assert "torch" in manifest["versions"] and "config" in manifest
    assert summary["final_val_loss"] == evals[-1]["val_loss"]
    assert find_latest_checkpoint(out).name == "step_00000012"
    assert records[-1]["train_loss"] < records[0]["train_loss"]  # it learns


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_resume_is_bit_exact(tiny_cfg, tmp_path, dtype):
    straight = tiny_cfg(out=str(tmp_path / "straight"), dtype=dtype)
    train(straight, log=lambda *a: None)
    split = tiny_cfg(out=str(tmp_path / "split"), dtype=dtype, stop_after=5)
    assert train(split, log=lambda *a: None)["status"] == "stopped"
    split.stop_after = None
    train(split, resume=True, log=lambda *a: None)
    assert losses(split.out) == losses(straight.out)  # exact float equality, every step



def test_auto_resume_without_a_checkpoint_starts_afresh_without_the_old_records(tiny_cfg, tmp_path):
    """A run killed before its first checkpoint left records behind; `resume="auto"` (what a forecast rerun does)
    starts over and its metrics.jsonl holds each step once, as a straight run's does."""
    straight = tiny_cfg(out=str(tmp_path / "straight"))
    train(straight, log=lambda *a: None)
    killed = tiny_cfg(out=str(tmp_path / "killed"))
    Path(killed.out).mkdir()
    stale = "".join(json.dumps({"step": s, "train_loss": 9.0}) + "\n" for s in (1, 2, 3))
    (Path(killed.out) / "metrics.jsonl").write_text(stale)
    train(killed, resume="auto", log=lambda *a: None)
    assert [r["step"] for r in read_jsonl(Path(killed.out) / "metrics.jsonl")] == list(range(1, 13))
    assert losses(killed.out) == losses(straight.out)



def test_a_run_killed_after_its_final_checkpoint_resumes_to_its_final_evaluation(tiny_cfg):
    """Killed between the last checkpoint and the manifest saying complete: the resume has nothing to train and
    reports the final validation loss the run recorded (a forecast verifies against it)."""
    cfg = tiny_cfg()
    first = train(cfg, log=lambda *a: None)
    manifest_path = Path(cfg.out) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["status"] = "running"
    manifest.pop("summary")
    manifest_path.write_text(json.dumps(manifest))
    again = train(cfg, resume=True, log=lambda *a: None)
    assert again["status"] == "complete" and again["final_val_loss"] == first["final_val_loss"]
    assert json.loads(manifest_path.read_text())["summary"]["final_val_bpb"] == first["final_val_bpb"]


@pytest.mark.integration
def test_resume_after_kill_9_is_bit_exact(tiny_cfg, tmp_path):
    """SIGKILL a run mid-flight (possibly mid-checkpoint), resume it, get the uninterrupted losses."""
    import yaml

    from augury.io import to_jsonable

    ref = tiny_cfg(out=str(tmp_path / "ref"), steps=40, eval_every=0, ckpt_every=3)
    train(ref, log=lambda *a: None)
    cfg = tiny_cfg(out=str(tmp_path / "killed"), steps=40, eval_every=0, ckpt_every=3)
    cfg_file = tmp_path / "killed.yaml"
    cfg_file.write_text(yaml.safe_dump(to_jsonable(cfg)))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "augury", "train", "--config", str(cfg_file)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpts = Path(cfg.out) / "checkpoints"
    deadline = time.time() + 120
    while time.time() < deadline and not any(p.name.startswith("step_") and int(p.name[5:]) >= 6
                                             for p in (ckpts.iterdir() if ckpts.exists() else [])):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert losses(cfg.out) == losses(ref.out)


def test_corrupt_newest_checkpoint_falls_back(tiny_cfg):
    cfg = tiny_cfg(ckpt_every=4, keep_last=3, stop_after=8)
    train(cfg, log=lambda *a: None)
    newest = find_latest_checkpoint(cfg.out)
    assert newest.name == "step_00000008"
    (newest / "model.safetensors").write_bytes(b"garbage")
    messages = []
    assert find_latest_checkpoint(cfg.out, log=messages.append).name == "step_00000004"
    assert "does not match its sha256" in messages[0]


def test_pruning_never_deletes_the_checkpoint_a_fallback_resume_just_wrote(tiny_cfg):
    """A resume that fell back past a corrupt newest checkpoint keeps what it saves, even with keep_last 1 (the
    corrupt one, numbered higher, does not count as newer)."""
    cfg = tiny_cfg(ckpt_every=2, keep_last=2, stop_after=4)
    train(cfg, log=lambda *a: None)
    (find_latest_checkpoint(cfg.out) / "model.safetensors").write_bytes(b"garbage")  # step 4
    train(tiny_cfg(ckpt_every=1, keep_last=1, stop_after=1), resume=True, log=lambda *a: None)  # from step 2
    assert find_latest_checkpoint(cfg.out).name == "step_00000003"
    train(tiny_cfg(ckpt_every=1, keep_last=1, stop_after=2), resume=True, log=lambda *a: None)
    names = sorted(p.name for p in (Path(cfg.out) / "checkpoints").iterdir() if p.name.startswith("step_"))
    assert names == ["step_00000005"]  # the re-saved step 4 replaced the corrupt one, then step 5 replaced both


def test_nan_loss_stops_with_step_and_keeps_last_good_checkpoint(tiny_cfg, monkeypatch, poison_loss_at):
    cfg = tiny_cfg(ckpt_every=3)
    poison_loss_at(monkeypatch, 5)
    with pytest.raises(TrainingDiverged, match="at step 5"):
        train(cfg, log=lambda *a: None)
    assert find_latest_checkpoint(cfg.out).name == "step_00000003"


def test_bad_configs_fail_before_work(tiny_cfg, tmp_path):
    from augury.data import DataError
    from augury.model import ModelConfigError

    with pytest.raises(ModelConfigError, match="not divisible"):
        train(tiny_cfg(model=tiny_cfg().model.__class__(d_model=30, n_heads=4)), log=lambda *a: None)
    empty = tmp_path / "empty"
    empty.mkdir()
    cfg = tiny_cfg()
    cfg.data.source = str(empty)
    with pytest.raises(DataError):
        train(cfg, log=lambda *a: None)
    train(tiny_cfg(steps=2), log=lambda *a: None)
    with pytest.raises(TrainConfigError, match="already holds a run"):
        train(tiny_cfg(steps=2), log=lambda *a: None)
    other = tiny_cfg(steps=4)
    other.model.d_model = 64
    with pytest.raises(TrainConfigError, match="another configuration"):
        train(other, resume=True, log=lambda *a: None)


def test_cli_rejects_unknown_key_and_runs_with_overrides(tiny_cfg, tmp_path):
    import yaml

    from augury.io import to_jsonable

    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(yaml.safe_dump(to_jsonable(tiny_cfg(steps=3))))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    bad = subprocess.run([sys.executable, "-m", "augury", "train", "--config", str(cfg_file), "--model.dept", "2"],
                         env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "model.dept" in bad.stderr
    ok = subprocess.run([sys.executable, "-m", "augury", "train", "--config", str(cfg_file), "--steps", "2",
                         "--optim.schedule", "wsd"], env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    saved = yaml.safe_load((Path(tiny_cfg().out) / "config.yaml").read_text())
    assert saved["steps"] == 2 and saved["optim"]["schedule"] == "wsd"


@pytest.mark.integration
def test_ddp_two_processes_gloo_matches_single_process(tiny_cfg, tmp_path):
    """torchrun with 2 CPU processes (gloo), batch 2 each == 1 process with batch 4 (same windows)."""
    import yaml

    from augury.io import to_jsonable

    single = tiny_cfg(out=str(tmp_path / "single"), steps=4, eval_every=0)
    train(single, log=lambda *a: None)
    ddp = tiny_cfg(out=str(tmp_path / "ddp"), steps=4, eval_every=0, batch_size=2)
    cfg_file = tmp_path / "ddp.yaml"
    cfg_file.write_text(yaml.safe_dump(to_jsonable(ddp)))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "augury", "train", "--config", str(cfg_file)],
                         env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    a, b = losses(single.out), losses(ddp.out)
    assert a.keys() == b.keys()
    for step in a:
        assert b[step] == pytest.approx(a[step], abs=1e-5)
    manifest = json.loads((Path(ddp.out) / "manifest.json").read_text())
    assert manifest["world_size"] == 2 and manifest["tokens_per_step"] == 4 * 32
    # MFU: the global tokens/s against the peak of both processes' devices (peak_flops is one device's)
    for record in read_jsonl(Path(ddp.out) / "metrics.jsonl"):
        expected = record["tokens_per_s"] * manifest["flops_per_token"] / (2 * ddp.peak_flops)
        assert record["mfu"] == pytest.approx(expected, rel=1e-9)


@pytest.mark.integration
def test_ddp_run_resumes_in_one_process_with_the_same_global_batch(tiny_cfg, tmp_path):
    """A run stopped under torchrun (2 x batch 2) continues in one process with batch 4 (`--resume auto`), and
    the steps after the resume are those of an uninterrupted single-process run; another global batch is refused."""
    import yaml

    from augury.io import to_jsonable

    single = tiny_cfg(out=str(tmp_path / "single"), steps=6, eval_every=0)
    train(single, log=lambda *a: None)
    ddp = tiny_cfg(out=str(tmp_path / "ddp"), steps=6, eval_every=0, batch_size=2, stop_after=3, ckpt_every=3)
    cfg_file = tmp_path / "ddp.yaml"
    cfg_file.write_text(yaml.safe_dump(to_jsonable(ddp)))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "augury", "train", "--config", str(cfg_file), "--resume", "auto"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert max(losses(ddp.out)) == 3
    with pytest.raises(TrainConfigError, match="tokens per step"):
        train(tiny_cfg(out=ddp.out, steps=6, eval_every=0, batch_size=2), resume=True, log=lambda *a: None)
    train(tiny_cfg(out=ddp.out, steps=6, eval_every=0, batch_size=4), resume="auto", log=lambda *a: None)
    a, b = losses(single.out), losses(ddp.out)
    assert a.keys() == b.keys()
    for step in a:
        assert b[step] == pytest.approx(a[step], abs=1e-5)


def test_cli_missing_corpus_is_one_line_error(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, "-m", "augury", "train", "--data.source", str(tmp_path / "nope"),
                          "--steps", "2", "--out", str(tmp_path / "run")], env=env, capture_output=True, text=True)
    assert res.returncode == 2
    assert "does not exist" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "run").exists()
