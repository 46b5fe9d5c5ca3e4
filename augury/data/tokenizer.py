"""Byte-level BPE tokenizer (Hugging Face `tokenizers`) with reserved special tokens, saved as tokenizer.json.

Pre-tokenization splits text like GPT-4's cl100k pattern (letters, numbers of up to 3 digits, punctuation
runs, newlines, spaces), then maps bytes to the 256 byte-level symbols, so every string round-trips exactly:
`tok.decode(tok.encode(s).ids, skip_special_tokens=False) == s`.

    from augury.data.tokenizer import train_tokenizer, load_tokenizer, SPECIAL_TOKENS
    tok = train_tokenizer(texts, vocab_size=4096); tok.save("tokenizer.json")
    ids = encode_documents(tok, ["def f(): pass"])   # document text never produces special-token ids
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

# Reserved ids 0..8, in this order. <|endoftext|> separates documents; the chat-role and image tokens are
# reserved now so that later post-training and image input need no change of vocabulary.
SPECIAL_TOKENS = ["<|endoftext|>", "<|pad|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>",
                  "<|image|>", "<|image_start|>", "<|image_end|>"]
EOT_ID = 0
PAD_ID = 1

# GPT-4 (cl100k) style split: contractions, words with one leading non-letter, numbers of 1-3 digits,
# punctuation runs with trailing newlines, newline runs, and spaces (a space run keeps its last space for the
# next word). Every character lands in exactly one piece, so no text is lost.
SPLIT_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


# The BPE trainer merges a pair inside a pre-token by shifting the rest of it (tokenizers' Word::merge), so a
# pre-token of n characters costs O(n^2) per merge: 200,000 spaces or letters in a row took 36 s to train on, 2 MB
# about an hour. Every long pre-token lies inside a long run of whitespace or of non-whitespace, so training sees
# such runs cut every MAX_TRAIN_RUN characters (encoding is untouched: it merges in O(n log n)). Ordinary text and
# code have no such run (CPython's standard library has none over 138), so its tokenizer is unchanged.
MAX_TRAIN_RUN = 1000
_SPACE = np.array([chr(c).isspace() for c in range(0x3001)] + [False])  # U+3000 is the last whitespace


def _training_pieces(text: str) -> list[str]:
    """`text` cut inside each run of more than MAX_TRAIN_RUN whitespace or non-whitespace characters."""
    if len(text) <= MAX_TRAIN_RUN:
        return [text]
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    space = _SPACE[np.minimum(codes, len(_SPACE) - 1)]
    edges = np.flatnonzero(space[1:] != space[:-1]) + 1
    starts, ends = np.concatenate(([0], edges)), np.concatenate((edges, [len(codes)]))
    cuts = [c for i in np.flatnonzero(ends - starts > MAX_TRAIN_RUN).tolist()
            for c in range(int(starts[i]) + MAX_TRAIN_RUN, int(ends[i]), MAX_TRAIN_RUN)]
    if not cuts:
        return [text]
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:])]


def _empty_tokenizer() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    return tok


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> Tokenizer:
    """Train a byte-level BPE of at most `vocab_size` tokens (special tokens: ids 0..8, then the 256 bytes).

    On a small corpus the learned vocabulary can be smaller than `vocab_size` (no more merges to learn).
    """
    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size must be >= {256 + len(SPECIAL_TOKENS)}, got {vocab_size}")
    tok = _empty_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,  # a pair seen once is noise, not a unit worth a vocabulary slot
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes, so any input is encodable
        show_progress=False,
    )
    tok.train_from_iterator((piece for text in texts for piece in _training_pieces(text)), trainer=trainer)
    for i, name in enumerate(SPECIAL_TOKENS):
        got = tok.token_to_id(name)
        assert got == i, f"special token {name} got id {got}, expected {i}"
    return tok


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    """Load a tokenizer.json written by `train_tokenizer` (or any HF tokenizers file)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"tokenizer file {str(path)!r} does not exist")
    return Tokenizer.from_file(str(path))


def encode_documents(tok: Tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids of each document, treating special-token strings inside the text as plain text.

    A file that mentions "<|endoftext|>" (a tokenizer's source code, say) must not inject a document boundary
    into the training stream, so special tokens are only ever placed by id, never by matching text.
    """
    previous = tok.encode_special_tokens
    tok.encode_special_tokens = True
    try:
        return [enc.ids for enc in tok.encode_batch(texts, add_special_tokens=False)]
    finally:
        tok.encode_special_tokens = previous
