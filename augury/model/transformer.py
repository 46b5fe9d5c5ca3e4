"""The augury decoder-only Transformer (Llama layout: pre-norm RMSNorm, rotary embeddings, SwiGLU, GQA).

Parameter names follow Hugging Face's Llama (`embed_tokens`, `layers.{i}.self_attn.o_proj`, ...); q/k/v and
gate/up are stored fused (`qkv_proj`, `gate_up_proj`: fewer, larger matmuls) and split on export. Attention runs
through `F.scaled_dot_product_attention` (in fp32 on CPU, see `CPU_ATTENTION_FP32`). The forward pass accepts
`inputs_embeds` in place of the token embeddings (how `augury.model.vision.ImageTextModel` feeds images in, at
their placeholder positions) and `prefix_embeds` placed in front of the text embeddings.

    model = Transformer(ModelConfig(depth=2, vocab_size=4096))
    loss = model(x, targets=y)                 # training
    logits = model(x)                          # (B, T, vocab)
    cache = model.new_kv_cache(batch_size=1, max_len=256); model(prompt, kv_cache=cache)   # decoding
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from augury.model.config import ModelConfig, ModelConfigError


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # One fused kernel. The residual stream is fp32 (also under autocast), so the statistics are fp32, as
        # in HF Llama.
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


def rope_tables(head_dim: int, max_len: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables (max_len, head_dim) in the HF Llama convention: frequencies repeated as [f, f]."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    t = torch.arange(max_len, dtype=torch.int64).float()
    freqs = torch.outer(t, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: (B, n_heads, T, head_dim); cos/sin: (T, head_dim), or (B, 1, T, head_dim) for per-row positions."""
    return (x * cos + _rotate_half(x) * sin).to(x.dtype)


class KVCache:
    """Pre-allocated keys/values for incremental decoding: (depth, B, n_kv_heads, max_len, head_dim)."""

    def __init__(self, cfg: ModelConfig, batch_size: int, max_len: int, device, dtype):
        shape = (cfg.depth, batch_size, cfg.n_kv_heads, max_len, cfg.head_dim)
        # uninitialised: only [0, pos) is ever read, and zeroing a cache of many sampled rows costs as much as
        # the attention over it
        self.k = torch.empty(shape, device=device, dtype=dtype)
        self.v = torch.empty(shape, device=device, dtype=dtype)
        self.max_len = max_len
        self.pos = 0  # tokens already stored (advanced once per forward, after the last layer)
        # (B, max_len) True where a slot holds a real token: rows of different lengths share one cache by left
        # padding (augury.model.generate); None when every slot is real
        self.key_mask: torch.Tensor | None = None

    def keep_rows(self, rows: torch.Tensor) -> None:
        """Drop every batch row not in `rows` (finished generations leave the batch)."""
        self.k, self.v = self.k[:, rows], self.v[:, rows]
        if self.key_mask is not None:
            self.key_mask = self.key_mask[rows]

    def attention_mask(self, T: int, device) -> torch.Tensor | None:
        """(B, 1, T, pos+T) for T new queries when rows are padded: causal, padding hidden from real queries.

        A padding query sees only itself, so no row of the softmax is empty (an empty one would be NaN and
        poison later layers through the padding's keys and values).
        """
        if self.key_mask is None:
            return None
        S = self.pos + T
        q_slot = torch.arange(self.pos, S, device=device)[:, None]
        k_slot = torch.arange(S, device=device)[None, :]
        visible = (k_slot <= q_slot)[None, None] & self.key_mask[:, None, None, :S]
        return visible | (k_slot == q_slot)[None, None]

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v (B, n_kv, T, hd) at [pos, pos+T) and return all keys/values so far."""
        end = self.pos + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"KV cache full: {end} tokens > max_len {self.max_len}")
        self.k[layer, :, :, self.pos:end] = k
        self.v[layer, :, :, self.pos:end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]


# On CPU, under bf16 autocast, attention runs in fp32: the CPU's fused attention kernel is faster in fp32 than in
# bf16 at the small head dims of a CPU ladder (benchmarks/cpu_attention_dtype.py measures it), and fp32
# is the more accurate of the two. CUDA keeps bf16 (its flash kernel needs it). A switch so the benchmark can measure
# both.
CPU_ATTENTION_FP32 = True


def _attend(q, k, v, **kw) -> torch.Tensor:
    """F.scaled_dot_product_attention, in fp32 on CPU when the inputs are bf16 (CPU_ATTENTION_FP32)."""
    if CPU_ATTENTION_FP32 and q.device.type == "cpu" and q.dtype == torch.bfloat16:
        with torch.autocast("cpu", enabled=False):
            return F.scaled_dot_product_attention(q.float(), k.float(), v.float(), **kw).to(q.dtype)
    return F.scaled_dot_product_attention(q, k, v, **kw)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        # q, k and v in one matmul (fewer, larger kernels); export splits it into Llama's q/k/v_proj.
        self.split = (cfg.n_heads * cfg.head_dim, cfg.n_kv_heads * cfg.head_dim, cfg.n_kv_heads * cfg.head_dim)
        self.qkv_proj = nn.Linear(cfg.d_model, sum(self.split), bias=False)
        self.o_proj = nn.Linear(cfg.n_heads * cfg.head_dim, cfg.d_model, bias=False)

    def forward(self, x, cos, sin, cache: KVCache | None, layer: int) -> torch.Tensor:
        B, T, _ = x.shape
        q, k, v = self.qkv_proj(x).split(self.split, dim=-1)
        q = q.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, nh, T, hd)
        k = k.view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, nkv, T, hd)
        v = v.view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        past, padded = 0, None
        if cache is not None:
            past = cache.pos
            padded = cache.attention_mask(T, x.device)
            k, v = cache.update(layer, k, v)  # (B, nkv, past+T, hd)
        gqa = self.n_kv_heads != self.n_heads
        if padded is not None:
            y = _attend(q, k, v, attn_mask=padded, enable_gqa=gqa)
        elif past == 0:
            y = _attend(q, k, v, is_causal=True, enable_gqa=gqa)
        elif T == 1:
            y = _attend(q, k, v, enable_gqa=gqa)  # one new token sees everything
        else:
            # A chunk after a prefix: query i (absolute past+i) sees keys 0..past+i.
            mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(diagonal=past)
            y = _attend(q, k, v, attn_mask=mask, enable_gqa=gqa)
        y = y.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim)  # (B, T, nh*hd)
        return self.o_proj(y)


class MLP(nn.Module):
    """SwiGLU: down(silu(gate(x)) * up(x)), gate and up computed in one matmul (split again on export)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.gate_up_proj = nn.Linear(cfg.d_model, 2 * cfg.d_ff, bias=False)
        self.down_proj = nn.Linear(cfg.d_ff, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
        return self.down_proj(F.silu(gate) * up)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin, cache, layer):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, cache, layer)
        return x + self.mlp(self.post_attention_layernorm(x))


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        cfg = cfg.resolved()
        if cfg.zero_init_output and cfg.tie_embeddings:
            raise ModelConfigError("zero_init_output needs untied embeddings (a zero embedding cannot learn)")
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        # Opt-in logit bias, added after the µP readout multiplier (set by init_output_bias).
        self.output_bias = nn.Parameter(torch.zeros(cfg.vocab_size)) if cfg.output_bias else None
        # µP readout multiplier: logits shrink as 1/width_mult so their update size stays width-independent.
        self.output_mult = 1.0 / cfg.width_mult
        cos, sin = rope_tables(cfg.head_dim, cfg.max_seq_len, cfg.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.reset_parameters()

    # ---- initialisation and optimizer groups -------------------------------------------------------------
    def reset_parameters(self) -> None:
        """SP: N(0, init_std) everywhere, residual outputs shrunk by 1/sqrt(2·depth) (GPT-2).
        µP: hidden matrices additionally scaled by 1/sqrt(width_mult) (variance ∝ 1/fan_in)."""
        cfg = self.cfg
        hidden_std = cfg.init_std / math.sqrt(cfg.width_mult)
        nn.init.normal_(self.embed_tokens.weight, std=cfg.init_std)
        for block in self.layers:
            for lin in (block.self_attn.qkv_proj, block.mlp.gate_up_proj):
                nn.init.normal_(lin.weight, std=hidden_std)
            for lin in (block.self_attn.o_proj, block.mlp.down_proj):
                nn.init.normal_(lin.weight, std=hidden_std / math.sqrt(2 * cfg.depth))
            block.input_layernorm.weight.data.fill_(1.0)
            block.post_attention_layernorm.weight.data.fill_(1.0)
        self.norm.weight.data.fill_(1.0)
        if not cfg.tie_embeddings:
            if cfg.zero_init_output:
                nn.init.zeros_(self.lm_head.weight)
            else:
                nn.init.normal_(self.lm_head.weight, std=cfg.init_std)
        if self.output_bias is not None:
            nn.init.zeros_(self.output_bias)

    @torch.no_grad()
    def init_output_bias(self, token_counts) -> None:
        """Set the output bias to log unigram frequencies (add-0.5 smoothed) from per-token-id counts."""
        if self.output_bias is None:
            raise ModelConfigError("init_output_bias needs ModelConfig(output_bias=True)")
        counts = torch.as_tensor(token_counts, dtype=torch.float64)
        if counts.numel() != self.cfg.vocab_size:
            raise ValueError(f"token_counts has {counts.numel()} entries, vocab_size is {self.cfg.vocab_size}")
        probs = (counts + 0.5) / (counts + 0.5).sum()
        self.output_bias.copy_(probs.log().to(self.output_bias.dtype))

    def param_groups(self, weight_decay: float) -> list[dict]:
        """AdamW groups with an `lr_mult` each (the schedule sets lr = base_lr × schedule × lr_mult).

        Hidden matrices get lr_mult = 1/width_mult under µP (Adam rule for matrix-like weights); embeddings,
        the readout and norm gains keep lr_mult = 1. Weight decay applies to matrices, not to embeddings/gains.
        """
        hidden, gains = [], []
        for block in self.layers:
            for name, p in block.named_parameters():
                (gains if name.endswith("layernorm.weight") else hidden).append(p)
        gains.append(self.norm.weight)
        if self.output_bias is not None:
            gains.append(self.output_bias)  # a bias, like a gain: no weight decay, lr_mult 1
        groups = [
            {"params": hidden, "weight_decay": weight_decay, "lr_mult": 1.0 / self.cfg.width_mult, "name": "hidden"},
            {"params": [self.embed_tokens.weight], "weight_decay": 0.0, "lr_mult": 1.0, "name": "embed"},
            {"params": gains, "weight_decay": 0.0, "lr_mult": 1.0, "name": "gains"},
        ]
        if not self.cfg.tie_embeddings:
            groups.append({"params": [self.lm_head.weight], "weight_decay": weight_decay, "lr_mult": 1.0,
                           "name": "output"})
        return groups

    # ---- forward ------------------------------------------------------------------------------------------
    def output_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits from final hidden states (what `forward(..., return_hidden=True)` returns)."""
        logits = self.lm_head(hidden)
        if self.output_mult != 1.0:
            logits = logits * self.output_mult
        if self.output_bias is not None:
            logits = logits + self.output_bias.to(logits.dtype)
        return logits

    def new_kv_cache(self, batch_size: int, max_len: int | None = None, dtype=None) -> KVCache:
        max_len = min(max_len or self.cfg.max_seq_len, self.cfg.max_seq_len)
        dtype = dtype or self.embed_tokens.weight.dtype
        return KVCache(self.cfg, batch_size, max_len, self.embed_tokens.weight.device, dtype)

    def forward(self, input_ids: torch.Tensor | None = None, targets: torch.Tensor | None = None, *,
                prefix_embeds: torch.Tensor | None = None, kv_cache: KVCache | None = None,
                reduction: str = "mean", logits_to_keep: int | None = None,
                inputs_embeds: torch.Tensor | None = None, positions: torch.Tensor | None = None,
                return_hidden: bool = False) -> torch.Tensor:
        """input_ids (B, T) -> logits (B, T, vocab), or the cross-entropy loss when `targets` (B, T) is given.

        prefix_embeds (B, P, d_model), e.g. from an image encoder, are placed before the text; logits and loss
        cover the text positions only. `inputs_embeds` (B, T, d_model) replaces the token embeddings of input_ids
        (an image-text model writes image features into its placeholder positions). Targets equal to -1 are ignored.
        `reduction="none"` returns (B, T) losses.
        `logits_to_keep=k` computes the output projection for the last k positions only (scoring, decoding).
        `positions` (B, T) gives each row its own rotary positions (left-padded rows in one batch).
        `return_hidden=True` returns the final normed hidden states (B, T, d_model) instead of logits (a reward or
        value head reads them).
        """
        parts = []
        if prefix_embeds is not None:
            parts.append(prefix_embeds)
        if inputs_embeds is not None:
            parts.append(inputs_embeds)
        elif input_ids is not None:
            parts.append(self.embed_tokens(input_ids))
        if not parts:
            raise ValueError("forward needs input_ids, inputs_embeds or prefix_embeds")
        x = parts[0] if len(parts) == 1 else torch.cat([parts[0].to(parts[1].dtype), parts[1]], dim=1)
        T = x.shape[1]
        start = kv_cache.pos if kv_cache is not None else 0
        if positions is None and start + T > self.cfg.max_seq_len:
            raise ValueError(f"sequence of {start + T} tokens exceeds max_seq_len={self.cfg.max_seq_len}")
        if positions is not None:
            if int(positions.max()) >= self.cfg.max_seq_len:
                raise ValueError(f"position {int(positions.max())} exceeds max_seq_len={self.cfg.max_seq_len}")
            cos, sin = self.rope_cos[positions].unsqueeze(1), self.rope_sin[positions].unsqueeze(1)
        else:
            cos, sin = self.rope_cos[start:start + T], self.rope_sin[start:start + T]
        for i, block in enumerate(self.layers):
            x = block(x, cos, sin, kv_cache, i)
        if kv_cache is not None:
            kv_cache.pos += T
        if len(parts) == 2:
            x = x[:, prefix_embeds.shape[1]:]
        if logits_to_keep and targets is None:
            x = x[:, -logits_to_keep:]
        x = self.norm(x)
        if return_hidden:
            return x
        logits = self.output_logits(x)
        if targets is None:
            return logits
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                               ignore_index=-1, reduction=reduction)
        return loss.view(targets.shape) if reduction == "none" else loss
