"""A tiny pretrained-looking augury run with a chat-capable tokenizer, and small SFT / preference files."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="session")
def chat_run(tmp_path_factory):
    import torch
    import yaml

    from augury.data.tokenizer import train_tokenizer
    from augury.io import to_jsonable
    from augury.model import ModelConfig, Transformer
    from augury.train.checkpoint import save_checkpoint

    run = tmp_path_factory.mktemp("base") / "run"
    run.mkdir()
    text = ["What is two plus two? Four. What is the capital of France? Paris. Sorry, I can't help."] * 40
    tok = train_tokenizer(text, vocab_size=320)
    tok.save(str(run / "tokenizer.json"))
    cfg = ModelConfig(vocab_size=tok.get_vocab_size(), depth=2, d_model=64, n_heads=4, n_kv_heads=2,
                      max_seq_len=128).resolved()
    torch.manual_seed(0)
    model = Transformer(cfg)
    (run / "config.yaml").write_text(yaml.safe_dump({"model": to_jsonable(cfg)}))
    save_checkpoint(run, 1, model, torch.optim.AdamW(model.parameters()), {"step": 1})
    return run


QA = [("What is two plus two?", "Four."), ("What is the capital of France?", "Paris."),
      ("What is two plus three?", "Five."), ("Capital of Italy?", "Rome.")]


@pytest.fixture
def sft_file(tmp_path):
    rows = [{"messages": [{"role": "user", "content": f"{q} ({i})"}, {"role": "assistant", "content": a}]}
            for i in range(12) for q, a in QA]
    rows += [{"prompt": f"Q: {q}\nA:", "completion": f" {a}"} for q, a in QA]
    path = tmp_path / "sft.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def pref_file(tmp_path):
    rows = [{"prompt": [{"role": "user", "content": f"{q} ({i})"}],
             "chosen": [{"role": "assistant", "content": a}],
             "rejected": [{"role": "assistant", "content": "Sorry, I can't help."}]}
            for i in range(20) for q, a in QA]
    path = tmp_path / "prefs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def killed_after_checkpoint(monkeypatch):
    """killed_after_checkpoint(step, train) runs `train()` as if killed right after checkpoint `step` was saved."""
    import augury.train.checkpoint as ckpt_mod

    def run(step: int, train) -> None:
        real = ckpt_mod.save_checkpoint

        def save_then_die(run_dir, at_step, *args, **kwargs):
            path = real(run_dir, at_step, *args, **kwargs)
            if at_step == step:
                raise KeyboardInterrupt
            return path

        monkeypatch.setattr(ckpt_mod, "save_checkpoint", save_then_die)
        try:
            with pytest.raises(KeyboardInterrupt):
                train()
        finally:
            monkeypatch.setattr(ckpt_mod, "save_checkpoint", real)

    return run
