"""The Hugging Face backend of `augury serve` (`hf:PATH`): cached decoding is the model's own greedy decoding."""

from __future__ import annotations

import warnings

import torch


def test_hf_backend_cached_greedy_tokens_equal_full_forward_decoding(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from augury.evals.tiny_model import make_random_llama
    from augury.serve.backends import _HFLM

    path = make_random_llama(tmp_path / "hf", ["hello there, how are you today? fine thanks."] * 20, vocab_size=300)
    model, tok = AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)
    prompt = tok.encode("hello there")
    with warnings.catch_warnings():
        # a deprecated cache argument would stop working when transformers removes it
        warnings.simplefilter("error", FutureWarning)
        served = [t for t, _ in _HFLM(model, tok).tokens(prompt, 8, 0.0, 1.0, None)]
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(8):
            ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
    assert served == ids[len(prompt):]
