"""Tiny corpora and configs for training tests (seconds per run on 2 CPU cores)."""

from __future__ import annotations

import random

import pytest

from augury.data import DataConfig
from augury.model import ModelConfig
from augury.train import OptimConfig, TrainConfig

WORDS = ["def", "return", "self", "value", "if", "else", "for", "in", "range", "print", "x", "y", "+", "=", "(",
         ")", ":", "0", "1", "import", "os", "class", "None", "True", "while", "not", "and", "list", "dict"]


def write_corpus(folder, n_files=80, lines=30, seed=0):
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n_files):
        body = "\n".join("    " * rng.randint(0, 2) + " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 9)))
                         for _ in range(lines))
        (folder / f"mod_{i:03d}.py").write_text(body + "\n")
    return folder


@pytest.fixture
def corpus(tmp_path):
    return write_corpus(tmp_path / "corpus")


@pytest.fixture
def tiny_cfg(tmp_path, corpus):
    def make(**overrides) -> TrainConfig:
        cfg = TrainConfig(
            out=str(tmp_path / "run"),
            model=ModelConfig(depth=1, d_model=32, head_dim=16, max_seq_len=64),
            data=DataConfig(source=str(corpus), vocab_size=300, val_fraction=0.1, cache_dir=str(tmp_path / "cache")),
            optim=OptimConfig(lr=3e-3, warmup_steps=2),
            seq_len=32, batch_size=4, steps=12, log_every=1, eval_every=6, eval_batches=2, dtype="fp32",
            progress=False, peak_flops=1e12,
        )
        for k, v in overrides.items():
            setattr(cfg, k, v)
        return cfg

    return make


def _poison_loss_at(monkeypatch, call: int):
    from augury.model import Transformer

    real_forward = Transformer.forward
    calls = {"n": 0}

    def poisoned(self, *args, **kwargs):
        out = real_forward(self, *args, **kwargs)
        if self.training:
            calls["n"] += 1
            if calls["n"] == call:
                return out * float("nan")
        return out

    monkeypatch.setattr(Transformer, "forward", poisoned)


@pytest.fixture
def poison_loss_at():
    """poison_loss_at(monkeypatch, call): the call-th training forward pass gives NaN, as a diverging run does."""
    return _poison_loss_at
