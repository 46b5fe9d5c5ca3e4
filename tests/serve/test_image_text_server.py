"""An image-text run behind `augury serve`: the `<|image|>` id stands only for a chat request's image part, so it
is refused in a token-id prompt (400, that request only) and never sampled; content parts are parsed by shape."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from augury.serve.limits import LimitsConfig


@pytest.fixture
def image_run(tmp_path, tiny_tokenizer_path):
    """A tiny image-text run whose output bias all but forces the <|image|> id."""
    import torch
    import yaml
    from tokenizers import Tokenizer

    from augury.io import to_jsonable
    from augury.model import ModelConfig
    from augury.model.vision import IMAGE_TOKEN_ID, ImageTextModel, VisionConfig
    from augury.train.checkpoint import save_checkpoint

    vocab = Tokenizer.from_file(str(tiny_tokenizer_path)).get_vocab_size()
    cfg = ModelConfig(vocab_size=vocab, depth=1, d_model=32, n_heads=2, max_seq_len=64, output_bias=True).resolved()
    vision = VisionConfig(image_size=8, patch_size=4, depth=1, d_model=32, n_heads=2)
    torch.manual_seed(0)
    model = ImageTextModel(cfg, vision)
    with torch.no_grad():
        model.output_bias[IMAGE_TOKEN_ID] = 50.0
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump({"model": to_jsonable(cfg), "vision": to_jsonable(vision)}))
    shutil.copyfile(tiny_tokenizer_path, run / "tokenizer.json")
    save_checkpoint(run, 1, model, torch.optim.AdamW(model.parameters()), {"step": 1})
    return run


def test_the_image_token_is_a_400_in_a_prompt_and_never_sampled(image_run, tmp_path, make_client):
    from augury.model.vision import IMAGE_TOKEN_ID

    client, _ = make_client(image_run, tmp_path, limits=LimitsConfig(requests_per_minute=600, burst=100))
    resp = client.post("/v1/completions", json={"prompt": [5, IMAGE_TOKEN_ID, 7], "max_tokens": 2})
    assert resp.status_code == 400 and "<|image|>" in resp.json()["error"]["message"]
    for temperature in (0, 1):
        resp = client.post("/v1/completions", json={"prompt": [5, 7], "max_tokens": 6, "temperature": temperature,
                                                     "seed": 6, "logprobs": 1})
        assert resp.status_code == 200, resp.text
        assert resp.json()["usage"]["completion_tokens"] == 6


def test_a_prompt_the_model_cannot_read_fails_alone_among_concurrent_requests(image_run):
    from augury.model.vision import IMAGE_TOKEN_ID
    from augury.serve.backends import GenerationFailed, GenerationJob, LocalBackend

    backend = LocalBackend.load(str(image_run))

    async def run(job):
        try:
            return "".join([d.text async for d in backend.stream(job)]) or "ok"
        except GenerationFailed as err:
            return err

    async def both():
        return await asyncio.gather(*(run(GenerationJob(p, max_tokens=20, temperature=1.0, seed=i))
                                      for i, p in enumerate([[5, 7], [5, IMAGE_TOKEN_ID], [8, 9]])))

    good, bad, other = asyncio.run(both())
    assert isinstance(bad, GenerationFailed) and bad.status == 400 and "<|image|>" in str(bad)
    assert isinstance(good, str) and isinstance(other, str)


@pytest.mark.parametrize(("part", "message"), [
    ({"type": "input_image", "image_url": "data:image/png;base64,!!"}, "'input_image' is the Responses API's"),
    ({"type": "image_url", "image_url": "data:image/png;base64,iVBORw0KGgo="}, "an image part is "),
    ({"type": "image_file", "file_id": "f"}, "only text and image content parts"),
])
def test_a_content_part_of_another_shape_is_one_400_naming_the_part(part, message):
    from augury.serve.config import ServeConfig
    from augury.serve.schema import ChatRequest, RequestInvalid, parse_request

    body = {"messages": [{"role": "system", "content": "s"},
                         {"role": "user", "content": [{"type": "text", "text": "what is it?"}, part]}]}
    with pytest.raises(RequestInvalid, match=rf"^messages\.1\.content\.1: {message}"):
        parse_request(ChatRequest, body, ServeConfig(model="x"))
    good = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}
    body["messages"][1]["content"][1] = good
    req = parse_request(ChatRequest, body, ServeConfig(model="x"))
    assert [(where, p.url) for where, p in req.images()] == [("messages.1.content.1", good["image_url"]["url"])]
    assert req.messages[1].text() == "what is it?"
