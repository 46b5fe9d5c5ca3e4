"""Byte-level BPE: exact round trip of any text, special tokens at ids 0..8, save/load, HF parity."""

from __future__ import annotations

import random

import pytest

from augury.data.tokenizer import SPECIAL_TOKENS, encode_documents, load_tokenizer, train_tokenizer
from tests.data.conftest import SAMPLE_TEXTS

TRICKY = [
    "",
    " ",
    "   leading and trailing   ",
    "héllo wörld — naïve café",
    "東京タワー and 中文 mixed with ASCII",
    "emoji 😀👍🏽 family 👨‍👩‍👧 flags 🇫🇷",
    "combining e\u0301 and zero\u200bwidth, RTL שלום مرحبا",
    "\x00 NUL, \x7f DEL, bell \x07, form\x0cfeed",
    "tabs\tand\r\nCRLF\rCR\n\n\n  blank lines",
    "numbers 1234567890 3.14159 -1e-10",
    "<|endoftext|><|user|>hi<|assistant|>hello<|end|><|image|>",
    "don't won't I'LL they've",
    "def f(x):\n\treturn {'a': [x, x ** 2]}\n",
]


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(list(SAMPLE_TEXTS.values()) * 3, vocab_size=400)


def test_special_tokens_have_ids_0_to_8_in_order(tok):
    assert [tok.token_to_id(t) for t in SPECIAL_TOKENS] == list(range(9))
    assert SPECIAL_TOKENS[0] == "<|endoftext|>" and len(SPECIAL_TOKENS) == 9


def test_vocab_size_is_respected(tok):
    assert 265 <= tok.get_vocab_size() <= 400
    with pytest.raises(ValueError, match="vocab_size"):
        train_tokenizer(["abc"], vocab_size=264)


@pytest.mark.parametrize("text", TRICKY)
def test_round_trip_exact(tok, text):
    ids = tok.encode(text).ids
    assert tok.decode(ids, skip_special_tokens=False) == text
    doc_ids = encode_documents(tok, [text])[0]
    assert tok.decode(doc_ids, skip_special_tokens=False) == text


def test_round_trip_random_unicode(tok):
    rng = random.Random(0)
    # Sample code points from several planes, skipping surrogates (not encodable as UTF-8 at all).
    ranges = [(0, 0x7F), (0x80, 0x7FF), (0x800, 0xD7FF), (0xE000, 0xFFFF), (0x10000, 0x10FFFF)]
    for _ in range(200):
        chars = []
        for _ in range(rng.randint(0, 40)):
            lo, hi = rng.choice(ranges)
            chars.append(chr(rng.randint(lo, hi)))
        text = "".join(chars)
        assert tok.decode(tok.encode(text).ids, skip_special_tokens=False) == text


def test_special_strings_are_tokens_but_never_inside_documents(tok):
    text = "a<|endoftext|>b<|user|>"
    assert 0 in tok.encode(text).ids and 3 in tok.encode(text).ids  # as a chat template would use them
    doc_ids = encode_documents(tok, [text])[0]
    assert not set(doc_ids) & set(range(len(SPECIAL_TOKENS)))  # corpus text never injects a boundary


def test_bpe_compresses_the_text_it_was_trained_on(tok):
    text = SAMPLE_TEXTS["alpha.py"]
    assert len(tok.encode(text).ids) < 0.75 * len(text.encode("utf-8"))  # merges learned, not bytes only


def test_save_load_identical(tok, tmp_path):
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    again = load_tokenizer(path)
    for text in TRICKY:
        assert again.encode(text).ids == tok.encode(text).ids
    with pytest.raises(FileNotFoundError, match="nope.json"):
        load_tokenizer(tmp_path / "nope.json")


def test_transformers_fast_tokenizer_gives_the_same_ids(tok, tmp_path):
    transformers = pytest.importorskip("transformers")
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    hf = transformers.PreTrainedTokenizerFast(tokenizer_file=str(path))
    for text in TRICKY:
        ids = hf.encode(text, add_special_tokens=False)
        assert ids == tok.encode(text).ids
        assert hf.decode(ids, clean_up_tokenization_spaces=False) == text


LONG_RUNS = ["x" * 300_000, "a" + " " * 300_000 + "b", "=" * 300_000 + "\n" * 300_000, "_" * 300_000]


def test_a_long_run_of_one_character_class_never_reaches_the_bpe_trainer_whole(monkeypatch):
    # The trainer merges a pair inside a pre-token by shifting the rest of it, so one pre-token of n characters
    # costs O(n^2) per merge: 200,000 spaces or letters in a row took 36 s to train on, 2 MB about an hour.
    import re

    from augury.data import tokenizer as tokenizer_mod

    seen = []

    class Recording:
        def __init__(self, inner):
            self.inner = inner

        def train_from_iterator(self, texts, trainer):
            texts = list(texts)
            seen.extend(texts)
            longest = max(len(run) for t in texts for run in re.findall(r"\s+|\S+", t))
            assert longest <= 10_000, f"the trainer was given a run of {longest:,} characters"
            self.inner.train_from_iterator(texts, trainer=trainer)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    empty = tokenizer_mod._empty_tokenizer
    monkeypatch.setattr(tokenizer_mod, "_empty_tokenizer", lambda: Recording(empty()))
    train_tokenizer([*SAMPLE_TEXTS.values(), *LONG_RUNS], vocab_size=300)
    assert "".join(seen) == "".join([*SAMPLE_TEXTS.values(), *LONG_RUNS])  # cut, nothing lost or added
    assert set(SAMPLE_TEXTS.values()) <= set(seen)  # ordinary text reaches the trainer as it is


def test_long_runs_train_and_round_trip():
    tok = train_tokenizer([*SAMPLE_TEXTS.values(), *LONG_RUNS], vocab_size=300)
    for text, ids in zip(LONG_RUNS, encode_documents(tok, LONG_RUNS)):
        assert tok.decode(ids, skip_special_tokens=False) == text
        assert len(ids) < len(text) / 4  # the runs were learned as long tokens
