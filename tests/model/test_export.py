"""Export to the Hugging Face Llama layout: transformers loads it and gives augury's logits."""

import json

import pytest
import torch

from augury.model import ModelConfig, Transformer
from augury.model.export import ExportError, export_hf

transformers = pytest.importorskip("transformers")


@pytest.mark.parametrize("kw", [
    dict(),
    dict(n_kv_heads=2),
    dict(tie_embeddings=True),
    dict(parametrization="mup", mup_base_width=32),                    # readout multiplier folded in
    dict(parametrization="mup", mup_base_width=32, tie_embeddings=True),  # ... which unties the head
])
def test_hf_llama_parity(tmp_path, tiny_tokenizer_path, kw):
    from tokenizers import Tokenizer

    vocab = Tokenizer.from_file(str(tiny_tokenizer_path)).get_vocab_size()
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=vocab, depth=2, d_model=64, n_heads=4, max_seq_len=128, **kw)).eval()
    with torch.no_grad():  # perturb the gains so a misplaced norm weight would show
        for p in model.parameters():
            if p.ndim == 1:
                p.add_(torch.randn_like(p) * 0.1)
    out = export_hf(model, tiny_tokenizer_path, tmp_path / "hf")
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "generation_config.json"):
        assert (out / name).is_file()
    hf = transformers.LlamaForCausalLM.from_pretrained(out, torch_dtype=torch.float32).eval()
    x = torch.randint(0, vocab, (2, 40))
    with torch.no_grad():
        ours = model(x)
        theirs = hf(x).logits
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=1e-5)
    tok = transformers.AutoTokenizer.from_pretrained(out)
    text = "def add(a, b):\n    return a + b"
    assert tok(text)["input_ids"] == Tokenizer.from_file(str(tiny_tokenizer_path)).encode(text).ids
    assert json.loads((out / "config.json").read_text())["model_type"] == "llama"


def test_export_refuses_to_overwrite(tmp_path, tiny_tokenizer_path):
    model = Transformer(ModelConfig(vocab_size=300, depth=1, d_model=32, n_heads=2))
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "keep.txt").write_text("mine")
    for overwrite in (False, True):  # keep.txt is not an export's file, so not even --overwrite replaces it
        with pytest.raises(ExportError):
            export_hf(model, tiny_tokenizer_path, tmp_path / "hf", overwrite=overwrite)
    assert (tmp_path / "hf" / "keep.txt").read_text() == "mine"


def test_export_is_readable_like_any_file_the_user_writes(tmp_path, tiny_tokenizer_path):
    """The folder and its files get the permissions the user's umask gives (not owner-only temporary ones), so
    another account or a serving container can read an export."""
    import os
    import stat

    model = Transformer(ModelConfig(vocab_size=300, depth=1, d_model=32, n_heads=2))
    old = os.umask(0o022)
    try:
        out = export_hf(model, tiny_tokenizer_path, tmp_path / "hf")
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()} == {p.name: 0o644 for p in out.iterdir()}


def test_batched_greedy_decoding_matches_transformers_generate(tmp_path, tiny_tokenizer_path):
    """The engine's left-padded batch with its own key/value cache decodes the tokens transformers' `generate`
    decodes from the export (a left-padded batch with an attention mask), to the last slot of the context."""
    from tokenizers import Tokenizer

    from augury.model.generate import SamplingParams, generate

    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=300, depth=2, d_model=64, n_heads=4, n_kv_heads=2,
                                    max_seq_len=64)).eval()
    with torch.no_grad():  # a wider init than training's: clear choices, few near-ties
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.08)
    hf = transformers.LlamaForCausalLM.from_pretrained(export_hf(model, tiny_tokenizer_path, tmp_path / "hf"),
                                                       torch_dtype=torch.float32).eval()
    prompts = [[5, 17, 99, 3], [42], list(range(10, 40))]
    new = 64 - 30
    tok = Tokenizer.from_file(str(tiny_tokenizer_path))
    ours = generate(model, tok, prompts, SamplingParams(max_tokens=new, temperature=0))
    width = max(map(len, prompts))
    ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    with torch.no_grad():
        theirs = hf.generate(ids, attention_mask=mask, max_new_tokens=new, min_new_tokens=new, do_sample=False,
                             pad_token_id=0, eos_token_id=None)
    for row, out in enumerate(ours):
        assert out.token_ids == theirs[row, width:].tolist()
