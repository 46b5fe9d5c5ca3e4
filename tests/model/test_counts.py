"""Parameter counts and FLOPs per token against a closed form and torch's FLOP counter."""

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from augury.model import ModelConfig, Transformer, flops_per_token, param_counts


@pytest.mark.parametrize("kw", [
    dict(depth=2, d_model=64, n_heads=4, n_kv_heads=2, d_ff=160, vocab_size=300),
    dict(depth=1, d_model=32, n_heads=2, d_ff=96, vocab_size=100, tie_embeddings=True),
    dict(depth=3, d_model=96, n_heads=3, d_ff=256, vocab_size=500),
    dict(depth=2, d_model=64, n_heads=2, d_ff=160, vocab_size=300, output_bias=True),
])
def test_param_counts_closed_form(kw):
    cfg = ModelConfig(**kw).resolved()
    d, L, V, f = cfg.d_model, cfg.depth, cfg.vocab_size, cfg.d_ff
    kv = cfg.n_kv_heads * cfg.head_dim
    per_block = d * d * 2 + d * kv * 2 + 3 * d * f + 2 * d   # q,o + k,v + SwiGLU + two RMSNorm gains
    non_embedding = L * per_block + d                         # + final norm
    embedding = V * d * (1 if cfg.tie_embeddings else 2) + (V if cfg.output_bias else 0)
    counts = param_counts(cfg)
    assert counts.non_embedding == non_embedding
    assert counts.embedding == embedding
    assert counts.total == sum(p.numel() for p in Transformer(cfg).parameters())
    T = 16
    expected = 6 * (L * (d * d * 2 + d * kv * 2 + 3 * d * f) + V * d) + 12 * L * d * T
    assert flops_per_token(cfg, T) == expected


@pytest.mark.parametrize("kw", [dict(depth=2, d_model=64, n_heads=4, n_kv_heads=2, vocab_size=300),
                                dict(depth=1, d_model=32, n_heads=2, vocab_size=100, tie_embeddings=True)])
def test_flops_match_torch_flop_counter(kw):
    """Forward+backward FLOPs counted by torch (math SDPA, so attention is visible as matmuls)."""
    cfg = ModelConfig(**kw).resolved()
    model = Transformer(cfg)
    B, T = 2, 16
    x = torch.randint(0, cfg.vocab_size, (B, T))
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(x, targets=x).backward()
    assert counter.get_total_flops() == flops_per_token(cfg, T) * B * T


def test_size_dial_derives_shape():
    cfg = ModelConfig(depth=4).resolved()
    assert (cfg.d_model, cfg.n_heads, cfg.head_dim, cfg.n_kv_heads) == (256, 4, 64, 4)
    assert cfg.d_ff % cfg.ffn_multiple_of == 0 and cfg.d_ff >= 8 * cfg.d_model / 3
    assert ModelConfig(depth=4, d_model=384).resolved().n_heads == 6  # explicit overrides win


def test_bad_shapes_are_clear_errors():
    from augury.model import ModelConfigError

    with pytest.raises(ModelConfigError, match="not divisible by n_heads"):
        ModelConfig(d_model=100, n_heads=3).resolved()
    with pytest.raises(ModelConfigError, match="multiple of n_kv_heads"):
        ModelConfig(d_model=128, n_heads=4, n_kv_heads=3).resolved()


@pytest.mark.parametrize("vkw", [{"image_size": 16, "patch_size": 4, "depth": 2, "d_model": 32, "n_heads": 2},
                                 {"image_size": 12, "patch_size": 6, "depth": 1, "d_model": 48, "n_heads": 3,
                                  "d_ff": 64},
                                 {"image_size": 16, "patch_size": 8, "depth": 1, "d_model": 32, "n_heads": 2,
                                  "stem_channels": 8, "label_classes": 5}])
def test_image_text_counts_match_the_module_and_torch_flop_counter(vkw):
    """Encoder + projector parameters equal the module's; an image-text step's FLOPs (torch's count) equal the
    decoder's per-token FLOPs over every position (image tokens included) plus the encoder's per image."""
    from augury.model.counts import vision_flops_per_image, vision_param_counts
    from augury.model.vision import IMAGE_TOKEN_ID, ImageTextModel, VisionConfig

    cfg = ModelConfig(depth=2, d_model=64, n_heads=4, n_kv_heads=2, vocab_size=300).resolved()
    vision = VisionConfig(**vkw)
    model = ImageTextModel(cfg, vision)
    assert vision_param_counts(vision, cfg.d_model).total == sum(p.numel() for p in model.vision.parameters())
    assert param_counts(cfg).total == sum(p.numel() for n, p in model.named_parameters() if not n.startswith("vision."))
    B, n = 2, vision.tokens_per_image
    T = 2 * n + 10  # row 0: two images inside the text; row 1: one image, and text
    x = torch.randint(10, cfg.vocab_size, (B, T))
    x[0, 3:3 + n] = IMAGE_TOKEN_ID
    x[0, 5 + n:5 + 2 * n] = IMAGE_TOKEN_ID
    x[1, 1:1 + n] = IMAGE_TOKEN_ID
    images = torch.rand(3, 3, vision.image_size, vision.image_size)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(x, targets=x, images=images).backward()
    expected = flops_per_token(cfg, T) * B * T + 3 * vision_flops_per_image(vision, cfg.d_model)
    assert counter.get_total_flops() == expected
