"""Model configuration and the size dial.

One number, `depth`, sets a model's size: width = depth × `aspect_ratio`, heads of `head_dim` channels, a SwiGLU
hidden size of ~8/3 × width. Any derived field can be overridden explicitly. `resolved()` fills the derived
fields and validates the shape, so every other module reads concrete numbers.

    cfg = ModelConfig(depth=4).resolved()      # d_model=256, n_heads=4, d_ff=704
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal


class ModelConfigError(ValueError):
    """A model shape that cannot be built (reported before any work starts)."""


@dataclass
class ModelConfig:
    """Shape and parametrization of a decoder-only Transformer (Llama-style).

    Args:
        vocab_size: number of token ids (taken from the tokenizer when training).
        depth: number of Transformer blocks; the size dial from which the other shape fields are derived.
        aspect_ratio: width per layer used by the dial: d_model = depth * aspect_ratio (rounded to head_dim).
        d_model: residual-stream width; None derives it from depth.
        head_dim: channels per attention head when n_heads is derived.
        n_heads: attention heads; None = d_model // head_dim (at least 1).
        n_kv_heads: key/value heads for grouped-query attention; None = n_heads (plain multi-head).
        d_ff: SwiGLU hidden width; None = 8/3 * d_model rounded up to ffn_multiple_of.
        ffn_multiple_of: rounding for the derived d_ff.
        max_seq_len: longest sequence the rotary tables are built for (generation may not exceed it).
        rope_theta: rotary embedding base.
        norm_eps: RMSNorm epsilon.
        tie_embeddings: share the input embedding and the output projection.
        parametrization: "sp" (standard: fixed init std, one learning rate) or "mup" (maximal update
            parametrization: the best learning rate at base width holds at larger widths).
        mup_base_width: the width at which µP and SP coincide (the width a learning rate was tuned at).
        init_std: initialisation std of embeddings and (at base width, under µP) hidden weights.
        zero_init_output: initialise the output projection at zero, so every run starts from the same uniform
            prediction (cuts seed-to-seed noise between small ladder runs).
        output_bias: add a learned bias to the logits, which the trainer initialises to the log unigram
            frequencies of the training split, so every run starts at the unigram loss instead of having to
            learn it (with zero_init_output: small ladder runs skip the unigram phase). Opt-in: Llama has no
            output bias, so a model with one cannot be exported to the Hugging Face Llama layout.
    """

    vocab_size: int = 4096
    depth: int = 4
    aspect_ratio: int = 64
    d_model: int | None = None
    head_dim: int = 64
    n_heads: int | None = None
    n_kv_heads: int | None = None
    d_ff: int | None = None
    ffn_multiple_of: int = 32
    max_seq_len: int = 1024
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = False
    parametrization: Literal["sp", "mup"] = "sp"
    mup_base_width: int = 256
    init_std: float = 0.02
    zero_init_output: bool = False
    output_bias: bool = False

    def resolved(self) -> ModelConfig:
        """A copy with every derived field filled in, validated; raises ModelConfigError on a bad shape."""
        c = dataclasses.replace(self)
        if c.depth < 1:
            raise ModelConfigError(f"depth must be >= 1, got {c.depth}")
        if c.vocab_size < 2:
            raise ModelConfigError(f"vocab_size must be >= 2, got {c.vocab_size}")
        if c.d_model is None:
            width = c.depth * c.aspect_ratio
            c.d_model = max(c.head_dim, round(width / c.head_dim) * c.head_dim) if width >= c.head_dim else width
        if c.n_heads is None:
            c.n_heads = max(1, c.d_model // c.head_dim)
        if c.n_heads < 1 or c.d_model % c.n_heads != 0:
            raise ModelConfigError(
                f"d_model={c.d_model} is not divisible by n_heads={c.n_heads}: choose a width that is a multiple "
                f"of the head count")
        hd = c.d_model // c.n_heads
        if hd % 2 != 0:
            raise ModelConfigError(f"head dimension d_model/n_heads={hd} must be even for rotary embeddings")
        c.head_dim = hd
        if c.n_kv_heads is None:
            c.n_kv_heads = c.n_heads
        if c.n_kv_heads < 1 or c.n_heads % c.n_kv_heads != 0:
            raise ModelConfigError(f"n_heads={c.n_heads} must be a multiple of n_kv_heads={c.n_kv_heads}")
        if c.d_ff is None:
            raw = int(8 * c.d_model / 3)
            c.d_ff = -(-raw // c.ffn_multiple_of) * c.ffn_multiple_of
        if c.parametrization not in ("sp", "mup"):
            raise ModelConfigError(f"parametrization must be 'sp' or 'mup', got {c.parametrization!r}")
        if c.mup_base_width < 1:
            raise ModelConfigError("mup_base_width must be >= 1")
        return c

    @property
    def width_mult(self) -> float:
        """d_model / mup_base_width under µP (1.0 under SP): the factor µP scales learning rates and inits by."""
        if self.parametrization != "mup":
            return 1.0
        return self.resolved().d_model / self.mup_base_width
