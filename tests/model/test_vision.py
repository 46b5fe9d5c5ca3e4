"""The image-text model: the text path equals the plain Transformer bit for bit; images fill their placeholders."""

import pytest
import torch

from augury.model import ModelConfig, Transformer
from augury.model.vision import IMAGE_TOKEN_ID, ImageTextModel, VisionConfig

CFG = ModelConfig(vocab_size=97, depth=2, d_model=64, n_heads=4, max_seq_len=64)
VISION = VisionConfig(image_size=8, patch_size=4, depth=1, d_model=32, n_heads=2)  # 4 tokens per image


def models():
    torch.manual_seed(0)
    text = Transformer(CFG).eval()
    both = ImageTextModel(CFG, VISION).eval()
    missing, unexpected = both.load_state_dict(text.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("vision.") for k in missing)
    return text, both


def test_text_only_path_is_bit_equal_to_the_transformer():
    text, both = models()
    x = torch.randint(10, 97, (2, 20))
    with torch.no_grad():
        assert torch.equal(text(x), both(x))
        assert torch.equal(text(x, targets=x), both(x, targets=x))
        cache_a, cache_b = text.new_kv_cache(2, 32), both.new_kv_cache(2, 32)
        assert torch.equal(text(x, kv_cache=cache_a), both(x, kv_cache=cache_b))


def test_images_replace_placeholders_anywhere_in_the_sequence():
    _, model = models()
    n = VISION.tokens_per_image
    x = torch.randint(10, 97, (1, 20))
    x[0, 7:7 + n] = IMAGE_TOKEN_ID  # an image in the middle of a turn
    a, b = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        out_a, out_b = model(x, images=a), model(x, images=b)
        plain = model.embed(x, a)
    assert torch.equal(out_a[:, :7], out_b[:, :7])  # before the image: unaffected (causal)
    assert not torch.allclose(out_a[:, 7:], out_b[:, 7:])  # from the image on: the image is read
    with torch.no_grad():
        feats = model.vision(a)[0]
    torch.testing.assert_close(plain[0, 7:7 + n], feats)
    assert torch.equal(plain[0, :7], model.embed_tokens(x[0, :7]))


@pytest.mark.parametrize("n_images, slots", [(2, 1), (1, 2), (1, 0)])
def test_images_and_placeholders_must_match(n_images, slots):
    _, model = models()
    n = VISION.tokens_per_image
    x = torch.randint(10, 97, (1, 3 * n))
    x[0, :slots * n] = IMAGE_TOKEN_ID
    with pytest.raises(ValueError, match="image"):
        model(x, images=torch.rand(n_images, 3, 8, 8))


def test_vision_config_rejects_bad_shapes():
    from augury.model import ModelConfigError

    with pytest.raises(ModelConfigError, match="multiple"):
        VisionConfig(image_size=10, patch_size=4).validate()
    with pytest.raises(ModelConfigError, match="even"):
        VisionConfig(image_size=12, patch_size=3, stem_channels=8).validate()
    with pytest.raises(ModelConfigError, match="lr_mult"):
        VisionConfig(lr_mult=0).validate()
    with pytest.raises(ValueError, match="images must be"):
        models()[1].vision(torch.rand(1, 1, 8, 8))


def test_batched_generation_with_images_equals_each_prompt_alone():
    """The generation engine decodes image prompts of different lengths together: each row's greedy tokens are
    those it gets alone, and its image (not its neighbour's) is the one read."""
    from augury.model.generate import SamplingParams, generate

    class Bytes:
        def decode(self, ids):
            return " ".join(map(str, ids))

    _, model = models()
    n = VISION.tokens_per_image
    prompts = [[11, 12] + [IMAGE_TOKEN_ID] * n + [13], [20] + [IMAGE_TOKEN_ID] * n + [21, 22, 23, 24],
               [30] + [IMAGE_TOKEN_ID] * n + [31] + [IMAGE_TOKEN_ID] * n]
    torch.manual_seed(1)
    images = [torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8), torch.rand(2, 3, 8, 8)]
    params = SamplingParams(max_tokens=5, temperature=0)
    together = generate(model, Bytes(), prompts, params, images=images)
    for prompt, pixels, out in zip(prompts, images, together):
        ids, alone = list(prompt), []
        with torch.no_grad():
            for _ in range(5):
                nxt = int(model(torch.tensor([ids]), images=pixels)[0, -1].argmax())
                ids.append(nxt)
                alone.append(nxt)
        assert out.token_ids == alone
    swapped = generate(model, Bytes(), prompts[:2], params, images=images[1::-1])
    assert [g.token_ids for g in swapped] != [g.token_ids for g in together[:2]]


def test_a_convolutional_stem_keeps_the_patch_grid_and_its_weights_train_with_the_encoder():
    vision = VisionConfig(image_size=8, patch_size=4, depth=1, d_model=32, n_heads=2, stem_channels=6, lr_mult=3.0)
    model = ImageTextModel(CFG, vision)
    feats = model.vision(torch.rand(2, 3, 8, 8))
    assert feats.shape == (2, vision.tokens_per_image, CFG.d_model)
    groups = {g["name"]: g for g in model.param_groups(0.1)}
    stem = {id(p) for p in model.vision.stem.parameters()}
    assert stem <= {id(p) for g in ("vision", "vision_gains") for p in groups[g]["params"]}
    assert groups["vision"]["lr_mult"] == groups["vision_gains"]["lr_mult"] == 3.0
    assert groups["hidden"]["lr_mult"] == 1.0


def image_token_lover():
    """An image-text model whose next-token logits all but force the <|image|> id."""
    from dataclasses import replace

    torch.manual_seed(0)
    model = ImageTextModel(replace(CFG, output_bias=True), VISION).eval()
    with torch.no_grad():
        model.output_bias[IMAGE_TOKEN_ID] = 50.0
    return model


@pytest.mark.parametrize("temperature, top_p", [(0.0, 1.0), (1.0, 1.0), (1.0, 0.5)])
def test_the_image_token_is_never_sampled(temperature, top_p):
    from augury.model.generate import SamplingParams, generate

    class Ids:
        def decode(self, ids):
            return " ".join(map(str, ids))

    model = image_token_lover()
    n = VISION.tokens_per_image
    prompts = [[11, 12], [20] + [IMAGE_TOKEN_ID] * n + [21]]
    params = SamplingParams(max_tokens=6, temperature=temperature, top_p=top_p, seed=6)
    outs = generate(model, Ids(), prompts, params, images=[None, torch.rand(1, 3, 8, 8)])
    assert all(len(g.token_ids) == 6 and IMAGE_TOKEN_ID not in g.token_ids for g in outs)


def test_a_prompt_with_placeholders_but_no_image_is_refused_when_added_and_fails_no_other_request():
    from augury.model.generate import Engine, SamplingParams

    class Ids:
        def decode(self, ids):
            return " ".join(map(str, ids))

    _, model = models()
    engine = Engine(model, Ids())
    engine.add("ok", [11, 12, 13], SamplingParams(max_tokens=3, temperature=0))
    with pytest.raises(ValueError, match="image token can only stand for an image"):
        engine.add("bad", [11, IMAGE_TOKEN_ID, 12], SamplingParams(max_tokens=3, temperature=0))
    done = []
    while engine.busy():
        done += [e.key for e in engine.step() if e.finished]
    assert done == ["ok"]


def test_a_marker_with_spaces_around_it_gives_the_prompt_training_used():
    from augury.data.tokenizer import train_tokenizer
    from augury.model.image_prompt import chat_ids

    tok = train_tokenizer(["Which digit is shown?", "Which is largest?", "a and b"] * 20, 300)
    trained, _ = chat_ids(tok, "Which digit is shown?", 1, 4)  # training: the image first, then the question
    for prompt in ("<|image|> Which digit is shown?", "<|image|>\nWhich digit is shown?"):
        assert chat_ids(tok, prompt, 1, 4)[0] == trained
    two, _ = chat_ids(tok, "<|image|> and <|image|> ", 2, 4)
    assert two == chat_ids(tok, "<|image|>and<|image|>", 2, 4)[0]
