"""Streamed text: stop strings are never sent, partial characters and possible stop prefixes are held back."""

from __future__ import annotations

from augury.model.textstream import TextStream


def _bytes_decoder():
    # token i is byte i: decoding shows an incomplete UTF-8 sequence as U+FFFD, like a byte-level BPE
    return lambda ids: bytes(ids).decode("utf-8", errors="replace")


def test_stop_string_split_across_tokens_is_never_sent():
    stream = TextStream(_bytes_decoder(), stop=["STOP"])
    sent = "".join(stream.push(b) for b in b"abcST")
    assert sent == "abc"  # "ST" could begin "STOP": held back
    sent += stream.push(ord("O")) + stream.push(ord("P"))
    assert stream.stopped and sent == "abc"
    assert stream.finish() == "" and stream.text == "abc"


def test_held_back_prefix_is_released_when_it_cannot_be_a_stop():
    stream = TextStream(_bytes_decoder(), stop=["STOP"])
    sent = "".join(stream.push(b) for b in b"xST")
    assert sent == "x"
    sent += stream.push(ord("!"))
    assert sent == "xST!" and not stream.stopped


def test_partial_utf8_character_is_held_back():
    stream = TextStream(_bytes_decoder())
    euro = "€".encode()
    assert stream.push(ord("a")) == "a"
    assert stream.push(euro[0]) == "" and stream.push(euro[1]) == ""
    assert stream.push(euro[2]) == "€"


def test_finish_releases_held_prefix():
    stream = TextStream(_bytes_decoder(), stop=["STOP"])
    "".join(stream.push(b) for b in b"okST")
    assert stream.finish() == "ST" and stream.text == "okST"


def _expected_text(text: str, pieces: list[int], stops: list[str]) -> str:
    """The text a stream keeps: cut at the earliest stop string found once the piece that completes one arrives."""
    end = 0
    for n in pieces:
        end += n
        found = [i for i in (text[:end].find(s) for s in stops) if i >= 0]
        if found:
            return text[:min(found)]
    return text


def test_stop_strings_are_found_across_token_boundaries_and_overlaps():
    import random

    rng = random.Random(0)
    for _ in range(300):  # a two-letter alphabet makes overlapping, self-similar stop strings common
        stops = ["".join(rng.choice("ab") for _ in range(rng.randint(1, 6))) for _ in range(rng.randint(1, 4))]
        text = "".join(rng.choice("ab") for _ in range(rng.randint(0, 30)))
        pieces, left = [], len(text)
        while left:
            pieces.append(min(left, rng.randint(1, 4)))
            left -= pieces[-1]
        vocab: list[str] = []  # each piece is one token of its own
        stream = TextStream(lambda ids: "".join(vocab[i] for i in ids), stops)
        sent, at = "", 0
        for n in pieces:
            vocab.append(text[at:at + n])
            at += n
            sent += stream.push(len(vocab) - 1)
            if stream.stopped:
                break
        sent += stream.finish()
        assert sent == stream.text == _expected_text(text, pieces, stops), (stops, text, pieces)


class _CountingStr(str):
    """A stop string that counts the characters read from it."""

    reads = 0

    def __getitem__(self, key):
        part = str.__getitem__(self, key)
        _CountingStr.reads += len(part)
        return part


def test_each_token_reads_only_the_new_text_not_the_whole_stop_string():
    long_stop = _CountingStr("x" * 2000 + "END")
    stream = TextStream(_bytes_decoder(), stop=[long_stop])
    for b in b"a" * 3000:  # text longer than the stop string, none of it a start of it
        stream.push(b)
    _CountingStr.reads = 0
    for b in b"bbbbbbbbbb":
        assert stream.push(b) == "b"
    assert _CountingStr.reads <= 2 * 10  # a few characters per new character, not the length of the stop string
    for b in b"xx":
        stream.push(b)
    assert stream.push(ord("c")) == "xxc"  # a held-back start of the stop string is released when it ends


def test_a_long_stop_string_split_over_many_tokens_is_cut():
    stop = "the end of it all " * 10
    stream = TextStream(_bytes_decoder(), stop=["zzz", stop])
    sent = "".join(stream.push(b) for b in ("story. " + stop + "more").encode())
    assert stream.stopped and sent + stream.finish() == "story. " == stream.text
