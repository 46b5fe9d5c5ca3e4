"""Image-text runs: `augury train` with a vision config, checkpoints holding both parts, `augury sample --image`,
and bad input reported once before any training or generation."""

import json

import numpy as np
import pytest
from PIL import Image

from augury.cli import main as cli_main
from augury.data.images import ImageDataConfig
from augury.model.vision import VisionConfig
from augury.train.config import TrainConfig, TrainConfigError
from augury.train.trainer import train

TINY = {"vocab_size": 300, "depth": 1, "d_model": 32, "n_heads": 2, "max_seq_len": 64}


def tiny_config(out, **kw):
    from augury.model import ModelConfig

    base = {"out": str(out), "model": ModelConfig(**TINY), "steps": 3, "batch_size": 4, "device": "cpu",
            "dtype": "fp32", "progress": False, "log_every": 1,
            "vision": VisionConfig(image_size=16, patch_size=8, depth=1, d_model=32, n_heads=2),
            "images": ImageDataConfig(tasks=["digits", "charts", "words"], train_examples=8, heldout_examples=3)}
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("vision") / "run"
    train(tiny_config(out), log=lambda *a, **k: None)
    return out


def test_a_run_keeps_both_parts_and_reports_the_controls(image_run):
    from safetensors.torch import load_file

    from augury.model.run import load_run
    from augury.model.vision import ImageTextModel

    ckpt = max((image_run / "checkpoints").glob("step_*"))
    names = load_file(str(ckpt / "model.safetensors")).keys()
    assert any(n.startswith("vision.") for n in names) and "embed_tokens.weight" in names
    model, _, _ = load_run(image_run)
    assert isinstance(model, ImageTextModel)
    report = json.loads((image_run / "image_eval.json").read_text())
    assert set(report) == {"digits", "charts", "words"}
    assert set(report["charts"]) == {"is_max", "greater", "largest"}
    assert all({"real", "blank", "shuffled", "chance", "n"} <= set(r) for t in report.values() for r in t.values())
    manifest = json.loads((image_run / "manifest.json").read_text())
    assert manifest["params"]["vision_total"] == sum(p.numel() for p in model.vision.parameters())


def test_sample_answers_about_an_image(image_run, tmp_path, capsys):
    path = tmp_path / "digit.png"
    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(path)
    assert cli_main(["sample", str(image_run), "--image", str(path), "--prompt", "Which digit is shown?",
                     "--temperature", "0", "--max_tokens", "3"]) == 0
    assert capsys.readouterr().out.strip() != "Which digit is shown?"  # the answer, not the prompt echoed


def test_bad_image_input_is_one_error_before_generation(image_run, tmp_path, capsys):
    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(good)
    broken = tmp_path / "broken.png"
    broken.write_bytes(good.read_bytes()[:20])
    cases = [(["--image", str(broken)], "truncated|cannot be read"),
             (["--image", str(good), "--image", str(good)], "1 <\\|image\\|> placeholder|0 <\\|image\\|>"),
             (["--image", str(good), "--prompt", "<|image|> and <|image|>?"], "2 <\\|image\\|> placeholder")]
    for args, message in cases:
        argv = ["sample", str(image_run), *args]
        if "--prompt" not in args:
            argv += ["--prompt", "What is it?"]
        assert cli_main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("error:") == 1 and __import__("re").search(message, err), err


def test_an_image_for_a_text_only_run_is_refused(tmp_path, capsys):
    from augury.model import ModelConfig, Transformer
    from augury.train.checkpoint import save_checkpoint

    run = tmp_path / "text"
    run.mkdir()
    (run / "config.yaml").write_text(json.dumps({"model": TINY}))
    model = Transformer(ModelConfig(**TINY))
    import torch

    save_checkpoint(run, 1, model, torch.optim.AdamW(model.parameters()), {"step": 1})
    from augury.data.tokenizer import train_tokenizer

    train_tokenizer(["a b c"] * 3, 300).save(str(run / "tokenizer.json"))
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(image)
    assert cli_main(["sample", str(run), "--image", str(image), "--prompt", "hi"]) == 2
    assert "text-only run" in capsys.readouterr().err


def test_half_an_image_config_is_refused_before_work(tmp_path):
    with pytest.raises(TrainConfigError, match="both a `vision` and an `images`"):
        train(tiny_config(tmp_path / "a", vision=None), log=lambda *a, **k: None)
    with pytest.raises(TrainConfigError, match="images.tasks"):
        train(tiny_config(tmp_path / "b", images=ImageDataConfig(tasks=["faces"])), log=lambda *a, **k: None)
    with pytest.raises(TrainConfigError, match="fewer than one batch"):
        train(tiny_config(tmp_path / "c", batch_size=32), log=lambda *a, **k: None)
    with pytest.raises(TrainConfigError, match="stop_after must be >= 1"):
        train(tiny_config(tmp_path / "d", stop_after=0), log=lambda *a, **k: None)
    with pytest.raises(TrainConfigError, match="ckpt_every must be >= 0"):
        train(tiny_config(tmp_path / "e", ckpt_every=-3), log=lambda *a, **k: None)
    assert not any((tmp_path / d).exists() for d in "abcde")


def test_augury_eval_scores_image_tasks_with_controls(image_run, tmp_path, capsys):
    from augury.data.images import make_examples
    from augury.evals.images import write_image_records

    write_image_records(make_examples("digits", "heldout", 3, image_size=16), tmp_path / "data", "mine")
    out = tmp_path / "results"
    assert cli_main(["eval", "--model", f"augury:{image_run}", "--tasks", "image_words,image_charts",
                     "--limit", "6", "--out", str(out)]) == 0
    result = json.loads(next(out.glob("image_results_*.json")).read_text())
    assert set(result["results"]) == {"words", "charts"} and result["results"]["words"]["which_word"]["n"] == 6
    assert cli_main(["eval", "--model", f"augury:{image_run}", "--tasks", "image:mine.jsonl",
                     "--data-dir", str(tmp_path / "data"), "--out", str(out)]) == 0
    capsys.readouterr()
    assert cli_main(["eval", "--model", f"augury:{image_run}", "--tasks", "image:missing.jsonl",
                     "--data-dir", str(tmp_path / "data"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "FILE").write_text("mine")
    assert cli_main(["eval", "--model", f"augury:{image_run}", "--tasks", "image_words", "--limit", "2",
                     "--out", str(tmp_path / "FILE" / "results")]) == 2
    assert "FILE is a file, not a folder" in capsys.readouterr().err  # before the evaluation, not after it


def test_task_weights_set_each_tasks_share_of_an_epoch_whatever_its_size():
    import numpy as np

    from augury.train.image_text import epoch_order

    sizes = [10, 10, 100]
    plain = epoch_order(sizes, None, seed=3, epoch=0)
    assert sorted(plain) == list(range(120))  # every example once, as without weights
    order = epoch_order(sizes, [1, 1, 1], seed=3, epoch=0)
    assert len(order) == 120 and np.array_equal(order, epoch_order(sizes, [1, 1, 1], seed=3, epoch=0))
    task = np.searchsorted(np.cumsum(sizes), order, side="right")
    assert np.bincount(task).tolist() == [40, 40, 40]
    assert len(set(order[task == 2])) == 40  # the large pool is sampled without replacement
    assert not np.array_equal(order, epoch_order(sizes, [1, 1, 1], seed=3, epoch=1))


def test_a_label_loss_trains_a_label_head_that_the_run_keeps_and_reloads(tmp_path):
    """With images.label_loss the encoder's label head is built for the labels seen, trained (its loss logged
    beside the answers'), saved in the checkpoint and rebuilt by load_run; the run resumes with it."""
    from augury.model.run import load_run

    out = tmp_path / "run"
    images = ImageDataConfig(tasks=["digits", "words"], train_examples=8, heldout_examples=2, label_loss=0.5,
                             task_weights={"digits": 1, "words": 1})
    vision = VisionConfig(image_size=16, patch_size=8, depth=1, d_model=32, n_heads=2, stem_channels=4)
    train(tiny_config(out, images=images, vision=vision, steps=5, ckpt_every=2, stop_after=3),
          log=lambda *a, **k: None)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(r["label_loss"] > 0 and r["train_loss"] > 0 for r in records)
    model, _, _ = load_run(out)
    assert model.vision.label_head is not None and model.vision_cfg.label_classes >= 2
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["params"]["vision_total"] == sum(p.numel() for p in model.vision.parameters())
    train(tiny_config(out, images=images, vision=vision, steps=5, ckpt_every=2), resume=True,
          log=lambda *a, **k: None)
    assert json.loads((out / "manifest.json").read_text())["summary"]["step"] == 5


def biased_copy(image_run, run, token_id):
    """A copy of the image run at `run` with an output bias that all but forces `token_id` at every step."""
    import shutil
    from dataclasses import replace

    import torch
    import yaml

    from augury.model.run import load_run
    from augury.model.vision import ImageTextModel
    from augury.train.checkpoint import save_checkpoint

    shutil.copytree(image_run, run, ignore=shutil.ignore_patterns("checkpoints"))
    raw = yaml.safe_load((run / "config.yaml").read_text())
    raw["model"]["output_bias"] = True
    (run / "config.yaml").write_text(yaml.safe_dump(raw))
    model, _, cfg = load_run(image_run)
    biased = ImageTextModel(replace(cfg, output_bias=True), model.vision_cfg)
    biased.load_state_dict(model.state_dict(), strict=False)
    with torch.no_grad():
        biased.output_bias[token_id] = 50.0
    save_checkpoint(run, 1, biased, torch.optim.AdamW(biased.parameters()), {"step": 1})
    return run


@pytest.fixture(scope="module")
def image_token_run(image_run, tmp_path_factory):
    from augury.model.vision import IMAGE_TOKEN_ID

    return biased_copy(image_run, tmp_path_factory.mktemp("biased") / "run", IMAGE_TOKEN_ID)


@pytest.mark.parametrize("with_image", [False, True])
def test_sampling_never_picks_the_image_token(image_token_run, tmp_path, capsys, with_image):
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(image)
    argv = ["sample", str(image_token_run), "--prompt", "Which digit is shown?", "--temperature", "1",
            "--seed", "6", "--max_tokens", "4"] + (["--image", str(image)] if with_image else [])
    assert cli_main(argv) == 0
    assert "<|image|>" not in capsys.readouterr().out


def test_an_image_marker_without_an_image_is_one_error(image_run, capsys):
    assert cli_main(["sample", str(image_run), "--prompt", "a <|image|> b", "--max_tokens", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "--image" in err
    # in a chat message a special token's spelling is text (docs/vision.md)
    assert cli_main(["sample", str(image_run), "--chat", "--prompt", "a <|image|> b", "--max_tokens", "2"]) == 0


def test_an_image_text_run_is_not_exported_to_the_llama_layout(image_run, tmp_path, capsys):
    out = tmp_path / "hf"
    assert cli_main(["export", str(image_run), "--hf", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "image-text runs cannot be exported" in err
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == []


def test_sample_with_an_image_honours_stop_and_chat_and_refuses_system(image_run, tmp_path, capsys):
    from tokenizers import Tokenizer

    letter = Tokenizer.from_file(str(image_run / "tokenizer.json")).token_to_id("A")
    run = biased_copy(image_run, tmp_path / "run", letter)
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(image)
    argv = ["sample", str(run), "--image", str(image), "--prompt", "Which is largest?", "--temperature", "0",
            "--max_tokens", "4"]
    assert cli_main(argv) == 0 and capsys.readouterr().out.strip() == "AAAA"
    assert cli_main(argv + ["--stop", "AA"]) == 0 and capsys.readouterr().out.strip() == ""
    assert cli_main(argv + ["--chat"]) == 0 and capsys.readouterr().out.strip() == "AAAA"
    assert cli_main(argv + ["--system", "Be brief."]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "--system cannot be used with --image" in err


def test_a_question_too_long_for_the_context_is_one_error_before_answering(image_run, tmp_path, capsys):
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(image)
    long_question = "word " * 100  # the tiny run's context is 64 tokens
    assert cli_main(["sample", str(image_run), "--image", str(image), "--prompt", long_question]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "leaves no room for an answer" in err
    (tmp_path / "data").mkdir()
    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(tmp_path / "data" / "x.png")
    (tmp_path / "data" / "long.jsonl").write_text(
        json.dumps({"question": "Which digit?", "answer": "1", "image": "x.png"}) + "\n"
        + json.dumps({"question": long_question, "answer": "1", "image": "x.png"}) + "\n")
    out = tmp_path / "results"
    assert cli_main(["eval", "--model", f"augury:{image_run}", "--tasks", "image:long.jsonl",
                     "--data-dir", str(tmp_path / "data"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "question 2" in err and "no room for an answer" in err
    assert not out.exists()


@pytest.mark.parametrize("args, message", [
    (["--model_args", "seed=abc"], "seed must be a whole number"),
    (["--model_args", "seed=1.5"], "seed must be a whole number"),
    (["--model_args", "seed=-1"], "seed must be a whole number"),
    (["--model_args", "max_tokens=0"], "max_tokens must be a whole number >= 1"),
    (["--tasks", "image_digits,image_digits"], "names image_digits more than once"),
    (["--tasks", "image:bad.jsonl"], "template must be a non-empty string"),
])
def test_bad_image_eval_input_is_one_error_before_answering(image_run, tmp_path, capsys, args, message):
    (tmp_path / "data").mkdir()
    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(tmp_path / "data" / "x.png")
    (tmp_path / "data" / "bad.jsonl").write_text(
        json.dumps({"question": "Q?", "answer": "1", "image": "x.png", "template": 3}) + "\n")
    out = tmp_path / "results"
    argv = ["eval", "--model", f"augury:{image_run}", "--limit", "2", "--data-dir", str(tmp_path / "data"),
            "--out", str(out)] + args
    if "--tasks" not in args:
        argv += ["--tasks", "image_digits"]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and message in err and "Traceback" not in err, err
    assert not out.exists()


def records(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_a_stopped_and_resumed_run_matches_a_straight_one(tmp_path):
    """stop_after stops (checkpoint, no held-out evaluation); the resume drops the records a killed process wrote
    after the checkpoint and goes on with the run's FLOPs, clock and unlogged log window."""
    straight = tmp_path / "straight"
    train(tiny_config(straight, steps=5, log_every=2), log=lambda *a, **k: None)
    split = tmp_path / "split"
    summary = train(tiny_config(split, steps=5, log_every=2, stop_after=3), log=lambda *a, **k: None)
    assert summary["status"] == "stopped" and summary["step"] == 3 and not (split / "image_eval.json").exists()
    assert max((split / "checkpoints").glob("step_*")).name == "step_00000003"
    with open(split / "metrics.jsonl", "a") as f:  # what a process killed after step 4 had written
        f.write(json.dumps({"step": 4, "train_loss": 9.0}) + "\n")
    created = json.loads((split / "manifest.json").read_text())["created"]
    train(tiny_config(split, steps=5, log_every=2), resume=True, log=lambda *a, **k: None)
    keys = ("step", "train_loss", "lr", "examples", "flops_since_start")
    assert [[r[k] for k in keys] for r in records(split)] == [[r[k] for k in keys] for r in records(straight)]
    elapsed = [r["elapsed_s"] for r in records(split)]
    assert elapsed == sorted(elapsed)
    manifest = json.loads((split / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["created"] == created
    assert [r["step"] for r in manifest["resumes"]] == [3]
    assert (split / "image_eval.json").read_text() == (straight / "image_eval.json").read_text()


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("stopped") / "run"
    train(tiny_config(out, steps=4, stop_after=2), log=lambda *a, **k: None)
    return out


@pytest.mark.parametrize("flags, named", [
    (["--seed", "1"], "seed: checkpoint 0, now 1"),
    (["--steps", "6"], "steps: checkpoint 4, now 6"),
    (["--model.d_model", "64"], "model.d_model: checkpoint 32, now 64"),
    (["--vision.depth", "2"], "vision.depth"),
    (["--batch_size", "2"], "batch_size: checkpoint 4, now 2"),
    (["--optim.lr", "0.5"], "optim.lr"),
    (["--images.train_examples", "9"], "images.train_examples"),
])
def test_a_resume_with_other_settings_is_one_error(stopped_run, capsys, flags, named):
    before = {p.name: p.read_bytes() for p in stopped_run.iterdir() if p.is_file()}
    assert cli_main(["train", "--config", str(stopped_run / "config.yaml"), "--resume", *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the checkpoint was made with another configuration" in err[0] and named in err[0], err
    assert {p.name: p.read_bytes() for p in stopped_run.iterdir() if p.is_file()} == before


def test_augury_eval_holds_out_the_digits_the_run_held_out(image_run, tmp_path, monkeypatch):
    """The digit images a run trained on depend on its images.split_seed; `augury eval` draws its held-out digits
    from the run's split, so none of them is a training image (another split would score training images)."""
    import shutil

    import yaml

    import augury.evals.images as image_tasks
    from augury.data.images import make_examples

    run = tmp_path / "run"
    shutil.copytree(image_run, run)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["images"]["split_seed"] = 1
    (run / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    seen = []
    score = image_tasks.evaluate_image_tasks
    monkeypatch.setattr(image_tasks, "evaluate_image_tasks", lambda ex, fn: seen.extend(ex) or score(ex, fn))
    assert cli_main(["eval", "--model", f"augury:{run}", "--tasks", "image_digits", "--limit", "40",
                     "--out", str(tmp_path / "results")]) == 0
    trained = {e.image.tobytes() for e in make_examples("digits", "train", 2000, image_size=16, split_seed=1)}
    assert len(seen) == 40 and not [e for e in seen if e.image.tobytes() in trained]
