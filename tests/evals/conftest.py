"""Shared fixtures: a tiny random Llama made locally (no hub access) and the shared data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """Tiny models run fastest on one thread, and a busy CI machine does not stall thread hand-offs."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    pytest.importorskip("transformers")
    from augury.evals.tiny_model import make_random_llama

    texts = ["The following are multiple choice questions (with answers) about anatomy.",
             "Question: What is 2 + 2?\nA. 3\nB. 4\nC. 5\nD. 22\nAnswer: B",
             "Le seguenti sono domande a scelta multipla. Risposta: C",
             "def add(a, b):\n    return a + b\n", "Q: Where is Rome?\nA: Rome is in Italy."] * 20
    return make_random_llama(tmp_path_factory.mktemp("tiny_llama"), texts, vocab_size=400, hidden=32,
                             layers=2, heads=4, max_positions=512)


@pytest.fixture(scope="session")
def tiny_lm(tiny_model_dir):
    from augury.evals.backends import load_model

    return load_model(f"hf:{tiny_model_dir}", batch_size=4)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = Path(os.environ.get("AUGURY_SHARED_DATA", REPO / ".." / "shared" / "data"))
    if not (path / "mmlu").is_dir():
        pytest.skip(f"shared data not found at {path} (set AUGURY_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def tiny_bos_model_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny Llama with a tokenizer that adds a BOS (as Llama's and Gemma's do) and a chat template that writes
    one itself."""
    import shutil

    from tokenizers import processors
    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("tiny_bos") / "model"
    shutil.copytree(tiny_model_dir, folder)
    tok = AutoTokenizer.from_pretrained(folder)
    tok._tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", tok.bos_token_id)])
    tok.chat_template = ("{{ bos_token }}{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
                         "{% if add_generation_prompt %}[assistant]{% endif %}")
    tok.save_pretrained(folder)
    return folder
