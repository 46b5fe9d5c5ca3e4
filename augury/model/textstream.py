"""Turn a stream of generated token ids into text deltas that are safe to send, decoding incrementally.

    stream = TextStream(decode=tokenizer.decode, stop=["\\n\\n"])
    for tok in tokens:
        delta = stream.push(tok)      # text that can be sent now ("" while holding back)
        if stream.stopped: break
    delta = stream.finish()           # whatever was held back, cut at a stop string

Each token is decoded against a short window of the tokens before it (the way vLLM's detokenizer does), so the
cost per token does not grow with the length of the text. Stop strings are matched the Knuth-Morris-Pratt way:
each keeps how much of its start the text ends with, and only the new characters are read, so the cost per token
does not grow with the length of a stop string either (augury serve also bounds that length: augury/serve/schema.py).
Two things are held back until settled: a partial UTF-8 character (the decoder shows it as U+FFFD until its last
byte arrives) and a tail that could still grow into a stop string. A stop string is never sent, even when it spans
several tokens.
"""

from __future__ import annotations

from collections.abc import Callable


class TextStream:
    def __init__(self, decode: Callable[[list[int]], str], stop: list[str] | None = None):
        self.decode = decode
        self.stop = [s for s in (stop or []) if s]
        self._fail = [_prefix_function(s) for s in self.stop]
        self._matched = [0] * len(self.stop)  # per stop: the longest start of it that `text` ends with
        self.ids: list[int] = []
        self.text = ""  # decoded text settled so far (complete characters), stop strings included
        self.sent = 0  # characters of `text` handed out
        self.stopped = False
        self._prefix = 0  # decoding window: ids[_prefix:_read] were decoded already
        self._read = 0

    def _decode_new(self) -> str:
        before = self.decode(self.ids[self._prefix:self._read])
        after = self.decode(self.ids[self._prefix:])
        if len(after) <= len(before) or after.endswith("\ufffd"):
            return ""  # an unfinished character: wait for its remaining bytes
        self._prefix, self._read = self._read, len(self.ids)
        return after[len(before):]

    def _ready(self, final: bool) -> int:
        """How many characters of `text` may be sent."""
        if self.stopped:
            return len(self.text)
        # the longest tail of text that is a proper start of a stop string could still become one
        hold = 0 if final else max(self._matched, default=0)
        return len(self.text) - hold

    def _cut_at_stop(self, new_len: int) -> None:
        """Read the last `new_len` characters of `text` into each stop's match; cut at the earliest stop found."""
        new = self.text[len(self.text) - new_len:]
        cut = None
        for j, s in enumerate(self.stop):
            fail, m = self._fail[j], self._matched[j]
            for i, ch in enumerate(new):
                while m and s[m] != ch:
                    m = fail[m - 1]
                if s[m] == ch:
                    m += 1
                if m == len(s):
                    start = len(self.text) - new_len + i + 1 - m
                    cut = start if cut is None else min(cut, start)
                    break
            self._matched[j] = m
        if cut is not None:
            self.text = self.text[:cut]
            self.stopped = True

    def push(self, token_id: int) -> str:
        if self.stopped:
            return ""
        self.ids.append(token_id)
        new = self._decode_new()
        self.text += new
        if new and self.stop:
            self._cut_at_stop(len(new))
        return self._take(self._ready(final=False))

    def finish(self) -> str:
        """At the end of generation: send what was held back (still cut at a stop string)."""
        if not self.stopped and self._read < len(self.ids):
            rest = self.decode(self.ids[self._prefix:])[len(self.decode(self.ids[self._prefix:self._read])):]
            self.text += rest
            self._read = len(self.ids)
            if rest and self.stop:
                self._cut_at_stop(len(rest))
        return self._take(self._ready(final=True))

    def _take(self, upto: int) -> str:
        if upto <= self.sent:
            return ""
        delta, self.sent = self.text[self.sent:upto], upto
        return delta

    @property
    def sent_text(self) -> str:
        return self.text[:self.sent]


def _prefix_function(s: str) -> list[int]:
    """fail[i]: the length of the longest proper start of s[:i + 1] that is also its end (Knuth-Morris-Pratt)."""
    fail = [0] * len(s)
    k = 0
    for i in range(1, len(s)):
        while k and s[i] != s[k]:
            k = fail[k - 1]
        if s[i] == s[k]:
            k += 1
        fail[i] = k
    return fail
