"""Shared test fixtures: tiny tokenizers, a tiny chat run with a known reply, and the path of the read-only shared
datasets."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    return Path(os.environ.get("AUGURY_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"shared datasets not found at {path} (set AUGURY_SHARED_DATA)")
    return path


@pytest.fixture
def tiny_tokenizer_path(tmp_path) -> Path:
    """A byte-level BPE tokenizer.json with a ~300-token vocabulary, trained on a few lines."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>", "<|pad|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    text = ["def add(a, b):\n    return a + b\n", "for i in range(10):\n    print(i)\n", "héllo wörld ✓"] * 20
    tok.train_from_iterator(text, trainer)
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    return path


@pytest.fixture
def read_only_dir(tmp_path) -> Path:
    """An empty folder no file can be created in: mode 0o555, and for root (whom modes do not bind) the immutable
    attribute where `chattr` can set it; skips where neither holds."""
    import shutil
    import subprocess

    path = tmp_path / "read-only"
    path.mkdir()
    path.chmod(0o555)
    immutable = False
    if os.access(path, os.W_OK) and shutil.which("chattr"):
        immutable = subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0
    if os.access(path, os.W_OK):
        pytest.skip("no folder here is read-only to this user (root, without chattr +i)")
    yield path
    if immutable:
        subprocess.run(["chattr", "-i", str(path)], capture_output=True)
    path.chmod(0o755)


@contextlib.contextmanager
def serve_app(app, **config):
    """Run `app` under uvicorn on a free loopback port in a thread (`config`: more uvicorn.Config options);
    yields the port; stops it on exit."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", **config))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def serving():
    """serving(app) -> a context manager yielding the loopback port the app is served on."""
    return serve_app


@pytest.fixture
def turn_ending_run(tmp_path):
    """(run, tokenizer, hf_export) of a chat run whose model replies greedily "4", then `<|end|>`, then "x" for
    ever: a decoder that does not stop at the end of the turn writes "4xxx...".

    Its layers add nothing (zero output projections), so each next token depends on the current one only; the output
    head maps <|assistant|> to "4", "4" to <|end|> and <|end|> and "x" to "x"."""
    import torch
    import yaml

    from augury.data.tokenizer import train_tokenizer
    from augury.io import to_jsonable
    from augury.model import ModelConfig, Transformer
    from augury.model.export import export_hf
    from augury.train.checkpoint import save_checkpoint

    tok = train_tokenizer(["What is two plus two? It is four, 4.\n"] * 30, 300)
    cfg = ModelConfig(vocab_size=tok.get_vocab_size(), depth=1, d_model=64, n_heads=4, max_seq_len=128).resolved()
    torch.manual_seed(0)
    model = Transformer(cfg).eval()
    four, x, end, assistant = (tok.token_to_id(t) for t in ("4", "x", "<|end|>", "<|assistant|>"))

    def direction(t):  # the final norm's output for token t, scaled so that a matching logit is about 30
        e = model.embed_tokens.weight[t]
        return 30.0 * e / e.pow(2).mean().sqrt() / cfg.d_model

    with torch.no_grad():
        for block in model.layers:
            block.self_attn.o_proj.weight.zero_()
            block.mlp.down_proj.weight.zero_()
        model.lm_head.weight.zero_()
        model.lm_head.weight[four] = direction(assistant)
        model.lm_head.weight[end] = direction(four)
        model.lm_head.weight[x] = direction(end) + direction(x)
    run = tmp_path / "turn_ending_run"
    save_checkpoint(run, 1, model, torch.optim.AdamW(model.parameters()), {"step": 1})
    (run / "config.yaml").write_text(yaml.safe_dump({"model": to_jsonable(cfg)}))
    tok.save(str(run / "tokenizer.json"))
    return run, tok, export_hf(model, run / "tokenizer.json", tmp_path / "turn_ending_hf")
