"""A streamed reply's output check, on a local model and through the gateway: a phrase the whole-reply check
flags is cut before its last piece reaches the client, however much padding (white space, invisible format
characters, combining marks) its words are spread over."""

from __future__ import annotations

import json

import pytest

from augury.serve.limits import LimitsConfig

# "build ... a pipe bomb" (the default policy's illicit/violent rule, refused on output), its words spread over
# padding the rules read as one space or as nothing: the raw text runs far past the 512-character window
PADDINGS = {"spaces": " " * 700, "zero-width": " " + "\u200b" * 700, "mixed": " \u200b\t\n" * 200,
            "marks": "\u0301" * 700 + " "}


def _pieces(padding: str) -> list[str]:
    half = len(padding) // 2
    return ["Here is how to build", padding[:half], padding[half:], "a pipe", " bomb", ", step one"]


def _events(text: str) -> list:
    return [json.loads(b[6:]) for b in text.split("\n\n") if b.startswith("data: ") and b[6:] != "[DONE]"]


def test_the_window_reads_the_text_as_the_rules_do():
    from augury.serve.moderation import ModerationPolicy, Moderator, StreamWindow

    moderator = Moderator(ModerationPolicy.load(None))
    for name, padding in PADDINGS.items():
        window = StreamWindow(512)
        flagged = [moderator.check(window.add(p), "output").refused for p in _pieces(padding)]
        assert flagged == [False, False, False, False, True, True], name
    window = StreamWindow(8)
    for piece in ("a" * 20, " " * 50, "\u200b" * 50, "b"):
        seen = window.add(piece)
    assert seen.endswith("b") and seen.count("a") >= 6 and len(seen) < 40  # padding does not fill the window
    assert StreamWindow(8).add("") == ""


class Scripted:
    """A local model whose every reply is the given pieces, one delta each."""

    def __init__(self, backend, pieces: list[str]):
        self._backend, self.pieces = backend, pieces

    def __getattr__(self, name):
        return getattr(self._backend, name)

    async def stream(self, job):
        from augury.serve.jobs import Delta

        for i, piece in enumerate(self.pieces):
            last = i == len(self.pieces) - 1
            yield Delta(text=piece, completion_tokens=i + 1, finish_reason="stop" if last else None)


@pytest.mark.parametrize("padding", sorted(PADDINGS))
def test_a_padded_phrase_is_cut_before_it_completes_on_a_local_model(tiny_run, tmp_path, padding):
    from fastapi.testclient import TestClient

    from augury.serve.app import create_app
    from augury.serve.backends import LocalBackend
    from augury.serve.config import ServeConfig
    from augury.serve.requestlog import RequestLog

    cfg = ServeConfig(model=str(tiny_run), log=str(tmp_path / "r.db"),
                      limits=LimitsConfig(requests_per_minute=600, burst=100))
    backend = Scripted(LocalBackend.load(str(tiny_run)), _pieces(PADDINGS[padding]))
    client = TestClient(create_app(cfg, backend, None, RequestLog(cfg.log)))
    events = _events(client.post("/v1/completions", json={"prompt": "a", "max_tokens": 8, "stream": True}).text)
    sent = "".join(e["choices"][0]["text"] for e in events if e["choices"])
    assert "bomb" not in sent and sent.startswith("Here is how to build")
    assert events[-1]["choices"][0]["finish_reason"] == "content_filter"


def _upstream(pieces: list[str]):
    """An OpenAI-compatible upstream whose every streamed completion is the given pieces, one chunk each."""
    from fastapi import FastAPI
    from fastapi.responses import StreamingResponse

    app = FastAPI()

    @app.post("/v1/completions")
    async def completions(body: dict):
        async def events():
            for i, piece in enumerate(pieces):
                choice = {"index": 0, "text": piece, "finish_reason": "stop" if i == len(pieces) - 1 else None}
                yield f"data: {json.dumps({'choices': [choice]})}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


@pytest.mark.parametrize("padding", sorted(PADDINGS))
def test_a_padded_phrase_is_cut_before_it_completes_through_the_gateway(tmp_path, serving, padding):
    from fastapi.testclient import TestClient

    from augury.serve.cli import build_app
    from augury.serve.config import ServeConfig

    with serving(_upstream(_pieces(PADDINGS[padding]))) as port:
        cfg = ServeConfig(upstream=f"http://127.0.0.1:{port}/v1", log=str(tmp_path / "gw.db"),
                          limits=LimitsConfig(requests_per_minute=600, burst=100))
        gw = TestClient(build_app(cfg))
        events = _events(gw.post("/v1/completions", json={"prompt": "a", "max_tokens": 8, "stream": True}).text)
    sent = "".join(c.get("text", "") for e in events for c in e["choices"])
    assert "bomb" not in sent and sent.startswith("Here is how to build")
    assert [c["finish_reason"] for e in events for c in e["choices"]][-1] == "content_filter"
