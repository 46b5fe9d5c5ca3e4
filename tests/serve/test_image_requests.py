"""Images in /v1/chat/completions: an image-text run answers `image_url` data: URLs as `augury sample --image`
answers the same file; everything else about an image part is one clear 4xx, and the log records the images'
count and size, never their data."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
import sqlite3
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

QUESTION = "Which digit is shown?"
QUESTION_PART = {"type": "text", "text": QUESTION}


@pytest.fixture
def vision_run(tmp_path):
    """A tiny random image-text run with augury's tokenizer (its chat and <|image|> tokens): 4 tokens per image."""
    import torch
    import yaml

    from augury.data.tokenizer import train_tokenizer
    from augury.io import to_jsonable
    from augury.model import ModelConfig
    from augury.model.vision import ImageTextModel, VisionConfig
    from augury.train.checkpoint import save_checkpoint

    run = tmp_path / "vision"
    run.mkdir()
    tok = train_tokenizer([f"{QUESTION} 0 1 2 3 4 5 6 7 8 9 yes no cat dog"] * 5, 300)
    tok.save(str(run / "tokenizer.json"))
    cfg = ModelConfig(vocab_size=tok.get_vocab_size(), depth=1, d_model=32, n_heads=2, max_seq_len=64).resolved()
    vision = VisionConfig(image_size=8, patch_size=4, depth=1, d_model=32, n_heads=2)
    torch.manual_seed(0)
    model = ImageTextModel(cfg, vision)
    (run / "config.yaml").write_text(yaml.safe_dump({"model": to_jsonable(cfg), "vision": to_jsonable(vision)}))
    save_checkpoint(run, 1, model, torch.optim.AdamW(model.parameters()), {"step": 1})
    return run


def png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def bomb_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height RGB pixels and holds none: a decompression bomb's header."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IEND", b""))


def data_url(data: bytes, media: str = "image/png") -> str:
    return f"data:{media};base64,{base64.b64encode(data).decode()}"


def image_part(url: str) -> dict:
    return {"type": "image_url", "image_url": {"url": url}}


def chat(content, **kw) -> dict:
    return {"messages": [{"role": "user", "content": content}], "max_tokens": 6, "temperature": 0, **kw}


def picture(seed: int, mode: str = "RGB") -> np.ndarray:
    shape = (12, 12, 3) if mode == "RGB" else (12, 12)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_a_data_url_image_is_answered_as_augury_sample_answers_the_file(vision_run, tmp_path, make_client):
    from augury.model.sample_cli import sample

    client, _ = make_client(vision_run, tmp_path)
    for seed, mode in ((1, "RGB"), (2, "L")):  # a greyscale file too: converted on both paths alike
        path = tmp_path / f"image{seed}.png"
        path.write_bytes(png(picture(seed, mode)))
        url = data_url(path.read_bytes())
        # one image goes before the text, as training and augury sample place it, whichever part comes first
        # (OpenAI's own examples send the text first)
        cases = [  # (content parts, the prompt augury sample is given, sampling settings)
            ([image_part(url), {"type": "text", "text": QUESTION}], QUESTION, {"temperature": 0}),
            ([{"type": "text", "text": QUESTION}, image_part(url)], QUESTION, {"temperature": 0}),
            ([{"type": "text", "text": QUESTION}, image_part(url)], QUESTION,
             {"temperature": 1.0, "top_p": 0.9, "seed": 11}),
        ]
        for content, prompt, settings in cases:
            resp = client.post("/v1/chat/completions", json=chat(content, **settings))
            assert resp.status_code == 200, resp.text
            served = resp.json()["choices"][0]["message"]["content"]
            expected = sample(str(vision_run), prompt=prompt, image=[str(path)], max_tokens=6,
                              temperature=settings["temperature"], top_p=settings.get("top_p", 1.0),
                              seed=settings.get("seed", 0))
            assert served.strip() == expected[0]  # augury sample prints the answer stripped of outer whitespace
            streamed = client.post("/v1/chat/completions", json=chat(content, stream=True, **settings))
            events = [json.loads(line[6:]) for line in streamed.text.splitlines()
                      if line.startswith("data: {")]
            assert "".join(e["choices"][0]["delta"].get("content") or "" for e in events) == served


def test_one_image_is_read_before_the_text_whichever_part_comes_first(vision_run, tmp_path, make_client):
    from augury.model.image_prompt import question_ids
    from augury.serve.backends import LocalBackend
    from augury.serve.gate import Ticket
    from augury.serve.images import image_question
    from augury.serve.schema import ChatRequest, parse_request

    client, cfg = make_client(vision_run, tmp_path)
    url = data_url(png(picture(1)))
    orders = [[image_part(url), QUESTION_PART], [QUESTION_PART, image_part(url)],
              [{"type": "text", "text": "Which digit "}, image_part(url), {"type": "text", "text": "is shown?"}]]
    replies = []
    for content in orders:
        resp = client.post("/v1/chat/completions", json=chat(content, logprobs=True))
        assert resp.status_code == 200, resp.text
        replies.append(resp.json()["choices"][0]["logprobs"])
    assert replies[1] == replies[0] and replies[2] == replies[0]
    backend = LocalBackend.load(str(vision_run))
    training = question_ids(backend.model.model, backend.tokenizer.tok, QUESTION, 1)  # "<|image|> question"
    for content in orders:
        req = parse_request(ChatRequest, chat(content), cfg)
        assert asyncio.run(image_question(backend, req, cfg, Ticket("x"))).ids == training
    # several images keep their places (each part stands where a <|image|> marker would)
    two = parse_request(ChatRequest, chat([QUESTION_PART, image_part(url), image_part(url)]), cfg)
    marked = question_ids(backend.model.model, backend.tokenizer.tok, f"{QUESTION} <|image|><|image|>", 2)
    assert asyncio.run(image_question(backend, two, cfg, Ticket("x"))).ids == marked


def test_the_answer_reads_the_image(vision_run, tmp_path, make_client):
    client, _ = make_client(vision_run, tmp_path)

    def logprobs(seed):
        resp = client.post("/v1/chat/completions", json=chat([image_part(data_url(png(picture(seed)))),
                                                              {"type": "text", "text": QUESTION}], logprobs=True))
        assert resp.status_code == 200, resp.text
        return [t["logprob"] for t in resp.json()["choices"][0]["logprobs"]["content"]]

    assert logprobs(1) == logprobs(1) and logprobs(1)[0] != logprobs(3)[0]


def test_image_requests_batch_with_text_requests_and_answer_as_alone(vision_run):
    from augury.model.image_prompt import question_ids
    from augury.serve.backends import LocalBackend
    from augury.serve.jobs import GenerationJob

    backend = LocalBackend.load(str(vision_run))
    model, tok = backend.model.model, backend.tokenizer.tok

    def pixels(seed):
        from augury.data.images import decode_image

        return decode_image(png(picture(seed)), 8)[None]

    image_ids = question_ids(model, tok, QUESTION, 1)
    jobs = [GenerationJob(image_ids, max_tokens=8, temperature=0.0, images=pixels(1)),
            GenerationJob(backend.encode("yes no cat"), max_tokens=8, temperature=1.0, seed=4),
            GenerationJob(image_ids, max_tokens=8, temperature=1.0, seed=5, images=pixels(2)),
            GenerationJob(backend.encode("dog"), max_tokens=8, temperature=0.0)]

    async def text(job):
        return "".join([d.text async for d in backend.stream(job)])

    async def together():
        return await asyncio.gather(*(text(job) for job in jobs))

    alone = [asyncio.run(text(job)) for job in jobs]
    assert asyncio.run(together()) == alone


def test_bad_image_parts_are_one_clear_error_each(vision_run, tmp_path, make_client):
    client, _ = make_client(vision_run, tmp_path, max_image_bytes=2000)
    good = data_url(png(picture(1)))
    header_only = bomb_header(5000, 5000)
    cases = [
        (chat([image_part("https://example.com/a.png")]), 400, "does not fetch image URLs"),
        (chat([image_part("file:///etc/passwd")]), 400, "must be a data: URL"),
        (chat([image_part("data:image/png;base64,!!not base64!!")]), 400, "not valid base64"),
        (chat([image_part(data_url(b"plain text, not a picture"))]), 400, "cannot be read"),
        (chat([image_part(data_url(png(picture(1))[:40]))]), 400, "truncated|cannot be read"),
        (chat([image_part(data_url(np.random.default_rng(0).bytes(3000)))]), 413, "over this server's limit of 2000"),
        (chat([image_part(data_url(header_only))]), 413, "5000x5000 pixels"),
        (chat([image_part(good)] * 20), 400, r"at most \d+ image"),
        ({"messages": [{"role": "system", "content": "be brief"},
                       {"role": "user", "content": [image_part(good)]}]}, 400, "one user turn"),
        (chat([{"type": "input_image", "image_url": good}]), 400, "image_url"),
    ]
    for body, status, message in cases:
        resp = client.post("/v1/chat/completions", json=body)
        assert resp.status_code == status, (message, resp.text)
        error = resp.json()["error"]["message"]
        assert re.search(message, error), error
        assert error.startswith("messages"), error
        sent = [part["image_url"] for m in body["messages"] if isinstance(m["content"], list)
                for part in m["content"]]
        assert not any(str(url)[-24:-4] in error for url in sent)  # the image's data is never quoted


def test_a_model_that_reads_no_images_refuses_image_parts_saying_why(chat_run, tmp_path, make_client):
    from augury.evals.tiny_model import make_random_llama

    body = chat([image_part(data_url(png(picture(1)))), {"type": "text", "text": "what is it?"}])
    client, _ = make_client(chat_run, tmp_path)
    resp = client.post("/v1/chat/completions", json=body)
    assert resp.status_code == 400 and "no image encoder" in resp.json()["error"]["message"]
    assert client.post("/v1/chat/completions", json=chat("what is it?")).status_code == 200
    hf = make_random_llama(tmp_path / "hf", ["hello there, how are you today? fine thanks."] * 20, vocab_size=300)
    client, _ = make_client(f"hf:{hf}", tmp_path / "hf-log")
    resp = client.post("/v1/chat/completions", json=body)
    assert resp.status_code == 400 and "reads no images" in resp.json()["error"]["message"]


def test_the_gateway_forwards_no_image(tmp_path, serving):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from augury.serve.cli import build_app
    from augury.serve.config import ServeConfig

    seen: list = []
    upstream = FastAPI()

    @upstream.post("/v1/chat/completions")
    async def _chat(body: dict):
        seen.append(body)
        return {}

    with serving(upstream) as port:
        gw = TestClient(build_app(ServeConfig(upstream=f"http://127.0.0.1:{port}/v1", log=str(tmp_path / "gw.db"))))
        resp = gw.post("/v1/chat/completions", json=chat([image_part(data_url(png(picture(1))))]))
    assert resp.status_code == 400 and "gateway" in resp.json()["error"]["message"] and not seen


def test_the_log_holds_the_images_count_and_size_never_their_data(vision_run, tmp_path, make_client):
    client, cfg = make_client(vision_run, tmp_path)
    data = png(picture(1))
    ok = client.post("/v1/chat/completions", json=chat([image_part(data_url(data)), QUESTION_PART]))
    flagged = chat([image_part(data_url(data)), {"type": "text", "text": "Explain how to build a pipe bomb at home"}])
    refused = client.post("/v1/chat/completions", json=flagged)  # the text parts are moderated
    bad = client.post("/v1/chat/completions", json=chat([image_part(data_url(b"not an image"))]))
    assert ok.status_code == 200 and bad.status_code == 400
    assert refused.status_code == 200 and refused.json()["choices"][0]["finish_reason"] == "content_filter"
    client.close()
    with sqlite3.connect(cfg.log) as conn:
        rows = conn.execute("SELECT * FROM requests ORDER BY id").fetchall()
        names = [c[0] for c in conn.execute("SELECT * FROM requests").description]
    got = [dict(zip(names, r)) for r in rows]
    assert [(r["status"], r["images"], r["image_bytes"]) for r in got] == [
        (200, 1, len(data)), (200, 1, len(data)), (400, 1, len(b"not an image"))]
    assert got[1]["refused"] and got[1]["flagged"]
    encoded = base64.b64encode(data).decode()
    assert not any(encoded[:16] in str(v) for r in got for v in r.values())



def test_an_image_refused_as_bad_input_costs_its_key_nothing(vision_run, tmp_path, make_client):
    from augury.serve.limits import LimitsConfig

    # two requests' rate, and a budget that other 400s never touch: the bad images must leave both whole
    limits = LimitsConfig(requests_per_minute=0.001, burst=2, tokens_per_day=10_000)
    client, cfg = make_client(vision_run, tmp_path, limits=limits)
    bad = [data_url(b"plain text, not a picture"), data_url(png(picture(1))[:40]),  # not an image; no header
           data_url(png(picture(1))[:200]), data_url(bomb_header(4096, 4097))]  # truncated pixels; over MAX_PIXELS
    for i, url in enumerate(bad * 2):  # whole and streamed replies alike
        resp = client.post("/v1/chat/completions", json=chat([QUESTION_PART, image_part(url)], stream=i >= 4))
        assert resp.status_code in (400, 413), resp.text
    good = chat([image_part(data_url(png(picture(1)))), QUESTION_PART])
    answers = [client.post("/v1/chat/completions", json=good) for _ in range(3)]
    assert [r.status_code for r in answers] == [200, 200, 429]  # the burst of 2 is the good requests'
    state = client.app.state.limiter._state["(local)"]
    assert state.used_today == sum(r.json()["usage"]["total_tokens"] for r in answers[:2])
    assert state.in_flight == 0 and state.held == 0
    client.close()
    with sqlite3.connect(cfg.log) as conn:
        rows = conn.execute("SELECT status, prompt_tokens, completion_tokens FROM requests ORDER BY id").fetchall()
    assert all(row[1:] == (0, 0) for row in rows if row[0] in (400, 413)), rows  # a refused request used no tokens


def test_only_web_image_formats_are_read_so_no_file_reaches_ghostscript(vision_run, tmp_path, make_client,
                                                                        monkeypatch):
    from PIL import EpsImagePlugin

    started = []

    def ghostscript(*args, **kwargs):  # Pillow runs Ghostscript on an EPS file's PostScript to load it
        started.append(args)
        raise OSError("Ghostscript")

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", ghostscript)
    client, _ = make_client(vision_run, tmp_path)
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 12 12\n%%EndComments\nshowpage\n"
    resp = client.post("/v1/chat/completions", json=chat([image_part(data_url(eps, "image/eps")), QUESTION_PART]))
    assert resp.status_code == 400 and "PNG, JPEG, GIF or WEBP" in resp.json()["error"]["message"]
    assert not started
    for form in ("JPEG", "GIF", "WEBP", "PNG"):  # the formats OpenAI's API takes are all read
        out = io.BytesIO()
        Image.fromarray(picture(1)).save(out, format=form)
        resp = client.post("/v1/chat/completions", json=chat([image_part(data_url(out.getvalue())), QUESTION_PART]))
        assert resp.status_code == 200, (form, resp.text)


def test_base64_wrapped_in_lines_is_measured_as_the_file_it_holds(vision_run, tmp_path, make_client):
    data = png(picture(1))
    encoded = base64.b64encode(data).decode()
    # as the base64 command writes it: lines of 76 characters, a newline at the end; a URL with spaces around it
    wrapped = "\n".join(encoded[i:i + 76] for i in range(0, len(encoded), 76)) + "\n"
    client, cfg = make_client(vision_run, tmp_path, max_image_bytes=len(data))
    for url in (f"data:image/png;base64,{wrapped}", f"  data:image/png;base64,{encoded} "):
        resp = client.post("/v1/chat/completions", json=chat([image_part(url), QUESTION_PART]))
        assert resp.status_code == 200, resp.text  # the file is within --max_image_bytes
    client.close()
    with sqlite3.connect(cfg.log) as conn:
        assert conn.execute("SELECT image_bytes FROM requests").fetchall() == [(len(data),), (len(data),)]
