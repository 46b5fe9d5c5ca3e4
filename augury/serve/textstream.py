"""Turn a stream of generated token ids into text deltas that are safe to send.

    stream = TextStream(decode=tokenizer.decode, stop=["\\n\\n"])
    for tok in tokens:
        delta = stream.push(tok)      # text that can be sent now ("" while holding back)
        if stream.stopped: break
    delta = stream.finish()           # whatever was held back, cut at a stop string

Two things are held back until they are settled: a partial UTF-8 character (the decoder shows it as U+FFFD until
its last byte arrives) and a tail that could still grow into a stop string. A stop string is never sent, even when
it spans several tokens.
"""

from __future__ import annotations

from collections.abc import Callable


class TextStream:
    def __init__(self, decode: Callable[[list[int]], str], stop: list[str] | None = None):
        self.decode = decode
        self.stop = [s for s in (stop or []) if s]
        self.ids: list[int] = []
        self.sent = ""  # text already handed out
        self.stopped = False

    def _settled(self, text: str) -> str:
        """The longest prefix of `text` that can be sent now."""
        for s in self.stop:
            i = text.find(s)
            if i >= 0:
                self.stopped = True
                text = text[:i]
        if self.stopped:
            return text
        end = len(text)
        while end > 0 and text[end - 1] == "\ufffd":
            end -= 1
        hold = 0
        for s in self.stop:  # the longest tail of text that is a proper prefix of a stop string
            for k in range(min(len(s) - 1, end), 0, -1):
                if text[end - k:end] == s[:k]:
                    hold = max(hold, k)
                    break
        return text[:end - hold]

    def push(self, token_id: int) -> str:
        if self.stopped:
            return ""
        self.ids.append(token_id)
        ready = self._settled(self.decode(self.ids))
        delta = ready[len(self.sent):] if ready.startswith(self.sent) else ""
        self.sent += delta
        return delta

    def finish(self) -> str:
        """At the end of generation: send what was held back (still cut at a stop string)."""
        text = self.decode(self.ids)
        for s in self.stop:
            i = text.find(s)
            if i >= 0:
                text = text[:i]
        delta = text[len(self.sent):] if text.startswith(self.sent) else ""
        self.sent += delta
        return delta

    @property
    def text(self) -> str:
        return self.sent
