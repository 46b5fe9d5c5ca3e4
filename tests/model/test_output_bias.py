"""The opt-in output bias: initialised to log unigram frequencies, added to the logits, refused by HF export."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from augury.model import ModelConfig, Transformer


def test_output_bias_starts_at_the_unigram_distribution():
    cfg = ModelConfig(depth=2, aspect_ratio=16, head_dim=16, vocab_size=50, zero_init_output=True, output_bias=True)
    model = Transformer(cfg)
    counts = np.arange(50) + 1
    model.init_output_bias(counts)
    logits = model(torch.randint(0, 50, (2, 7)))
    probs = torch.softmax(logits.double(), -1)
    expected = (counts + 0.5) / (counts + 0.5).sum()
    # zero-initialised output weights: every position predicts exactly the (smoothed) unigram distribution
    assert torch.allclose(probs, torch.as_tensor(expected).expand_as(probs), atol=1e-6)
    names = {g["name"]: g for g in model.param_groups(0.1)}
    assert any(p is model.output_bias for p in names["gains"]["params"])  # no weight decay on the bias


def test_output_bias_is_opt_in_and_not_exportable(tmp_path, tiny_tokenizer_path):
    from augury.model.export import export_hf

    assert Transformer(ModelConfig(depth=2, aspect_ratio=16, head_dim=16, vocab_size=300)).output_bias is None
    model = Transformer(ModelConfig(depth=2, aspect_ratio=16, head_dim=16, vocab_size=300, output_bias=True))
    with pytest.raises(ValueError, match="output bias"):
        export_hf(model, tiny_tokenizer_path, tmp_path / "hf")
    with pytest.raises(ValueError, match="entries"):
        model.init_output_bias(np.ones(10))
