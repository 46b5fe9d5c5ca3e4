"""FSDP2 (`parallel: fsdp`) on gloo: the same losses as one process, sharded (DCP) checkpoints that resume bit for
bit after a kill -9, onto another number of processes, and that export to the Hugging Face layout."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from augury.io import read_jsonl, to_jsonable
from augury.train import TrainConfigError, train

REPO = Path(__file__).resolve().parents[2]


def records(run) -> dict[int, dict]:
    return {r["step"]: r for r in read_jsonl(Path(run) / "metrics.jsonl")}


def torchrun_cmd(cfg, tmp_path, procs: int = 2, *extra: str) -> tuple[list[str], dict]:
    import yaml

    cfg_file = tmp_path / f"{Path(cfg.out).name}.yaml"
    cfg_file.write_text(yaml.safe_dump(to_jsonable(cfg)))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--local-addr", "127.0.0.1",
           "--nproc_per_node", str(procs), "-m", "augury", "train", "--config", str(cfg_file), *extra]
    return cmd, env


def torchrun(cfg, tmp_path, procs: int = 2, *extra: str) -> None:
    cmd, env = torchrun_cmd(cfg, tmp_path, procs, *extra)
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]


def descendants(pid: int) -> list[int]:
    """The processes started by `pid`, transitively (torchrun starts its workers in sessions of their own)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def fsdp_cfg(tiny_cfg, name: str, tmp_path, **kw):
    from augury.model import ModelConfig

    base = dict(out=str(tmp_path / name), model=ModelConfig(depth=2, d_model=32, head_dim=16, max_seq_len=64),
                steps=6, grad_accum=2, eval_every=3, eval_batches=3, eval_batch_size=4, parallel="fsdp")
    return tiny_cfg(**{**base, **kw})


@pytest.mark.integration
def test_fsdp_two_processes_match_one_process_and_export(tiny_cfg, tmp_path):
    """2 processes x batch 2 x 2 micro-batches under FSDP2 == 1 process x batch 4 x 2 (same windows): train and
    validation losses within rounding; the sharded checkpoint exports to transformers with the same logits."""
    from transformers import LlamaForCausalLM

    from augury.model.export import export_hf
    from augury.model.run import load_run

    single = fsdp_cfg(tiny_cfg, "single", tmp_path, batch_size=4, parallel="ddp")
    train(single, log=lambda *a: None)
    sharded = fsdp_cfg(tiny_cfg, "fsdp", tmp_path, batch_size=2)
    torchrun(sharded, tmp_path)
    a, b = records(single.out), records(sharded.out)
    assert a.keys() == b.keys() == set(range(1, 7))
    for step in a:
        assert b[step]["train_loss"] == pytest.approx(a[step]["train_loss"], abs=1e-5)
        assert b[step]["flops"] == a[step]["flops"] and b[step]["tokens"] == a[step]["tokens"]
    for step in (3, 6):  # evaluated on both processes, 3 batches shared 2 + 1
        assert b[step]["val_loss"] == pytest.approx(a[step]["val_loss"], abs=1e-5)
        assert b[step]["val_bpb"] == pytest.approx(a[step]["val_bpb"], abs=1e-5)
    manifest = json.loads((Path(sharded.out) / "manifest.json").read_text())
    assert manifest["parallel"] == "fsdp" and manifest["world_size"] == 2 and manifest["status"] == "complete"
    ckpt = Path(sharded.out) / "checkpoints" / "step_00000006"
    assert sorted(p.name for p in (ckpt / "dcp").iterdir()) == [".metadata", "__0_0.distcp", "__1_0.distcp"]
    assert not (ckpt / "model.safetensors").exists()

    model, _, _ = load_run(sharded.out)  # one process, no process group: shards assembled by name
    reference, _, _ = load_run(single.out)
    x = torch.randint(0, model.cfg.vocab_size, (2, 16))
    with torch.no_grad():
        assert torch.allclose(model(x), reference(x), atol=1e-4)
        export_hf(model, Path(sharded.out) / "tokenizer.json", tmp_path / "hf")
        hf = LlamaForCausalLM.from_pretrained(tmp_path / "hf").eval()
        assert torch.allclose(hf(x).logits, model(x), atol=1e-5)


@pytest.mark.integration
def test_fsdp_resume_after_kill_9_is_bit_exact_and_onto_one_process(tiny_cfg, tmp_path):
    """SIGKILL a 2-process FSDP2 run mid-flight (possibly mid-checkpoint): resumed on 2 processes it gives the
    uninterrupted losses bit for bit; the same checkpoint resumed in 1 process (batch 4) continues the same run
    within rounding (DCP reshards model and optimizer state)."""
    ref = fsdp_cfg(tiny_cfg, "ref", tmp_path, batch_size=2, steps=30, eval_every=0, ckpt_every=2)
    torchrun(ref, tmp_path)
    cfg = fsdp_cfg(tiny_cfg, "killed", tmp_path, batch_size=2, steps=30, eval_every=0, ckpt_every=2)
    cmd, env = torchrun_cmd(cfg, tmp_path)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpts = Path(cfg.out) / "checkpoints"
    deadline = time.time() + 180
    while time.time() < deadline and not any(p.name.startswith("step_") and int(p.name[5:]) >= 6
                                             for p in (ckpts.iterdir() if ckpts.exists() else [])):
        time.sleep(0.01)
    for pid in [*descendants(proc.pid), proc.pid]:  # both workers, then torchrun
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()
    time.sleep(0.5)  # the killed workers' files are closed
    resumed_at = max(int(p.name[5:]) for p in ckpts.iterdir() if p.name.startswith("step_"))
    assert resumed_at < 30, "the run finished before it was killed; make it longer"
    one = tmp_path / "one"
    shutil.copytree(cfg.out, one)

    torchrun(cfg, tmp_path, 2, "--resume")
    ref_losses = {s: r["train_loss"] for s, r in records(ref.out).items()}
    assert {s: r["train_loss"] for s, r in records(cfg.out).items()} == ref_losses  # exact, every step

    with pytest.raises(TrainConfigError, match="tokens per step"):  # 1 process must keep the global batch
        train(fsdp_cfg(tiny_cfg, "one", tmp_path, batch_size=2, steps=30, eval_every=0, ckpt_every=2),
              resume=True, log=lambda *a: None)
    train(fsdp_cfg(tiny_cfg, "one", tmp_path, batch_size=4, steps=30, eval_every=0, ckpt_every=2),
          resume=True, log=lambda *a: None)
    got = records(one)
    assert got.keys() == ref_losses.keys()
    for step, loss in ref_losses.items():
        assert got[step]["train_loss"] == pytest.approx(loss, abs=2e-5), step
    manifest = json.loads((one / "manifest.json").read_text())
    assert manifest["world_size"] == 1 and manifest["status"] == "complete"


def test_fsdp_one_process_equals_plain_training(tiny_cfg, tmp_path):
    """FSDP2 over a one-process group is the plain run, bit for bit, and its checkpoint is sharded (dcp/)."""
    plain = fsdp_cfg(tiny_cfg, "plain", tmp_path, batch_size=4, steps=3, eval_every=0, parallel="ddp")
    train(plain, log=lambda *a: None)
    sharded = fsdp_cfg(tiny_cfg, "sharded", tmp_path, batch_size=4, steps=3, eval_every=0)
    train(sharded, log=lambda *a: None)
    got = records(sharded.out)
    assert got.keys() == records(plain.out).keys()
    for step, rec in records(plain.out).items():
        assert (got[step]["train_loss"], got[step].get("val_loss")) == (rec["train_loss"], rec.get("val_loss"))
    assert (Path(sharded.out) / "checkpoints" / "step_00000003" / "dcp" / ".metadata").is_file()
    assert not torch.distributed.is_initialized()  # the one-process group is torn down


def test_a_sharded_checkpoint_resumes_without_fsdp(tiny_cfg, tmp_path):
    """An FSDP2 run stopped at step 2 continues as a plain run (parallel: ddp) from its dcp/ checkpoint, with the
    losses of a plain run from the start, bit for bit."""
    plain = fsdp_cfg(tiny_cfg, "plain", tmp_path, batch_size=4, steps=4, eval_every=0, parallel="ddp")
    train(plain, log=lambda *a: None)
    train(fsdp_cfg(tiny_cfg, "mixed", tmp_path, batch_size=4, steps=4, eval_every=0, stop_after=2),
          log=lambda *a: None)
    train(fsdp_cfg(tiny_cfg, "mixed", tmp_path, batch_size=4, steps=4, eval_every=0, parallel="ddp"), resume=True,
          log=lambda *a: None)
    assert {s: r["train_loss"] for s, r in records(tmp_path / "mixed").items()} == \
        {s: r["train_loss"] for s, r in records(plain.out).items()}


def test_fsdp_refuses_a_checkpoint_without_shards(tiny_cfg, tmp_path):
    from augury.model.weights import CheckpointError

    cfg = fsdp_cfg(tiny_cfg, "run", tmp_path, batch_size=4, steps=2, eval_every=0, parallel="ddp", stop_after=1)
    train(cfg, log=lambda *a: None)
    with pytest.raises(CheckpointError, match="parallel: ddp"):
        train(fsdp_cfg(tiny_cfg, "run", tmp_path, batch_size=4, steps=2, eval_every=0), resume=True,
              log=lambda *a: None)
    assert not torch.distributed.is_initialized()


def test_cli_fsdp_resume_of_a_checkpoint_without_shards_is_one_error_line(tiny_cfg, tmp_path, capsys):
    # docs/training.md: "A model.safetensors checkpoint (a ddp run) does not resume under fsdp: one clear error"
    import yaml

    from augury import cli

    cfg = fsdp_cfg(tiny_cfg, "run", tmp_path, batch_size=4, steps=2, eval_every=0, parallel="ddp", stop_after=1)
    train(cfg, log=lambda *a: None)
    capsys.readouterr()
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(to_jsonable(cfg)))
    assert cli.main(["train", "--config", str(path), "--resume", "--parallel", "fsdp"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line.lower()]
    assert len(err) == 1 and err[0].startswith("augury train: error:") and "parallel: ddp" in err[0], err
    assert not torch.distributed.is_initialized()


def test_bad_parallel_is_refused(tiny_cfg):
    with pytest.raises(TrainConfigError, match="parallel"):
        train(tiny_cfg(parallel="zero3"), log=lambda *a: None)


def test_bf16_gathered_parameters_are_refused_off_a_gpu(tiny_cfg):
    """fsdp_param_dtype: bf16 only means something for a CUDA bf16 run; elsewhere it would silently do nothing."""
    for bad in (dict(parallel="ddp", dtype="bf16"), dict(parallel="fsdp", device="cpu", dtype="bf16"),
                dict(parallel="fsdp", dtype="fp32"), dict(parallel="fsdp", device="auto", dtype="bf16")):
        with pytest.raises(TrainConfigError, match="fsdp_param_dtype"):
            train(tiny_cfg(fsdp_param_dtype="bf16", **bad), log=lambda *a: None)
    assert not torch.distributed.is_initialized()
