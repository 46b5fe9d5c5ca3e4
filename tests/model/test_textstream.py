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
