"""`augury sft` and `augury rm` end to end on tiny data: learning, outputs, exact resume, bad input."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest
import torch

from augury.align.data import AlignDataError, hh_rlhf_rows, parse_transcript
from augury.align.rm import RewardModel, RMConfig, load_reward_model, train_rm
from augury.align.sft import SFTConfig, train_sft


def _sft(chat_run, data, out, **kw):
    base = dict(base_run=str(chat_run), data=str(data), out=str(out), steps=6, batch_size=8, micro_batch_size=4,
                lr=3e-3, warmup_steps=1, eval_every=3, ckpt_every=3, held_out=0.2, dtype="float32")
    return SFTConfig(**{**base, **kw})


def _metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_sft_learns_and_writes_a_normal_run(chat_run, sft_file, tmp_path):
    from augury.model.run import load_run

    out = train_sft(_sft(chat_run, sft_file, tmp_path / "sft", steps=12), log=lambda *_: None)
    rows = _metrics(out)
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    vals = [r["val_loss"] for r in rows if "val_loss" in r]
    assert len(vals) == 4 and vals[-1] < vals[0]
    assert json.loads((out / "manifest.json").read_text())["finished"] is True
    model, tok, cfg = load_run(out)  # what sample, export and eval load
    assert cfg.vocab_size == tok.get_vocab_size()


def test_sft_resume_is_exact(chat_run, sft_file, tmp_path, killed_after_checkpoint):
    whole = train_sft(_sft(chat_run, sft_file, tmp_path / "whole"), log=lambda *_: None)
    killed_after_checkpoint(3, lambda: train_sft(_sft(chat_run, sft_file, tmp_path / "split"),
                                                 log=lambda *_: None))
    split = train_sft(_sft(chat_run, sft_file, tmp_path / "split", resume=True), log=lambda *_: None)
    a = [r["train_loss"] for r in _metrics(whole)]
    b = [r["train_loss"] for r in _metrics(split)]
    assert a == b
    from safetensors.torch import load_file

    wa = load_file(str(whole / "checkpoints" / "step_00000006" / "model.safetensors"))
    wb = load_file(str(split / "checkpoints" / "step_00000006" / "model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_a_resumed_sft_run_does_not_log_the_steps_after_its_checkpoint_twice(chat_run, sft_file, tmp_path,
                                                                         monkeypatch):
    import augury.align.sft as sft

    real = sft.append_jsonl

    def killed_after_step_4(path, record):  # after the checkpoint of step 3 and the record of step 4
        real(path, record)
        if record.get("step") == 4:
            raise KeyboardInterrupt

    out = tmp_path / "split"
    monkeypatch.setattr(sft, "append_jsonl", killed_after_step_4)
    with pytest.raises(KeyboardInterrupt):
        train_sft(_sft(chat_run, sft_file, out), log=lambda *_: None)
    monkeypatch.setattr(sft, "append_jsonl", real)
    train_sft(_sft(chat_run, sft_file, out, resume=True), log=lambda *_: None)
    assert [r["step"] for r in _metrics(out)] == [1, 2, 3, 4, 5, 6]


def test_each_trl_shape_is_trained_on_the_replies_only_in_the_format_generation_uses(chat_run):
    """TRL's shapes and their loss masks: `messages` every assistant turn (its content and <|end|>; never a role
    token), conversational prompt/completion the completion only (not an assistant turn inside the prompt), plain
    prompt/completion the completion and the closing <|endoftext|>; each prompt part is the ids RL and evaluation
    generate from."""
    from augury.align.data import sft_example
    from augury.align.rl_prompts import prompt_ids
    from augury.data.chat import render_chat
    from augury.data.tokenizer import encode_documents, load_tokenizer

    tok = load_tokenizer(chat_run / "tokenizer.json")
    user, reply = {"role": "user", "content": "What is two plus two?"}, {"role": "assistant", "content": "Four."}
    earlier = {"role": "assistant", "content": "Paris."}

    def learned(ex):
        return [i for i, m in zip(ex.ids, ex.loss_mask) if m]

    end = tok.token_to_id("<|end|>")
    four, paris = encode_documents(tok, ["Four.", "Paris."])
    assert learned(sft_example(tok, {"messages": [user, earlier, user, reply]}, 128)) == [*paris, end, *four, end]
    ex = sft_example(tok, {"prompt": [user, earlier, user], "completion": [reply]}, 128)
    assert learned(ex) == [*four, end]
    start = render_chat(tok, [user, earlier, user], add_generation_prompt=True).ids
    assert ex.ids[:len(start)] == start == prompt_ids(tok, {"prompt": [user, earlier, user]})[0]
    ex = sft_example(tok, {"prompt": "Q: two plus two?\nA:", "completion": " Four."}, 128)
    assert learned(ex) == [*encode_documents(tok, [" Four."])[0], tok.token_to_id("<|endoftext|>")]
    start = prompt_ids(tok, {"prompt": "Q: two plus two?\nA:"})[0]
    assert ex.ids[:len(start)] == start and not any(ex.loss_mask[:len(start)])


def test_sft_bad_rows_are_counted_and_mostly_bad_data_is_refused(chat_run, sft_file, tmp_path):
    good = sft_file.read_text()
    bad = [{"messages": [{"role": "user", "content": "no reply"}]}, {"prompt": "Q", "completion": "  "}, "[1, 2]"]
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(good + "".join((b if isinstance(b, str) else json.dumps(b)) + "\n" for b in bad))
    logs = []
    train_sft(_sft(chat_run, mixed, tmp_path / "ok", steps=1), log=logs.append)
    assert any("skipped" in line and "no assistant turn" in line for line in logs)
    mostly_bad = tmp_path / "bad.jsonl"
    mostly_bad.write_text("".join(json.dumps(bad[0]) + "\n" for _ in range(10)) + good.splitlines()[0] + "\n")
    with pytest.raises(AlignDataError, match="most rows are unusable"):
        train_sft(_sft(chat_run, mostly_bad, tmp_path / "no", steps=1, held_out=0.0), log=lambda *_: None)
    with pytest.raises(AlignDataError, match="not empty"):
        train_sft(_sft(chat_run, sft_file, tmp_path / "ok", steps=1), log=lambda *_: None)


def test_a_text_row_is_learned_whole_between_end_of_text_tokens(chat_run):
    from tokenizers import Tokenizer

    from augury.align.data import sft_example

    tok = Tokenizer.from_file(str(chat_run / "tokenizer.json"))
    eot = tok.token_to_id("<|endoftext|>")
    text = "Human: Hi\n\nAssistant: Hello there."
    ex = sft_example(tok, {"text": text}, 256)
    assert ex.ids == [eot, *tok.encode(text).ids, eot]
    assert ex.loss_mask == [False] + [True] * (len(ex.ids) - 1)  # every text token and the closing end of text
    with pytest.raises(ValueError, match="non-empty string"):
        sft_example(tok, {"text": "  "}, 256)


def test_base_run_without_chat_tokens_is_a_clear_error(tmp_path, tiny_tokenizer_path, sft_file):
    import shutil

    import yaml

    from augury.io import to_jsonable
    from augury.model import ModelConfig, Transformer
    from augury.train.checkpoint import save_checkpoint

    run = tmp_path / "plain"
    run.mkdir()
    shutil.copyfile(tiny_tokenizer_path, run / "tokenizer.json")
    cfg = ModelConfig(vocab_size=300, depth=1, d_model=32, n_heads=2, max_seq_len=64).resolved()
    (run / "config.yaml").write_text(yaml.safe_dump({"model": to_jsonable(cfg)}))
    model = Transformer(cfg)
    save_checkpoint(run, 1, model, torch.optim.AdamW(model.parameters()), {"step": 1})
    with pytest.raises(AlignDataError, match="most rows are unusable.*lacks the chat tokens|lacks the chat tokens"):
        train_sft(_sft(run, sft_file, tmp_path / "x", steps=1), log=lambda *_: None)


def test_reward_model_learns_held_out_preferences(chat_run, pref_file, tmp_path):
    cfg = RMConfig(base_run=str(chat_run), data=str(pref_file), out=str(tmp_path / "rm"), steps=40, batch_size=8,
                   lr=1e-3, warmup_steps=2, held_out=0.25, dtype="float32")
    logs = []
    out = train_rm(cfg, log=logs.append)
    manifest = json.loads((out / "manifest.json").read_text())
    acc = manifest["held_out_accuracy"]
    lo, hi = acc["interval_95"]
    assert 0.0 <= lo <= acc["accuracy"] <= hi <= 1.0 and acc["pairs"] > 0
    assert acc["accuracy"] > 0.8
    untrained = manifest["held_out_accuracy_untrained"]  # the zero-initialised head ties every pair: chance
    assert untrained["accuracy"] == 0.5 and untrained["ties"] == untrained["pairs"] == acc["pairs"]
    # TRL's margin: the mean of r_chosen - r_rejected; it tells a confident reward model from one that barely separates
    assert untrained["margin"] == 0.0 and acc["margin"] > 0
    rm = load_reward_model(out)
    prompt = [{"role": "user", "content": "What is two plus two? (99)"}]
    good, bad = rm.score([prompt, prompt], [[{"role": "assistant", "content": "Four."}],
                                            [{"role": "assistant", "content": "Sorry, I can't help."}]])
    assert good > bad


def test_reward_model_scores_every_policy_output(chat_run):
    """RL scores whatever the policy wrote: a reply of only whitespace, or one that with its prompt fills more than
    the context (the reward head reads the last tokens), is scored, not refused mid-run."""
    from augury.align.data import scored_sequence
    from augury.model.run import load_run

    backbone, tok, cfg = load_run(chat_run)
    rm = RewardModel(backbone, tok)
    torch.nn.init.normal_(rm.head.weight)
    assert len(rm.score(["Q: What is two plus two?\nA:"] * 2, ["  ", "\n"])) == 2
    long_prompt = "What is two plus two? " * 60
    assert len(scored_sequence(tok, long_prompt, " Four.", 10_000)) > cfg.max_seq_len
    tail = scored_sequence(tok, long_prompt, " Four.", 10_000)[-cfg.max_seq_len:]
    [score] = rm.score([long_prompt], [" Four."])
    with torch.no_grad():
        expected = float(rm(torch.tensor([tail]), torch.tensor([len(tail)]))[0])
    assert score == pytest.approx(expected, abs=1e-5)
    chat = [{"role": "user", "content": long_prompt}]
    assert len(rm.score([chat], [[{"role": "assistant", "content": "Four."}]])) == 1
    with pytest.raises(ValueError, match="empty completion"):  # a training pair is still refused
        scored_sequence(tok, "Q", "  ", cfg.max_seq_len)


def test_hh_rlhf_transcripts_parse_into_preference_rows(shared_data):
    rows, report = hh_rlhf_rows(shared_data / "hh-rlhf" / "helpful-base" / "test.jsonl.gz")
    assert report.used > 0.9 * report.rows
    row = rows[0]
    assert row["prompt"][0]["role"] == "user" and row["chosen"][0]["role"] == "assistant"
    with pytest.raises(ValueError):
        parse_transcript("Assistant: hello")


def test_cli_spellings_and_usage_errors(chat_run, sft_file, tmp_path, capsys):
    from augury.cli import main

    out = tmp_path / "cli"
    assert main(["sft", "--base-run", str(chat_run), "--data", str(sft_file), "--out", str(out), "--steps", "1",
                 "--batch_size", "4", "--micro_batch_size", "4", "--dtype", "float32"]) == 0
    assert (out / "manifest.json").is_file()
    assert main(["sft", "--data", str(sft_file)]) == 2
    assert "--base_run and --data are required" in capsys.readouterr().err
    assert main(["rm", "--base_run", str(chat_run), "--data", "x.jsonl", "--hh_rlhf", "y.jsonl.gz"]) == 2


def test_an_interrupted_run_resumes_from_its_own_config_yaml(chat_run, sft_file, tmp_path, killed_after_checkpoint):
    from augury.cli import main

    out = tmp_path / "sft"
    killed_after_checkpoint(1, lambda: train_sft(_sft(chat_run, sft_file, out, steps=2, ckpt_every=1),
                                                 log=lambda *_: None))
    assert main(["sft", "--config", str(out / "config.yaml"), "--resume", "true"]) == 0
    assert json.loads((out / "manifest.json").read_text())["finished"] is True
    assert [r["step"] for r in _metrics(out) if "train_loss" in r] == [1, 2]


def test_a_fine_tuned_run_exports_with_identical_logits_in_transformers(chat_run, sft_file, tmp_path):
    from transformers import AutoModelForCausalLM

    from augury.model.export import export_hf
    from augury.model.run import load_run

    out = train_sft(_sft(chat_run, sft_file, tmp_path / "sft", steps=2), log=lambda *_: None)
    model, _, _ = load_run(out)
    hf_dir = export_hf(model, out / "tokenizer.json", tmp_path / "hf")
    hf = AutoModelForCausalLM.from_pretrained(hf_dir).eval()
    ids = torch.tensor([[0, 3, 17, 42, 99, 5, 7]])
    with torch.no_grad():
        assert torch.allclose(model(ids), hf(ids).logits, atol=1e-5)


def test_sft_resume_refuses_other_settings_and_says_when_nothing_is_left(chat_run, sft_file, tmp_path):
    out = tmp_path / "sft"
    train_sft(_sft(chat_run, sft_file, out, steps=3), log=lambda *_: None)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    other_base = tmp_path / "other"
    other_base.mkdir()
    for change, message in [({"base_run": str(other_base)}, "base_run"), ({"lr": 1e-2}, "lr 0.003 there, 0.01 now"),
                            ({"steps": 1}, "steps 3 there, 1 now"), ({"data": str(tmp_path / "x.jsonl")}, "data")]:
        with pytest.raises(AlignDataError, match=f"other settings .*{message}"):
            train_sft(replace(_sft(chat_run, sft_file, out, steps=3, resume=True), **change), log=lambda *_: None)
    logs = []  # how often it checkpoints and how a batch is split may change
    train_sft(_sft(chat_run, sft_file, out, steps=3, resume=True, ckpt_every=1, micro_batch_size=2), log=logs.append)
    assert any("already trained all 3 steps: nothing to do" in line for line in logs)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_a_run_that_fails_before_its_first_checkpoint_leaves_nothing_behind(chat_run, sft_file, pref_file, tmp_path,
                                                                            monkeypatch):
    import augury.align.rm as rm_mod
    import augury.align.sft as sft_mod
    from augury.align.rm import RMDiverged
    from augury.align.sft import SFTDiverged

    real = sft_mod.masked_token_loss
    calls = []

    def nan_from_the_third_call(*args):
        calls.append(1)
        return real(*args) * (float("nan") if len(calls) > 2 else 1.0)

    monkeypatch.setattr(sft_mod, "masked_token_loss", nan_from_the_third_call)
    with pytest.raises(SFTDiverged, match=r"no checkpoint was written, so .* is removed"):
        train_sft(_sft(chat_run, sft_file, tmp_path / "new", held_out=0.0), log=lambda *_: None)
    assert not (tmp_path / "new").exists()  # the same command can simply be run again
    (tmp_path / "empty").mkdir()
    calls.clear()
    with pytest.raises(SFTDiverged):
        train_sft(_sft(chat_run, sft_file, tmp_path / "empty", held_out=0.0), log=lambda *_: None)
    assert (tmp_path / "empty").is_dir() and not any((tmp_path / "empty").iterdir())
    calls.clear()  # step 1's checkpoint is written before step 2 diverges: the run stays, to be resumed
    with pytest.raises(SFTDiverged, match="the last checkpoint is kept"):
        train_sft(_sft(chat_run, sft_file, tmp_path / "kept", held_out=0.0, micro_batch_size=8, ckpt_every=1),
                  log=lambda *_: None)
    assert (tmp_path / "kept" / "checkpoints").is_dir()
    monkeypatch.setattr(rm_mod, "bradley_terry_loss", lambda *a: torch.tensor(float("nan"), requires_grad=True))
    with pytest.raises(RMDiverged, match="step 1: the loss is nan"):
        train_rm(RMConfig(base_run=str(chat_run), data=str(pref_file), out=str(tmp_path / "rm"), steps=2,
                          batch_size=4, dtype="float32"), log=lambda *_: None)
    assert sorted(p.name for p in tmp_path.iterdir() if "rm" in p.name) == []  # neither rm nor .rm.partial


@pytest.mark.parametrize("command,change,message", [
    ("sft", {"weight_decay": -5.0}, "weight_decay must be >= 0"),
    ("sft", {"ckpt_every": -2}, "ckpt_every must be >= 0"),
    ("sft", {"lr": 1e38}, r"lr must be in \(0, 1\]"),
    ("sft", {"eval_data": "EMPTY"}, "--eval_data .* has no usable rows"),
    ("sft", {"data": "DIR"}, "is a directory, not a JSONL file"),
    ("sft", {"out": "FILE"}, "is a file, not a folder"),
    ("sft", {"out": "UNDER_FILE"}, "cannot be made: .*FILE is a file, not a folder"),
    ("rm", {"lr": 1e38}, r"lr must be in \(0, 1\]"),
    ("rm", {"data": "DIR"}, "is a directory, not a JSONL file"),
    ("rm", {"out": "FILE"}, "is a file, not a folder"),
    ("rm", {"out": "UNDER_FILE"}, "cannot be made: .*FILE is a file, not a folder"),
])
def test_bad_settings_are_refused_before_anything_is_written(chat_run, sft_file, pref_file, tmp_path, command,
                                                             change, message):
    (tmp_path / "EMPTY.jsonl").write_text("")
    (tmp_path / "FILE").write_text("mine")
    paths = {"EMPTY": str(tmp_path / "EMPTY.jsonl"), "DIR": str(tmp_path), "FILE": str(tmp_path / "FILE"),
             "UNDER_FILE": str(tmp_path / "FILE" / "out")}
    change = {k: paths.get(v, v) if isinstance(v, str) else v for k, v in change.items()}
    before = sorted(tmp_path.iterdir())
    with pytest.raises(ValueError, match=message):
        if command == "sft":
            train_sft(replace(_sft(chat_run, sft_file, tmp_path / "out"), **change), log=lambda *_: None)
        else:
            train_rm(RMConfig(**{"base_run": str(chat_run), "data": str(pref_file), "out": str(tmp_path / "out"),
                                 "steps": 1, **change}), log=lambda *_: None)
    assert sorted(tmp_path.iterdir()) == before and (tmp_path / "FILE").read_text() == "mine"


@pytest.mark.parametrize("command", ["sft", "rm"])
def test_a_reward_model_given_as_the_base_run_is_refused(chat_run, sft_file, pref_file, tmp_path, capsys, command):
    """An `augury rm` run holds a backbone trained to score, with an LM head never trained: as --base_run it was
    fine-tuned as if it were a pretrained model."""
    import shutil

    from augury.cli import main

    rm = tmp_path / "rm"
    shutil.copytree(chat_run, rm)
    (rm / "manifest.json").write_text(json.dumps({"kind": "reward_model", "finished": True}))
    data = sft_file if command == "sft" else pref_file
    code = main([command, "--base_run", str(rm), "--data", str(data), "--out", str(tmp_path / "out"),
                 "--steps", "1"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert re.search(rf"augury {command}: error: --base_run .*rm is a reward model \(an augury rm run\), not a "
                     r"policy: give a pretrained", err)
    assert not (tmp_path / "out").exists()


def test_skipped_rows_are_reported_whole_with_their_line_numbers(chat_run, tmp_path):
    from augury.align.data import read_jsonl, split_held_out

    rows = [{"messages": [{"role": "user", "content": f"Q{i}"}, {"role": "assistant", "content": "A."}]}
            for i in range(8)]
    lines = [json.dumps(r) for r in rows] + ['{"messages": [{"role": "wizard"', "[1, 2]",
                                             json.dumps({"messages": [{"role": "wizard", "content": "x"}]})]
    data = tmp_path / "mixed.jsonl"
    data.write_text("\n".join(lines) + "\n")
    logs = []
    train_sft(_sft(chat_run, data, tmp_path / "out", steps=1, held_out=0.0), log=logs.append)
    summary = next(line for line in logs if "skipped" in line)
    assert "1 not valid JSON (Expecting ',' delimiter) at line 9" in summary
    assert "1 not a JSON object (a list) at line 10" in summary
    assert "message 0 must be {'role': one of ('system', 'user', 'assistant'), 'content': str}" in summary
    assert "at line 11" in summary
    assert any("no row held out (--held_out 0): no validation loss" in line for line in logs)
    # a small file whose hashes hold nothing out still gets one held-out conversation, so validation exists
    train, held = split_held_out(read_jsonl(data)[:8], 0.05, at_least_one=True)
    assert (len(train), len(held)) == (7, 1)
    assert split_held_out(read_jsonl(data)[:8], 0.05) == (read_jsonl(data)[:8], [])


def test_hh_rlhf_rows_skipped_for_length_are_reported_with_their_line_numbers(chat_run, tmp_path):
    import gzip

    def transcript(question, reply):
        return f"\n\nHuman: {question}\n\nAssistant: {reply}"

    rows = [{"chosen": transcript(f"What is two plus two? ({i})", "Four."),
             "rejected": transcript(f"What is two plus two? ({i})", "Sorry, I can't help.")} for i in range(40)]
    for i in (2, 6):  # lines 3 and 7: far longer than the model's 128-token context
        rows[i]["chosen"] = transcript(f"What is two plus two? ({i})", "Four. " * 200)
    rows[9] = {"chosen": transcript("Hi", "Hello."), "rejected": transcript("Bye", "Hello.")}  # line 10
    data = tmp_path / "hh.jsonl.gz"
    with gzip.open(data, "wt", encoding="utf-8") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))
    logs = []
    train_rm(RMConfig(base_run=str(chat_run), hh_rlhf=str(data), out=str(tmp_path / "rm"), steps=1, batch_size=2,
                      held_out=0.25, dtype="float32"), log=logs.append)
    skipped = " ".join(line for line in logs if "skipped" in line)
    assert "1 chosen and rejected differ before the last reply at line 10" in skipped
    # the two long rows may fall on either side of the held-out split: each is named by its line
    found = re.findall(r"longer than the model's context \(\d+ tokens\) at lines? (\d+(?:, \d+)*)", skipped)
    assert sorted(int(n) for group in found for n in group.split(", ")) == [3, 7]


def test_text_rows_are_split_one_by_one_not_all_on_one_side():
    """`text` rows have no first turn: each is keyed by its text, so held_out of them are held out (all of them
    shared one key, so every text row landed on the same side: none in the validation loss, or all out of training)."""
    from augury.align.data import split_held_out

    rows = [{"text": f"document {i} about the standard library"} for i in range(400)]
    for share in (0.3, 0.6):
        train, held = split_held_out(rows, share)
        assert abs(len(held) / len(rows) - share) < 0.1
    conversations = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}
                     for i in range(200)]
    train, held = split_held_out(conversations + rows, 0.3)  # conversations land where they did before
    assert ([r for r in train if "messages" in r], [r for r in held if "messages" in r]) == \
        split_held_out(conversations, 0.3)


def test_conversations_sharing_a_system_message_are_split_by_their_first_user_turn():
    """Most chat data opens every conversation with the same system message: keyed on it, every row landed on one
    side (no validation at all, or nothing left to train on); the key is the first turn that is not a system one."""
    from augury.align.data import split_held_out

    system = {"role": "system", "content": "You are a helpful assistant."}
    rows = [{"messages": [system, {"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}
            for i in range(200)]
    rows += [{"prompt": [system, {"role": "user", "content": f"p{i}"}], "completion": [{"role": "assistant",
                                                                                      "content": "a"}]}
             for i in range(200)]
    train, held = split_held_out(rows, 0.3)
    assert abs(len(held) / len(rows) - 0.3) < 0.1
    without = [{"messages": r["messages"][1:]} for r in rows[:200]]  # the split of each question is unchanged
    assert [r["messages"][1:] for r in held if "messages" in r] == [r["messages"] for r in
                                                                    split_held_out(without, 0.3)[1]]


def test_an_empty_assistant_turn_is_refused_in_every_shape_as_an_empty_completion_is(chat_run):
    """An empty (or blank) assistant turn taught the model to end its reply at once, and made a preference pair
    over an empty reply; a plain-string completion that is empty was already refused. A reward model still scores
    an empty policy reply (RL must score whatever was sampled)."""
    from augury.align.data import preference_pair, sft_example
    from augury.data.tokenizer import load_tokenizer

    tok = load_tokenizer(chat_run / "tokenizer.json")
    user, good = {"role": "user", "content": "What is two plus two?"}, {"role": "assistant", "content": "Four."}
    blank = {"role": "assistant", "content": " \n"}
    for row in ({"messages": [user, blank]}, {"messages": [user, blank, user, good]},
                {"prompt": [user], "completion": [blank]}):
        with pytest.raises(ValueError, match="empty assistant turn"):
            sft_example(tok, row, 128)
    with pytest.raises(ValueError, match="empty assistant turn"):
        preference_pair(tok, {"prompt": [user], "chosen": [good], "rejected": [blank]}, 128)
    from augury.model.run import load_run

    backbone, tok2, _ = load_run(chat_run)
    assert len(RewardModel(backbone, tok2).score([[user]], [[blank]])) == 1


def test_a_string_that_already_ends_with_the_end_of_text_token_is_not_given_a_second_one(chat_run):
    """TRL adds the EOS to a plain completion or text only when it does not already end with it, so data made for a
    GPT-2-style tokenizer often carries a literal "<|endoftext|>": it was encoded as text before augury's own
    end-of-text, teaching the model to write the token's spelling before it stops."""
    from augury.align.data import preference_pair, sft_example
    from augury.data.tokenizer import load_tokenizer

    tok = load_tokenizer(chat_run / "tokenizer.json")
    assert sft_example(tok, {"prompt": "Q:", "completion": " Four.<|endoftext|>"}, 128) == \
        sft_example(tok, {"prompt": "Q:", "completion": " Four."}, 128)
    assert sft_example(tok, {"text": "Four.<|endoftext|>"}, 128) == sft_example(tok, {"text": "Four."}, 128)
    assert preference_pair(tok, {"prompt": "Q:", "chosen": " Four.<|endoftext|>", "rejected": " Five."}, 128) == \
        preference_pair(tok, {"prompt": "Q:", "chosen": " Four.", "rejected": " Five."}, 128)
    with pytest.raises(ValueError, match="empty completion"):
        sft_example(tok, {"prompt": "Q:", "completion": "<|endoftext|>"}, 128)
    with pytest.raises(ValueError, match="non-empty string"):
        sft_example(tok, {"text": "<|endoftext|>"}, 128)


def test_a_preference_reply_not_ending_with_the_assistant_is_skipped_and_counted(chat_run, tmp_path):
    """A conversational reply whose last turn is the user's (chosen: [a user message]) was scored, its reward read
    at the end of that user turn; such rows are now skipped with their reason, as other bad rows are."""
    from augury.align.data import load_preference_pairs
    from augury.data.tokenizer import load_tokenizer

    tok = load_tokenizer(chat_run / "tokenizer.json")
    user = {"role": "user", "content": "What is two plus two?"}
    good = {"prompt": [user], "chosen": [{"role": "assistant", "content": "Four."}],
            "rejected": [{"role": "assistant", "content": "Five."}]}
    earlier = [user, {"role": "assistant", "content": "Four."}, {"role": "user", "content": "And three plus three?"}]
    bad = [{**good, "prompt": earlier, "chosen": [{"role": "user", "content": "Six."}]},
           {**good, "rejected": [{"role": "assistant", "content": "Five."}, {"role": "user", "content": "ok?"}]}]
    path = tmp_path / "prefs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [good, good, good, *bad]))
    pairs, report = load_preference_pairs(path, tok, 128)
    assert len(pairs) == 3 and report.used == 3
    assert sum(n for why, n in report.skipped.items() if "last turn" in why) == 2, report.skipped
