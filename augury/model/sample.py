"""Text generation with a KV cache: temperature, nucleus (top-p) sampling, token budget, stop strings.

    texts = generate(model, tokenizer, "def fib(n):", max_tokens=64, temperature=0.8, top_p=0.95, stop=["\\ndef "])

`generate` runs the samples as rows of the batched engine (`augury.model.generate`); `generate_ids` is the plain
one-prompt loop that engine is tested against. Generation of a row ends at the end-of-text token, at the
first stop string (which is cut from the returned text), or after `max_tokens`; `temperature=0` is greedy. Both keep
the prompt's last `max_seq_len - max_tokens` tokens (`max_tokens` capped at `max_seq_len - 1`), so a long prompt
still leaves room for `max_tokens`.
"""

from __future__ import annotations

import torch

from augury.model.sampling import truncate
from augury.model.transformer import Transformer

EOT = "<|endoftext|>"


def _sample_next(logits: torch.Tensor, temperature: float, top_p: float, gen: torch.Generator | None) -> torch.Tensor:
    """logits (B, V) -> token ids (B,)."""
    if temperature <= 0:
        return logits.argmax(-1)
    scaled = logits.float() / temperature
    if top_p < 1.0:  # the smallest prefix whose mass reaches top_p (the engine's rule, transformers')
        scaled = truncate(scaled, [0] * len(scaled), [top_p] * len(scaled))
    return torch.multinomial(torch.softmax(scaled, dim=-1), 1, generator=gen).squeeze(-1)


def generate_ids(model: Transformer, prompt_ids: list[int], max_tokens: int = 128, temperature: float = 0.8,
                 top_p: float = 0.95, num_samples: int = 1, seed: int | None = None, eot_id: int | None = None,
                 should_stop=None) -> list[list[int]]:
    """Continue `prompt_ids` `num_samples` times; returns the generated ids of each sample (prompt excluded).

    `should_stop(row, ids)` may end a row early (used for stop strings).
    """
    device = model.embed_tokens.weight.device
    limit = model.cfg.max_seq_len
    max_tokens = max(0, min(max_tokens, limit - 1))
    prompt_ids = list(prompt_ids)[-(limit - max_tokens):] if prompt_ids else []
    if not prompt_ids:
        prompt_ids = [eot_id if eot_id is not None else 0]
    gen = torch.Generator(device=device).manual_seed(seed) if seed is not None else None
    cache = model.new_kv_cache(num_samples, len(prompt_ids) + max_tokens)
    x = torch.tensor([prompt_ids] * num_samples, dtype=torch.long, device=device)
    logits = model(x, kv_cache=cache)[:, -1]
    out: list[list[int]] = [[] for _ in range(num_samples)]
    done = [False] * num_samples
    for _ in range(max_tokens):
        nxt = _sample_next(logits, temperature, top_p, gen)
        for row, tok in enumerate(nxt.tolist()):
            if done[row]:
                continue
            if eot_id is not None and tok == eot_id:
                done[row] = True
                continue
            out[row].append(tok)
            if should_stop is not None and should_stop(row, out[row]):
                done[row] = True
        if all(done):
            break
        logits = model(nxt.unsqueeze(1), kv_cache=cache)[:, -1]
    return out


def generate(model: Transformer, tokenizer, prompt: str, max_tokens: int = 128, temperature: float = 0.8,
             top_p: float = 0.95, stop: list[str] | None = None, num_samples: int = 1,
             seed: int | None = None) -> list[str]:
    """Sample `num_samples` continuations of `prompt` (text in, text out; stop strings are cut off).

    The samples run as rows of the batched engine (`augury.model.generate`); sample i is seeded with `seed + i`.
    """
    from augury.model.generate import SamplingParams
    from augury.model.generate import generate as generate_batch

    eot_id = tokenizer.token_to_id(EOT)
    ids = tokenizer.encode(prompt).ids if prompt else []
    # room for max_tokens, as generate_ids keeps (the engine alone would keep all but one slot of a long prompt)
    limit = model.cfg.max_seq_len
    ids = ids[-(limit - max(0, min(max_tokens, limit - 1))):]
    params = [SamplingParams(max_tokens=max_tokens, temperature=temperature, top_p=top_p,
                             stop=[s for s in (stop or []) if s],
                             stop_token_ids=[eot_id] if eot_id is not None else [],
                             seed=None if seed is None else seed + i) for i in range(num_samples)]
    rows = generate_batch(model, tokenizer, [ids] * num_samples, params, fallback_id=eot_id or 0)
    return [r.text for r in rows]
