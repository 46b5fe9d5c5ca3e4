"""`augury train` with bad input: one error line and exit 2 before anything is written, and a run that stops before
its first checkpoint leaves nothing that blocks running the same command again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from augury import cli
from augury.io import to_jsonable
from augury.train import TrainConfigError, TrainingDiverged, train


def config_file(cfg, tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(to_jsonable(cfg)))
    return str(path)


@pytest.mark.parametrize("flags, message", [
    (["--optim.lr", "-1"], "optim.lr must be a finite number > 0"),
    (["--optim.lr", "0"], "optim.lr must be a finite number > 0"),
    (["--optim.lr", ".nan"], "optim.lr must be a finite number > 0"),
    (["--optim.beta2", "1"], "optim.beta2"),
    (["--optim.warmup_steps", "-2"], "optim.warmup_steps"),
    (["--init_from", "/no/such/run"], "init_from starts an image-text run"),
    (["--eval_every", "-1"], "eval_every must be >= 0"),
    (["--ckpt_every", "-3"], "ckpt_every must be >= 0"),
    (["--stop_after", "0"], "stop_after must be >= 1"),
    (["--stop_after", "-2"], "stop_after must be >= 1"),
    (["--eval_batches", "0"], "eval_batches must be >= 1"),
    (["--steps", "null", "--tokens", "0"], "tokens must be >= 1"),
    (["--steps", "null", "--tokens", "-500"], "tokens must be >= 1"),
    (["--steps", "null", "--tokens_per_param", "-1"], "tokens_per_param must be a finite number > 0"),
    (["--steps", "null", "--tokens_per_param", ".nan"], "tokens_per_param must be a finite number > 0"),
    (["--steps", "0"], "steps must be >= 1"),
    (["--steps", "-4"], "steps must be >= 1"),
])
def test_cli_refuses_bad_settings_before_writing(tiny_cfg, tmp_path, capsys, flags, message):
    cfg = tiny_cfg(steps=2)
    assert cli.main(["train", "--config", config_file(cfg, tmp_path), *flags]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("augury train: error:") and message in err[0]
    assert captured.out == ""  # refused before any work: no data prepared, nothing announced
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("inside", [False, True])
def test_cli_out_that_is_a_file_or_under_one(tiny_cfg, tmp_path, capsys, inside):
    (tmp_path / "run").write_text("mine")
    under = ["--out", str(tmp_path / "run" / "inside")] if inside else []
    assert cli.main(["train", "--config", config_file(tiny_cfg(steps=2), tmp_path), *under]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("augury train: error:") and "run is a file, not a folder" in err[0]
    assert (tmp_path / "run").read_text() == "mine"


@pytest.mark.parametrize("kind, command", [("sft", "sft"), ("reward_model", "rm")])
@pytest.mark.parametrize("resume", [[], ["--resume"], ["--resume", "auto"]])
def test_cli_will_not_resume_a_run_another_command_made(tiny_cfg, tmp_path, capsys, resume, kind, command):
    import torch

    from augury.model import ModelConfig, Transformer
    from augury.train.checkpoint import save_checkpoint

    sft = tmp_path / "run"
    model = Transformer(ModelConfig(vocab_size=300, depth=1, d_model=32, n_heads=2))
    save_checkpoint(sft, 5, model, torch.optim.AdamW(model.parameters()), {"step": 5})
    (sft / "manifest.json").write_text(json.dumps({"kind": kind, "finished": True, "steps": 5}))
    before = sorted(p.name for p in sft.rglob("*"))
    assert cli.main(["train", "--config", config_file(tiny_cfg(steps=2), tmp_path), *resume]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"holds an `augury {command}` run" in err[0]
    assert sorted(p.name for p in sft.rglob("*")) == before


@pytest.mark.parametrize("made_empty", [False, True])
def test_divergence_before_the_first_checkpoint_leaves_a_folder_that_reruns(tiny_cfg, monkeypatch, made_empty,
                                                                             poison_loss_at):
    cfg = tiny_cfg(steps=6, log_every=1, eval_every=0)
    if made_empty:
        Path(cfg.out).mkdir()
    with monkeypatch.context() as patch:
        poison_loss_at(patch, 3)
        with pytest.raises(TrainingDiverged, match="No checkpoint had been written"):
            train(cfg, log=lambda *a: None)
    out = Path(cfg.out)
    assert (out.is_dir() and not any(out.iterdir())) if made_empty else not out.exists()
    assert train(cfg, log=lambda *a: None)["status"] == "complete"


@pytest.mark.parametrize("resume", [[], ["--resume"], ["--resume", "auto"]])
def test_cli_refuses_a_folder_of_other_files_before_any_work(tiny_cfg, tmp_path, capsys, resume):
    """A folder holding a user's own files (no manifest.json: no augury run) is not trained into, whatever --resume
    says: one error line, no data prepared, nothing written next to the files."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert cli.main(["train", "--config", config_file(tiny_cfg(steps=2), tmp_path), *resume]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("augury train: error:")
    assert "holds files that are not an augury run (no manifest.json)" in err[0] and "choose another --out" in err[0]
    assert captured.out == ""
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("files", [
    ("tokenizer.json", ".config.yaml.x1y2.tmp"),  # killed between copying tokenizer.json and writing manifest.json
    ("torchrun.yaml", "torchrun.log"),  # `augury forecast`'s torchrun launcher writes these before the processes run
])
def test_a_folder_of_only_a_runs_own_files_starts_again(tiny_cfg, files):
    """A folder without manifest.json that holds only files `augury train` (or its launcher) writes, and perhaps an
    atomic write's temporary file, is this run's folder, not someone else's."""
    cfg = tiny_cfg(steps=2, eval_every=0)
    out = Path(cfg.out)
    out.mkdir()
    for name in files:
        (out / name).write_text("{}")
    assert train(cfg, resume="auto", log=lambda *a: None)["status"] == "complete"


def test_a_folder_that_held_a_run_is_left_as_it_was_found(tiny_cfg, monkeypatch, poison_loss_at):
    """A run killed before its first checkpoint left records behind; `resume="auto"` starts over, and when that
    fails too before a checkpoint the folder (which held something before) is not removed."""
    cfg = tiny_cfg(steps=6, log_every=1, eval_every=0)
    Path(cfg.out).mkdir()
    (Path(cfg.out) / "metrics.jsonl").write_text(json.dumps({"step": 1, "train_loss": 9.0}) + "\n")
    poison_loss_at(monkeypatch, 3)
    with pytest.raises(TrainingDiverged):
        train(cfg, resume="auto", log=lambda *a: None)
    assert (Path(cfg.out) / "metrics.jsonl").exists()
    with pytest.raises(TrainConfigError, match="wrote no checkpoint"):
        train(cfg, log=lambda *a: None)


@pytest.mark.parametrize("overrides, message", [
    ({"val_fraction": 0.0}, "data.val_fraction is 0, so there is no validation split"),
    ({"eval_batch_size": 1000}, r"too small for one validation batch of eval_batch_size x seq_len \+ 1 = 1000 x 32"),
])
def test_a_validation_split_too_small_to_evaluate_is_refused_before_step_1(tiny_cfg, overrides, message):
    cfg = tiny_cfg(steps=3, ckpt_every=1, eval_every=0)
    if "val_fraction" in overrides:
        cfg.data.val_fraction = overrides["val_fraction"]
    else:
        cfg.eval_batch_size = overrides["eval_batch_size"]
    with pytest.raises(TrainConfigError, match=message):
        train(cfg, log=lambda *a: None)
    assert not Path(cfg.out).exists()  # not a single step trained, no checkpoint left behind


@pytest.mark.parametrize("files, overrides, message", [
    # One document: train always keeps one, so there is no validation split whatever val_fraction says.
    (1, {}, r"the corpus is 1 document and training keeps it, so there is no validation split; "
            r"data.val_fraction cannot change that: "
            r"use a corpus of several documents \(files in a folder, or a JSONL file with one per line"),
    (3, {"max_bytes": 2000},
     r"the corpus is 1 document .*data.max_bytes \(now 2000\) cut it there: raise it, or use a corpus"),
    # Two documents, one held out: a larger val_fraction cannot move the last train document either.
    (2, {"eval_batch_size": 1000}, r"train keeps its only document, so a larger data.val_fraction cannot help"),
])
def test_a_corpus_too_few_documents_to_split_says_what_helps(tiny_cfg, tmp_path, files, overrides, message):
    corpus = tmp_path / "few"
    corpus.mkdir()
    for i in range(files):
        (corpus / f"doc{i}.py").write_text("".join(f"def f{i}_{j}(x):\n    return x * {j} + {i}\n"
                                                   for j in range(300)))
    cfg = tiny_cfg(steps=3, ckpt_every=1, eval_every=0)
    cfg.data.source = str(corpus)
    cfg.data.max_bytes = overrides.get("max_bytes")
    cfg.eval_batch_size = overrides.get("eval_batch_size")
    with pytest.raises(TrainConfigError, match=message) as err:
        train(cfg, log=lambda *a: None)
    assert "raise data.val_fraction" not in str(err.value)
    assert not Path(cfg.out).exists()


@pytest.mark.parametrize("spelling, resume", [([], False), (["--resume"], True), (["--resume", "yes"], True),
                                              (["--resume", "true"], True), (["--resume=true"], True),
                                              (["--resume", "false"], False), (["--resume", "no"], False),
                                              (["--resume", "auto"], "auto")])
def test_resume_takes_the_boolean_spellings_other_commands_take(spelling, resume):
    # `augury sft/rm/rl --resume true` is how docs/align.md resumes; docs/cli.md says a boolean flag is bare or
    # `true`/`false` in every command, so `augury train --resume true` must not be an invalid choice
    from augury.train.cli import parse_args

    assert parse_args(spelling)[1] == resume
