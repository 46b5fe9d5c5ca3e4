"""Fixtures for the server tests: a tiny random augury run and an app around it."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture
def tiny_run(tmp_path, tiny_tokenizer_path):
    return _tiny_run(tmp_path, tiny_tokenizer_path)


@pytest.fixture
def chat_run(tmp_path):
    """A tiny random run whose tokenizer has augury's chat tokens, so /v1/chat/completions serves it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from augury.data.chat import BOS, END_OF_TURN, ROLES

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = list(dict.fromkeys([BOS, "<|pad|>", END_OF_TURN, *(f"<|{r}|>" for r in ROLES)]))
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(["hello there, how are you today? fine thanks."] * 20, trainer)
    (tmp_path / "chat").mkdir()
    tok.save(str(tmp_path / "chat" / "tokenizer.json"))
    return _tiny_run(tmp_path / "chat", tmp_path / "chat" / "tokenizer.json")


def _tiny_run(tmp_path, tiny_tokenizer_path):
    import torch
    import yaml
    from tokenizers import Tokenizer

    from augury.io import to_jsonable
    from augury.model import ModelConfig, Transformer
    from augury.train.checkpoint import save_checkpoint

    vocab = Tokenizer.from_file(str(tiny_tokenizer_path)).get_vocab_size()
    cfg = ModelConfig(vocab_size=vocab, depth=2, d_model=64, n_heads=4, n_kv_heads=2, max_seq_len=256).resolved()
    torch.manual_seed(0)
    model = Transformer(cfg)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump({"model": to_jsonable(cfg)}))
    shutil.copyfile(tiny_tokenizer_path, run / "tokenizer.json")
    save_checkpoint(run, 1, model, torch.optim.AdamW(model.parameters()), {"step": 1})
    return run


@pytest.fixture
def keys_file(tmp_path):
    from augury.serve.keys import KeyStore

    store = KeyStore.load(tmp_path / "keys.json")
    return tmp_path / "keys.json", store.add("alice"), store.add("bob")


@pytest.fixture
def make_client():
    """make_client(run, tmp_path, keys_path=None, **config) -> (TestClient, ServeConfig)."""
    return _make_client


def _make_client(run, tmp_path, keys_path=None, **overrides):
    from fastapi.testclient import TestClient

    from augury.serve.cli import build_app
    from augury.serve.config import ServeConfig
    from augury.serve.limits import LimitsConfig

    limits = overrides.pop("limits", LimitsConfig(requests_per_minute=600, burst=100))
    cfg = ServeConfig(model=str(run), keys=str(keys_path or ""), log=str(tmp_path / "requests.db"), limits=limits,
                      **overrides)
    return TestClient(build_app(cfg)), cfg
