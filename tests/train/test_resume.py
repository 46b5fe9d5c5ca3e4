"""What a resume keeps of the run it continues: its logged windows and clock, its data and tokenizer, its
trajectory's settings and its start time; anything that would change the trajectory is one error line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from augury import cli
from augury.io import read_jsonl, to_jsonable
from augury.train import train

QUIET = {"log": lambda *a, **k: None}


def records(run) -> list[dict]:
    return read_jsonl(Path(run) / "metrics.jsonl")


def config_file(cfg, tmp_path, name="train.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(to_jsonable(cfg)))
    return str(path)


def test_a_resumed_run_logs_the_windows_and_clock_of_a_straight_one(tiny_cfg, tmp_path):
    """Records every 4 steps, stopped after 5: the record at step 8 averages steps 5-8 as an uninterrupted run's
    does, and elapsed_s goes on from the checkpoint's instead of starting again at 0."""
    straight = tiny_cfg(out=str(tmp_path / "straight"), log_every=4)
    train(straight, **QUIET)
    split = tiny_cfg(out=str(tmp_path / "split"), log_every=4, stop_after=5)
    train(split, **QUIET)
    split.stop_after = None
    train(split, resume=True, **QUIET)
    keys = ("step", "tokens", "train_loss", "lr", "epoch", "val_loss", "val_bpb")
    assert [[r.get(k) for k in keys] for r in records(split.out)] == [[r.get(k) for k in keys]
                                                                      for r in records(straight.out)]
    assert [r["step"] for r in records(split.out)] == [4, 6, 8, 12]
    elapsed = [r["elapsed_s"] for r in records(split.out)]
    assert elapsed == sorted(elapsed)
    manifest = json.loads((Path(split.out) / "manifest.json").read_text())
    assert manifest["summary"]["train_seconds"] >= elapsed[-1]


def test_a_resume_over_changed_data_is_refused_and_keeps_the_runs_tokenizer(tiny_cfg, tmp_path, capsys):
    cfg = tiny_cfg(steps=6, stop_after=3)
    train(cfg, **QUIET)
    out = Path(cfg.out)
    tokenizer, manifest = (out / "tokenizer.json").read_bytes(), (out / "manifest.json").read_text()
    corpus = Path(cfg.data.source)
    (corpus / "new_module.py").write_text("print('a file added after the run started')\n" * 40)
    cfg.stop_after = None
    resume = ["train", "--config", config_file(cfg, tmp_path), "--resume"]
    assert cli.main(resume) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("augury train: error: cannot resume")
    assert "the prepared data differ (tokenizer.json, train tokens" in err[0]
    assert (out / "tokenizer.json").read_bytes() == tokenizer and (out / "manifest.json").read_text() == manifest
    # A run made before the data's hashes were recorded: the loader's own check is one line, not a traceback.
    saved = json.loads(manifest)
    del saved["identity"]
    (out / "manifest.json").write_text(json.dumps(saved))
    assert cli.main(resume) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "loader state does not match" in err[0], err
    assert (out / "tokenizer.json").read_bytes() == tokenizer
    # The same corpus prepared again (e.g. an emptied cache) is the same data: the run continues.
    (corpus / "new_module.py").unlink()
    (out / "manifest.json").write_text(manifest)
    assert cli.main(resume) == 0
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"


@pytest.mark.parametrize("flags, named", [
    (["--optim.lr", "0.5", "--optim.schedule", "constant"], "optim.lr: checkpoint 0.003, now 0.5; optim.schedule"),
    (["--optim.weight_decay", "0"], "optim.weight_decay"),
    (["--dtype", "bf16"], "dtype (effective): checkpoint fp32, now bf16"),
    (["--seed", "1"], "seed: checkpoint 0, now 1"),
    (["--steps", "8"], "steps: checkpoint 6, now 8"),
    (["--model.depth", "2"], "model.depth"),
    (["--data.val_fraction", "0.2"], "data.val_fraction"),
    (["--eval_batches", "1"], "eval_batches"),
    (["--eval_batch_size", "2"], "eval_batch_size (the validation batch): checkpoint 4, now 2"),
])
def test_a_resume_that_would_change_the_trajectory_is_refused(tiny_cfg, tmp_path, capsys, flags, named):
    cfg = tiny_cfg(steps=6, stop_after=3)
    train(cfg, **QUIET)
    out = Path(cfg.out)
    before = {name: (out / name).read_text() for name in ("manifest.json", "config.yaml", "metrics.jsonl")}
    assert cli.main(["train", "--config", str(out / "config.yaml"), "--resume", *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the checkpoint was made with another configuration" in err[0] and named in err[0]
    assert {name: (out / name).read_text() for name in before} == before


def test_a_resume_may_change_cadence_and_keeps_the_runs_start(tiny_cfg, tmp_path):
    cfg = tiny_cfg(steps=8, stop_after=3, ckpt_every=3)
    train(cfg, **QUIET)
    out = Path(cfg.out)
    created = json.loads((out / "manifest.json").read_text())["created"]
    assert cli.main(["train", "--config", str(out / "config.yaml"), "--resume", "--stop_after", "2",
                     "--log_every", "2", "--eval_every", "4", "--ckpt_every", "1", "--keep_last", "3"]) == 0
    assert cli.main(["train", "--config", str(out / "config.yaml"), "--resume", "--stop_after", "5"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["created"] == created
    assert [r["step"] for r in manifest["resumes"]] == [3, 5]


def test_a_checkpoint_written_on_a_gpu_resumes_on_a_machine_without_one(tmp_path, monkeypatch):
    """`device` may change on resume: optimizer.pt saved from a CUDA run (its tensors tagged cuda:0) loads on a
    CPU-only machine, the state landing on the parameters' device."""
    import torch

    from augury.model import ModelConfig, Transformer
    from augury.train import OptimConfig
    from augury.train.checkpoint import load_checkpoint, save_checkpoint
    from augury.train.step import make_optimizer

    torch.manual_seed(0)
    cfg = ModelConfig(depth=1, d_model=32, head_dim=16, vocab_size=50, max_seq_len=16)
    model = Transformer(cfg)
    optimizer = make_optimizer(model, OptimConfig(lr=1e-3))
    x = torch.randint(0, 50, (2, 8))
    model(x, targets=x).backward()
    optimizer.step()
    import torch.serialization

    with monkeypatch.context() as m:  # what torch.save records for tensors that live on a GPU
        m.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        ckpt = save_checkpoint(tmp_path, 1, model, optimizer, {"step": 1})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    fresh = Transformer(cfg)
    fresh_opt = make_optimizer(fresh, OptimConfig(lr=1e-3))
    assert load_checkpoint(ckpt, fresh, fresh_opt)["step"] == 1
    saved, loaded = optimizer.state_dict()["state"], fresh_opt.state_dict()["state"]
    assert saved.keys() == loaded.keys()
    for k in saved:
        assert loaded[k]["exp_avg"].device.type == "cpu"
        torch.testing.assert_close(loaded[k]["exp_avg"], saved[k]["exp_avg"], rtol=0, atol=0)


def test_a_resume_that_splits_the_batch_otherwise_keeps_the_runs_validation_batches(tiny_cfg, tmp_path):
    """batch_size 4 continued as 2 x grad_accum 2 (fewer processes, say): with eval_batch_size unset the validation
    batches were batch_size sequences, and the resumed run still validates on the same 2 x 4 sequences, so its
    val_loss stays comparable with the records before the resume (and with an uninterrupted run's)."""
    cfg = tiny_cfg(steps=12, stop_after=6)
    train(cfg, **QUIET)
    out = Path(cfg.out)
    assert cli.main(["train", "--config", str(out / "config.yaml"), "--resume", "--batch_size", "2",
                     "--grad_accum", "2", "--stop_after", "3"]) == 0
    assert cli.main(["train", "--config", str(out / "config.yaml"), "--resume"]) == 0
    val = [(r["step"], r["val_tokens"]) for r in records(out) if "val_loss" in r]
    assert val == [(6, 2 * 4 * 32), (12, 2 * 4 * 32)]


def test_rng_state_saved_on_more_gpus_restores_the_devices_this_machine_has(monkeypatch):
    """A run saved on 4 GPUs and resumed on 1 restores that GPU's generator; the others' states are not forced
    onto devices that do not exist (torch's set_rng_state_all indexes past them)."""
    import torch

    from augury.train.checkpoint import rng_state, set_rng_state

    state = rng_state()
    state["cuda"] = [[d] * 16 for d in range(4)]
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s, device="cuda": restored.append((device, s.tolist())))
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: [restored.append((i, s.tolist()))
                                                                         for i, s in enumerate(states)])
    set_rng_state(state)
    assert restored == [(0, [0] * 16)]
