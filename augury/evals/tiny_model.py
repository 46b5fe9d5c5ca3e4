"""Create a small random-weight Hugging Face Llama with a byte-level BPE tokenizer trained on given text.

For smoke tests and benchmarks that must run offline: nothing is downloaded. The folder it writes loads with
`AutoModelForCausalLM.from_pretrained` / `AutoTokenizer.from_pretrained` and with `augury eval --model hf:PATH`.

    PYTHONPATH=. python -m augury.evals.tiny_model OUT_DIR --hidden 256 --layers 6
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path


def train_tokenizer(texts: Iterable[str], vocab_size: int):
    """A byte-level BPE `PreTrainedTokenizerFast` with <s>, </s>, <unk> (no BOS added on encode)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", model_max_length=4096)


def make_random_llama(out_dir: str | Path, texts: Iterable[str], vocab_size: int = 1024, hidden: int = 64,
                      layers: int = 2, heads: int = 4, intermediate: int | None = None,
                      max_positions: int = 2048, seed: int = 0) -> Path:
    """Write a random-weight LlamaForCausalLM and its tokenizer to `out_dir`; returns the folder."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(texts, vocab_size)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=heads,
                         intermediate_size=intermediate or 4 * hidden, max_position_embeddings=max_positions,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    # A wider init than the default 0.02 makes the random model's choices differ clearly (fewer near-ties).
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.08)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out_dir")
    p.add_argument("--text-file", help="train the tokenizer on this file (default: a built-in sentence set)")
    p.add_argument("--vocab-size", type=int, default=1024)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    a = p.parse_args(argv)
    texts = (Path(a.text_file).read_text(encoding="utf-8").splitlines() if a.text_file
             else ["The quick brown fox jumps over the lazy dog. Answer: A B C D"] * 10)
    print(make_random_llama(a.out_dir, texts, a.vocab_size, a.hidden, a.layers, a.heads))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
