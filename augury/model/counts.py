"""Exact parameter counts and training FLOPs per token.

Conventions (documented in docs/model.md, tested against a closed form and torch's FlopCounterMode):

- `non_embedding` parameters: everything except the token embedding and (when untied) the output projection —
  Kaplan et al.'s N. `embedding`: the token embedding plus an untied output projection and its optional bias.
- Training FLOPs per token = 6 · N_matmul + 12 · depth · d_attn · T, where N_matmul counts every weight used in
  a matrix multiply per token (all projection matrices of the blocks plus the output projection; norm gains and
  the embedding lookup do no matmul), d_attn = n_heads · head_dim and T the sequence length. The first term is
  forward (2 FLOPs per multiply-add) + backward (twice the forward). The second is attention's QKᵀ and AV, counted
  densely over the full T×T score matrix as SDPA kernels compute it (PaLM's MFU convention; a kernel that skips
  the masked half does about half of it). Elementwise work (norms, SiLU, softmax, RoPE) is not counted.

    counts = param_counts(ModelConfig(vocab_size=2048, depth=2).resolved())   # counts.non_embedding == 402,048
    C = flops_per_token(cfg, seq_len=256) * tokens                              # a run's training compute

The trainer logs `flops` with these, and the forecast ladder plans with them (docs/forecast.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from augury.model.config import ModelConfig


@dataclass(frozen=True)
class ParamCounts:
    total: int
    embedding: int
    non_embedding: int
    matmul: int  # weights that take part in a matmul per token (non-embedding matrices + output projection)


def param_counts(cfg: ModelConfig) -> ParamCounts:
    c = cfg.resolved()
    d, L, V = c.d_model, c.depth, c.vocab_size
    attn = d * c.n_heads * c.head_dim * 2 + d * c.n_kv_heads * c.head_dim * 2  # q, o + k, v
    mlp = 3 * d * c.d_ff
    gains = 2 * d
    blocks = L * (attn + mlp + gains)
    final_norm = d
    embed = V * d
    head = (0 if c.tie_embeddings else V * d) + (V if c.output_bias else 0)  # output projection (+ its bias)
    non_embedding = blocks + final_norm
    matmul = L * (attn + mlp) + V * d
    return ParamCounts(total=embed + head + non_embedding, embedding=embed + head,
                       non_embedding=non_embedding, matmul=matmul)


def flops_per_token(cfg: ModelConfig, seq_len: int) -> int:
    """Training (forward + backward) FLOPs per token at sequence length `seq_len` (see module docstring)."""
    c = cfg.resolved()
    return 6 * param_counts(c).matmul + 12 * c.depth * c.n_heads * c.head_dim * seq_len


def forward_flops_per_token(cfg: ModelConfig, seq_len: int) -> int:
    """Forward-only FLOPs per token (one third of training FLOPs): for inference and evaluation costs."""
    return flops_per_token(cfg, seq_len) // 3


# ---- image input (augury.model.vision) -------------------------------------------------------------------------
# An image is `tokens_per_image` decoder positions (counted in the decoder's sequence length, and so in its
# FLOPs per token like any other position) plus the encoder's own work over its patches, counted with the same
# conventions: 6 FLOPs per matmul weight per patch, and dense attention over the image's patches (12 · depth ·
# d_model · tokens per patch, no causal mask). The patch embedding is the one exception: pixels need no gradient,
# so its backward pass is the weight gradient only (4 FLOPs per weight per patch, not 6). An optional
# convolutional stem is counted per output pixel (vision_stem_flops).


@dataclass(frozen=True)
class VisionCounts:
    total: int  # every encoder and projector parameter (weights, biases, gains, position embedding)
    matmul: int  # weights used in a matmul per patch: patch embedding, blocks, projector


def vision_param_counts(vision, out_dim: int) -> VisionCounts:
    """Parameters of `VisionEncoder(vision, out_dim)` (encoder + projector into a decoder of width out_dim)."""
    b = vision.block_config()
    d, L, n, c = b.d_model, b.depth, vision.tokens_per_image, vision.stem_channels
    block = 4 * d * d + 3 * d * b.d_ff  # q, k, v, o (no grouped kv in the encoder) + SwiGLU
    matmul = vision.patch_dim * d + L * block + d * out_dim + out_dim * out_dim
    biases = d + out_dim + out_dim  # patch embedding and the projector's two layers
    gains = L * 2 * d + d
    stem = (3 * 9 * c + c) + (c * 9 * c + c) if c else 0  # two 3x3 convolutions with biases
    labels = (d + 1) * vision.label_classes  # the optional label head (a training aid, once per image)
    return VisionCounts(total=matmul + biases + gains + n * d + stem + labels, matmul=matmul)


def vision_stem_flops(vision) -> int:
    """Training FLOPs of the convolutional stem for one image: 2 per multiply-add forward; backward, the weight
    gradient of both convolutions and the input gradient of the second (pixels need none)."""
    c, s = vision.stem_channels, vision.image_size
    if not c:
        return 0
    first = 2 * s * s * c * 3 * 9  # 3x3 over every pixel, stride 1
    second = 2 * (s // 2) ** 2 * c * c * 9  # 3x3 with stride 2
    return 2 * first + 3 * second


def vision_label_flops(vision) -> int:
    """Training FLOPs of the optional label head for one image (its matmul; the average over patches aside)."""
    return 6 * vision.d_model * vision.label_classes


def vision_flops_per_image(vision, out_dim: int) -> int:
    """Training (forward + backward) FLOPs of the encoder and projector for one image (the label head's, a
    training aid, are `vision_label_flops`)."""
    n = vision.tokens_per_image
    b = vision.block_config()
    # without a stem the patch embedding reads pixels, so its backward is the weight gradient only
    patch_embed = 0 if vision.stem_channels else vision.patch_dim * b.d_model
    return (n * (6 * vision_param_counts(vision, out_dim).matmul - 2 * patch_embed + 12 * b.depth * b.d_model * n)
            + vision_stem_flops(vision))
