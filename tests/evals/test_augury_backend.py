"""`--model augury:RUN`: augury checkpoints score and generate like their Hugging Face export does."""

from __future__ import annotations

import shutil

import pytest
import torch
import yaml

from augury.evals.backends import load_model
from augury.evals.lm import GenRequest
from augury.io import to_jsonable
from augury.model import ModelConfig, Transformer
from augury.model.export import export_hf
from augury.train.checkpoint import save_checkpoint


@pytest.fixture
def augury_run(tmp_path, tiny_tokenizer_path):
    from tokenizers import Tokenizer

    vocab = Tokenizer.from_file(str(tiny_tokenizer_path)).get_vocab_size()
    cfg = ModelConfig(vocab_size=vocab, depth=2, d_model=64, n_heads=4, n_kv_heads=2, max_seq_len=128).resolved()
    torch.manual_seed(0)
    model = Transformer(cfg)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump({"model": to_jsonable(cfg)}))
    shutil.copyfile(tiny_tokenizer_path, run / "tokenizer.json")
    save_checkpoint(run, 1, model, torch.optim.AdamW(model.parameters()), {"step": 1})
    return run, model


REQUESTS = [("def add(a, b):\n    return", " a + b"), ("def add(a, b):\n    return", " a - b"),
            ("def add(a, b):\n    return", " None"), ("for i in", " range(10):"), ("", "print(i)")]


def test_loglikelihood_matches_hf_export(augury_run, tmp_path):
    run, model = augury_run
    ours = load_model(f"augury:{run}")
    hf_dir = export_hf(model, run / "tokenizer.json", tmp_path / "hf")
    theirs = load_model(f"hf:{hf_dir}")
    a, b = ours.loglikelihood(REQUESTS), theirs.loglikelihood(REQUESTS)
    for (lp_a, greedy_a), (lp_b, greedy_b) in zip(a, b):
        assert lp_a == pytest.approx(lp_b, abs=1e-4)
        assert greedy_a == greedy_b
    text = "for i in range(10):\n    print(i)\n" * 10
    ours.max_length = theirs.max_length = 32  # several rolling windows
    assert ours.loglikelihood_rolling([text])[0] == pytest.approx(theirs.loglikelihood_rolling([text])[0], abs=1e-3)


def test_prefix_reuse_equals_separate_scoring(augury_run):
    run, _ = augury_run
    lm = load_model(f"augury:{run}")
    together = lm.loglikelihood(REQUESTS)
    lm.min_shared_prefix = 10**9  # disable prefix sharing
    apart = lm.loglikelihood(REQUESTS)
    for (x, _), (y, _) in zip(together, apart):
        assert x == pytest.approx(y, abs=1e-4)


def test_greedy_generation_stops_at_stop_string(augury_run):
    run, _ = augury_run
    lm = load_model(f"augury:{run}")
    out = lm.generate_until([GenRequest(context="def add(a, b):", until=["\n"], max_gen_toks=20)])
    assert isinstance(out[0], str) and "\n" not in out[0]


def test_not_a_run_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="not an augury run folder"):
        load_model(f"augury:{tmp_path}")
