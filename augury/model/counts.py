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
