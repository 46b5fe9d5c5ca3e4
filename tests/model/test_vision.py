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
    with pytest.raises(ValueError, match="images must be"):
        models()[1].vision(torch.rand(1, 1, 8, 8))
