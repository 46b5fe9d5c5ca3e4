"""Image input: a ViT-style encoder and a projector whose outputs replace the `<|image|>` placeholder embeddings.

The encoder cuts an RGB image (3, S, S) into non-overlapping patches with `F.unfold`, embeds each patch linearly,
adds a learned position embedding and runs bidirectional Transformer blocks built from the decoder's parts
(RMSNorm, SwiGLU MLP, fused-QKV attention without rotary embeddings or a causal mask). A two-layer projector maps
each patch feature to the decoder's width. Every image becomes `tokens_per_image` = (S / patch_size)² decoder
positions: the token sequence holds that many `<|image|>` ids per image, anywhere (inside a chat turn), and
`ImageTextModel` writes the projected features into those positions before the decoder runs (LLaVA / nanoVLM).

    model = ImageTextModel(ModelConfig(depth=2, vocab_size=512), VisionConfig())
    loss = model(ids, targets=y, images=pixels)   # pixels (n_images, 3, S, S) in [0, 1], in placeholder order
    logits = model(ids)                           # no placeholders: exactly the text-only Transformer

`ImageTextModel` is a `Transformer` with one extra submodule, `vision`: its checkpoint is the text model's
tensors plus `vision.*`, so a pretrained text run's weights load into it unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from augury.model.config import ModelConfig, ModelConfigError
from augury.model.transformer import MLP, Attention, RMSNorm, Transformer, _attend

IMAGE_TOKEN_ID = 6  # "<|image|>" in augury's reserved special tokens (augury.data.tokenizer.SPECIAL_TOKENS)


@dataclass
class VisionConfig:
    """Shape of the image encoder and projector.

    Args:
        image_size: side in pixels of the square RGB image the encoder reads (inputs are resized to it).
        patch_size: side of one square patch; image_size must be a multiple of it.
        depth: encoder Transformer blocks.
        d_model: encoder width.
        n_heads: encoder attention heads.
        d_ff: encoder SwiGLU hidden width; None = 8/3 * d_model rounded up to 32.
        stem_channels: channels of a convolutional stem run before the patches are cut (0 = none, a plain
            ViT): a 3x3 convolution, GELU, a 3x3 convolution with stride 2, GELU; the patches are then cut from
            its (stem_channels, S/2, S/2) feature map, patch_size/2 on a side, so tokens_per_image is unchanged.
            Early convolutions give the encoder translation-equivariant features to start from (Xiao et al.
            2021, "Early convolutions help transformers see better"); patch_size must then be even.
        label_classes: classes of an auxiliary label head (a linear classifier on the encoder's features
            averaged over the patches; `ImageTextModel.losses`); 0 = none. Set by the trainer from
            `images.label_loss`; answering never uses it.
        init_std: initialisation std of the encoder and projector weights.
        lr_mult: learning-rate multiplier of the encoder and projector relative to the decoder's base rate.
    """

    image_size: int = 32
    patch_size: int = 4
    depth: int = 2
    d_model: int = 128
    n_heads: int = 2
    d_ff: int | None = None
    stem_channels: int = 0
    label_classes: int = 0
    init_std: float = 0.02
    lr_mult: float = 1.0

    def validate(self) -> None:
        """Raise ModelConfigError for a shape that cannot be built."""
        if self.patch_size < 1 or self.image_size < self.patch_size or self.image_size % self.patch_size:
            raise ModelConfigError(f"vision.image_size={self.image_size} must be a positive multiple of "
                                   f"vision.patch_size={self.patch_size}")
        if self.depth < 1 or self.n_heads < 1 or self.d_model % self.n_heads:
            raise ModelConfigError(f"vision: depth >= 1 and d_model={self.d_model} divisible by "
                                   f"n_heads={self.n_heads} needed")
        if self.stem_channels < 0 or (self.stem_channels and self.patch_size % 2):
            raise ModelConfigError(f"vision.stem_channels={self.stem_channels} must be >= 0, and with a stem "
                                   f"vision.patch_size={self.patch_size} must be even")
        if self.label_classes < 0:
            raise ModelConfigError(f"vision.label_classes must be >= 0, got {self.label_classes}")
        if not self.lr_mult > 0:
            raise ModelConfigError(f"vision.lr_mult must be > 0, got {self.lr_mult}")

    @property
    def tokens_per_image(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def patch_dim(self) -> int:
        """Inputs of the patch embedding: the pixels of one patch, or the stem's features over one patch."""
        if self.stem_channels:
            return self.stem_channels * (self.patch_size // 2) ** 2
        return 3 * self.patch_size ** 2

    def block_config(self) -> ModelConfig:
        """The encoder blocks' shape, in the decoder's config type (so the decoder's parts build them)."""
        self.validate()
        return ModelConfig(vocab_size=2, depth=self.depth, d_model=self.d_model, n_heads=self.n_heads,
                           d_ff=self.d_ff, max_seq_len=self.tokens_per_image).resolved()


class BidirectionalAttention(Attention):
    """The decoder's attention without rotary embeddings and without a causal mask (patches see each other)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        q, k, v = self.qkv_proj(x).split(self.split, dim=-1)
        q, k, v = (t.view(B, T, -1, self.head_dim).transpose(1, 2) for t in (q, k, v))
        y = _attend(q, k, v)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim))


class EncoderBlock(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.self_attn = BidirectionalAttention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x))
        return x + self.mlp(self.post_attention_layernorm(x))


class VisionEncoder(nn.Module):
    """pixels (N, 3, S, S) in [0, 1] -> features (N, tokens_per_image, out_dim) for the decoder."""

    def __init__(self, cfg: VisionConfig, out_dim: int):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        bcfg = cfg.block_config()
        c = cfg.stem_channels
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1), nn.GELU(),
                                  nn.Conv2d(c, c, 3, stride=2, padding=1), nn.GELU()) if c else None
        self.patch_embed = nn.Linear(cfg.patch_dim, cfg.d_model)
        self.pos_embed = nn.Parameter(torch.zeros(cfg.tokens_per_image, cfg.d_model))
        self.layers = nn.ModuleList(EncoderBlock(bcfg) for _ in range(cfg.depth))
        self.norm = RMSNorm(cfg.d_model, bcfg.norm_eps)
        self.proj_in = nn.Linear(cfg.d_model, out_dim)  # the projector: Linear -> GELU -> Linear (LLaVA-1.5)
        self.proj_out = nn.Linear(out_dim, out_dim)
        self.label_head = nn.Linear(cfg.d_model, cfg.label_classes) if cfg.label_classes else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        std = self.cfg.init_std
        for lin in (self.patch_embed, self.proj_in, self.proj_out, self.label_head):
            if lin is None:
                continue
            nn.init.normal_(lin.weight, std=std)
            nn.init.zeros_(lin.bias)
        nn.init.normal_(self.pos_embed, std=std)
        if self.stem is not None:  # PyTorch's default (Kaiming-uniform) init: the stem feeds GELUs, not a residual
            for conv in (self.stem[0], self.stem[2]):
                conv.reset_parameters()
        for block in self.layers:
            for lin in (block.self_attn.qkv_proj, block.mlp.gate_up_proj):
                nn.init.normal_(lin.weight, std=std)
            for lin in (block.self_attn.o_proj, block.mlp.down_proj):
                nn.init.normal_(lin.weight, std=std / math.sqrt(2 * self.cfg.depth))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.project(self.features(pixels))

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """Encoder features (N, tokens, d_model) -> the decoder's embeddings (N, tokens, out_dim)."""
        return self.proj_out(F.gelu(self.proj_in(features)))

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels (N, 3, S, S) -> the encoder's normed patch features (N, tokens, d_model)."""
        s, p = self.cfg.image_size, self.cfg.patch_size
        if pixels.dim() != 4 or tuple(pixels.shape[1:]) != (3, s, s):
            raise ValueError(f"images must be (N, 3, {s}, {s}), got {tuple(pixels.shape)}")
        x = (pixels.to(self.patch_embed.weight.dtype) - 0.5) / 0.5
        if self.stem is not None:
            x, p = self.stem(x), p // 2  # (N, C, S/2, S/2): the same patch grid, on features
        patches = F.unfold(x, kernel_size=p, stride=p).transpose(1, 2)  # (N, tokens, patch_dim)
        h = self.patch_embed(patches) + self.pos_embed
        for block in self.layers:
            h = block(h)
        return self.norm(h)


class ImageTextModel(Transformer):
    """The decoder plus an image encoder; images replace the embeddings at `<|image|>` positions."""

    def __init__(self, cfg: ModelConfig, vision: VisionConfig):
        super().__init__(cfg)
        self.vision_cfg = vision
        self.vision = VisionEncoder(vision, self.cfg.d_model)

    # The placeholder is read, never written: a sampled one would be a slot that no image fills.
    never_sampled = (IMAGE_TOKEN_ID,)

    def check_placeholders(self, n_slots: int, n_images: int) -> None:
        """ValueError unless `n_slots` <|image|> ids are exactly what `n_images` images fill."""
        per = self.vision_cfg.tokens_per_image
        if n_slots != n_images * per:
            raise ValueError(f"the tokens hold {n_slots} <|image|> id(s) (token {IMAGE_TOKEN_ID}), but "
                             f"{n_images} image(s) need {n_images * per} ({per} each); the image token can only "
                             "stand for an image given with the prompt")

    def check_prompt(self, ids: list[int], n_images: int) -> None:
        """ValueError unless the prompt's <|image|> ids are exactly what its `n_images` images fill."""
        self.check_placeholders(list(ids).count(IMAGE_TOKEN_ID), n_images)

    def param_groups(self, weight_decay: float) -> list[dict]:
        """The decoder's groups plus the encoder's (matrices decayed, biases/gains/positions not), both at
        `vision.lr_mult` times the base rate."""
        groups = super().param_groups(weight_decay)
        matrices = [p for n, p in self.vision.named_parameters() if p.dim() >= 2 and n != "pos_embed"]
        rest = [p for n, p in self.vision.named_parameters() if not (p.dim() >= 2 and n != "pos_embed")]
        return groups + [
            {"params": matrices, "weight_decay": weight_decay, "lr_mult": self.vision_cfg.lr_mult, "name": "vision"},
            {"params": rest, "weight_decay": 0.0, "lr_mult": self.vision_cfg.lr_mult, "name": "vision_gains"},
        ]

    def embed(self, input_ids: torch.Tensor, images: torch.Tensor | None,
              features: torch.Tensor | None = None) -> torch.Tensor:
        """Token embeddings with the projected image features written into the placeholder positions.

        The i-th image fills the i-th run of `tokens_per_image` placeholders, in reading order (row by row).
        `features` are the images' encoder features when the caller has them already.
        """
        embeds = self.embed_tokens(input_ids)
        slots = input_ids == IMAGE_TOKEN_ID
        n_images = 0 if images is None else images.shape[0]
        self.check_placeholders(int(slots.sum()), n_images)
        if n_images == 0:
            return embeds
        if features is None:
            features = self.vision.features(images)
        feats = self.vision.project(features).reshape(-1, embeds.shape[-1]).to(embeds.dtype)
        return embeds.masked_scatter(slots.unsqueeze(-1), feats)

    def forward(self, input_ids: torch.Tensor | None = None, targets: torch.Tensor | None = None, *,
                images: torch.Tensor | None = None, **kw) -> torch.Tensor:
        if input_ids is None or kw.get("inputs_embeds") is not None:
            return super().forward(input_ids, targets, **kw)
        if images is None and not bool((input_ids == IMAGE_TOKEN_ID).any()):
            return super().forward(input_ids, targets, **kw)  # text only: the Transformer, untouched
        return super().forward(None, targets, inputs_embeds=self.embed(input_ids, images), **kw)

    def losses(self, input_ids: torch.Tensor, targets: torch.Tensor, images: torch.Tensor,
               image_labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(answer loss, label loss): the language loss of `forward` and the label head's cross-entropy on
        `image_labels` (one class id per image), from one pass of the encoder."""
        if self.vision.label_head is None:
            raise ValueError("this model has no label head (vision.label_classes is 0)")
        features = self.vision.features(images)
        answer = super().forward(None, targets, inputs_embeds=self.embed(input_ids, images, features))
        label = F.cross_entropy(self.vision.label_head(features.mean(1)).float(), image_labels)
        return answer, label
