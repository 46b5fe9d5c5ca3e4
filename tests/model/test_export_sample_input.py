"""`augury export` and `augury sample` with bad input: one error line, exit 2, and nothing of the run lost."""

from __future__ import annotations

import dataclasses
import shutil

import pytest
import torch
import yaml

from augury import cli
from augury.model import ModelConfig, Transformer


@pytest.fixture
def run(tmp_path, tiny_tokenizer_path):
    """A run folder as training leaves it: config.yaml, tokenizer.json, metrics.jsonl and one checkpoint."""
    from augury.train.checkpoint import save_checkpoint

    folder = tmp_path / "run"
    folder.mkdir()
    cfg = ModelConfig(vocab_size=300, depth=1, d_model=32, n_heads=2, max_seq_len=64)
    model = Transformer(cfg)
    save_checkpoint(folder, 1, model, torch.optim.AdamW(model.parameters()), {"step": 1})
    (folder / "config.yaml").write_text(yaml.safe_dump({"model": dataclasses.asdict(cfg)}))
    shutil.copyfile(tiny_tokenizer_path, folder / "tokenizer.json")
    (folder / "metrics.jsonl").write_text('{"step": 1}\n')
    return folder


def contents(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("target", ["run", "run/checkpoints", "run/hf", ".", "other_run", "mixed", "a_file",
                                    "a_file/hf"])
def test_export_refuses_a_folder_it_may_not_replace(run, tmp_path, monkeypatch, capsys, target):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(run, tmp_path / "other_run")
    (tmp_path / "mixed").mkdir()
    (tmp_path / "mixed" / "config.json").write_text("{}")
    (tmp_path / "mixed" / "notes.txt").write_text("mine")
    (tmp_path / "a_file").write_text("mine")
    before = {name: contents(tmp_path / name) for name in ("run", "other_run", "mixed")}
    assert cli.main(["export", "run", "--hf", target, "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("augury export: error:") and len(err.strip().splitlines()) == 1
    assert {name: contents(tmp_path / name) for name in before} == before
    assert (tmp_path / "a_file").read_text() == "mine"


@pytest.mark.parametrize("under", ["", "hf"])
def test_export_to_a_folder_that_cannot_be_written_is_one_error(run, read_only_dir, capsys, under):
    target = read_only_dir / under if under else read_only_dir
    assert cli.main(["export", str(run), "--hf", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"augury export: error: {target}") and len(err.strip().splitlines()) == 1, err
    assert "not writable" in err and read_only_dir.is_dir()


def test_export_overwrite_replaces_a_previous_export(run, tmp_path, capsys):
    hf = tmp_path / "hf"
    assert cli.main(["export", str(run), "--hf", str(hf)]) == 0
    assert cli.main(["export", str(run), "--hf", str(hf)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert cli.main(["export", str(run), "--hf", str(hf), "--overwrite"]) == 0
    assert sorted(p.name for p in hf.iterdir()) == ["config.json", "generation_config.json", "model.safetensors",
                                                       "tokenizer.json", "tokenizer_config.json"]


@pytest.mark.parametrize("flags, message", [
    (["--temperature", "-1"], "temperature"),
    (["--top_p", "-0.1"], "top_p"),
    (["--top_p", "2"], "top_p"),
    (["--max_tokens", "0"], "max_tokens"),
    (["--system", "be brief"], "--system needs --chat"),  # it would be dropped without a word
])
def test_sample_refuses_out_of_range_settings(run, capsys, flags, message):
    assert cli.main(["sample", str(run), "--prompt", "def", *flags]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err
    assert err.startswith("augury sample: error:") and message in err and "Traceback" not in err


def test_sample_from_a_checkpoint_whose_logits_are_nan_is_one_error_line(tmp_path, tiny_tokenizer_path, capsys):
    from augury.train.checkpoint import save_checkpoint

    folder = tmp_path / "nan_run"
    folder.mkdir()
    cfg = ModelConfig(vocab_size=300, depth=1, d_model=32, n_heads=2, max_seq_len=64)
    model = Transformer(cfg)
    with torch.no_grad():
        model.embed_tokens.weight.fill_(float("nan"))
    save_checkpoint(folder, 1, model, torch.optim.AdamW(model.parameters()), {"step": 1})
    (folder / "config.yaml").write_text(yaml.safe_dump({"model": dataclasses.asdict(cfg)}))
    shutil.copyfile(tiny_tokenizer_path, folder / "tokenizer.json")
    for temperature in ("0", "0.8"):  # greedy or sampled: no token is printed as if chosen
        assert cli.main(["sample", str(folder), "--prompt", "def", "--temperature", temperature]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and "Traceback" not in captured.err
        assert captured.err.startswith("augury sample: error:") and "NaN" in captured.err


def test_sample_stop_strings_keep_non_ascii_text_and_read_escapes(run, monkeypatch, capsys):
    import augury.model.sample as sample_module

    seen = {}

    def fake_generate(model, tokenizer, prompt, *, stop, **kw):
        seen["stop"] = stop
        return [""]

    monkeypatch.setattr(sample_module, "generate", fake_generate)
    assert cli.main(["sample", str(run), "--prompt", "def", "--stop", "é", "--stop", "✓ done",
                     "--stop", "\\n\\n", "--stop", "tab\\there"]) == 0
    assert seen["stop"] == ["é", "✓ done", "\n\n", "tab\there"]


def test_sample_refuses_a_stop_string_with_a_broken_escape(run, capsys):
    assert cli.main(["sample", str(run), "--prompt", "def", "--stop", "end\\"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("augury sample: error:") and "--stop" in err and "Traceback" not in err


@pytest.mark.parametrize("command", [["export", "--hf", "HF"], ["sample", "--prompt", "def", "--max_tokens", "2"]])
def test_a_checkpoint_of_another_model_is_one_error(run, tmp_path, capsys, command):
    """--checkpoint from a run of another width: one error line naming the checkpoint, no traceback, nothing written."""
    from augury.train.checkpoint import save_checkpoint

    wider = Transformer(ModelConfig(vocab_size=300, depth=1, d_model=64, n_heads=2, max_seq_len=64))
    other = save_checkpoint(tmp_path / "wider", 1, wider, torch.optim.AdamW(wider.parameters()), {"step": 1})
    argv = [command[0], str(run), "--checkpoint", str(other), *[str(tmp_path / a) if a == "HF" else a
                                                                for a in command[1:]]]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"augury {command[0]}: error:") and str(other) in err and "shape" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "HF").exists()


@pytest.mark.parametrize("command", [["export", "--hf", "HF"], ["sample", "--prompt", "def", "--max_tokens", "2"]])
@pytest.mark.parametrize("given, message", [("run/checkpoints/step_00000009", "does not exist"),
                                            ("run/metrics.jsonl", "is a file, not a checkpoint folder")])
def test_a_checkpoint_that_is_not_there_is_called_missing(run, tmp_path, capsys, command, given, message):
    """A mistyped --checkpoint was reported as an 'incomplete write', as if a checkpoint had been damaged."""
    argv = [command[0], str(run), "--checkpoint", str(tmp_path / given), *[str(tmp_path / a) if a == "HF" else a
                                                                            for a in command[1:]]]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"augury {command[0]}: error: checkpoint {tmp_path / given} {message}")
    assert "incomplete" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "HF").exists()


def test_sample_chat_refuses_a_conversation_longer_than_the_context(tmp_path, capsys):
    """A --chat prompt over the context was cut from the left, losing its opening and the user's role token, and
    the model continued what was left; it is now one error line."""
    from augury.data.tokenizer import train_tokenizer
    from augury.train.checkpoint import save_checkpoint

    tok = train_tokenizer(["What is two plus two? It is four.\n"] * 30, 300)
    cfg = ModelConfig(vocab_size=tok.get_vocab_size(), depth=1, d_model=32, n_heads=2, max_seq_len=64)
    model = Transformer(cfg)
    folder = tmp_path / "chat_run"
    save_checkpoint(folder, 1, model, torch.optim.AdamW(model.parameters()), {"step": 1})
    (folder / "config.yaml").write_text(yaml.safe_dump({"model": dataclasses.asdict(cfg)}))
    tok.save(str(folder / "tokenizer.json"))
    assert cli.main(["sample", str(folder), "--chat", "--prompt", "What is two plus two?", "--max_tokens", "2"]) == 0
    capsys.readouterr()
    assert cli.main(["sample", str(folder), "--chat", "--prompt", "What is two plus two? " * 40]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err
    assert err.startswith("augury sample: error:") and "context" in err and len(err.strip().splitlines()) == 1
