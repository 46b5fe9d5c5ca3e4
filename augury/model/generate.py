"""Batched generation: many prompts of different lengths at once, each with its own sampling settings.

    from augury.model.generate import SamplingParams, generate
    outs = generate(model, tokenizer, [ids_a, ids_b], SamplingParams(max_tokens=64, temperature=0.7, stop=["\\n"]))
    outs[0].text, outs[0].token_ids, outs[0].logprobs, outs[0].finish_reason   # "stop" or "length"

Rows are left-padded into one key/value cache; each row has its own rotary positions (a padded row computes
exactly what it would alone) and a key mask hides the padding. Rows leave the batch as they finish, so the
batch shrinks instead of carrying finished rows. Each row samples with its own generator, seeded from its
`seed`, so a seeded row draws the same tokens whatever else is in the batch. `logprobs` are the log-probabilities
of the chosen tokens under the model's own distribution (before temperature, top-k and top-p), what an RL
objective or a likelihood evaluation needs. Stop strings are checked incrementally (`augury.model.textstream`).
Greedy decoding gives the same tokens as generating each prompt alone (tests/model/test_generate.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from augury.model.textstream import TextStream


@dataclass
class SamplingParams:
    """How one row is sampled.

    Args:
        max_tokens: most new tokens (fewer when the prompt leaves less room in the model's context).
        temperature: softmax temperature; 0 is greedy.
        top_p: nucleus mass (1.0 disables it).
        top_k: keep the k most likely tokens (0 disables it).
        stop: strings that end the row; they are cut from its text (the tokens stay in token_ids).
        stop_token_ids: token ids that end the row (not included in its output), e.g. end-of-turn.
        seed: the row's sampling seed (None: drawn from torch's global generator).
    """

    max_tokens: int = 128
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    stop: list[str] = field(default_factory=list)
    stop_token_ids: list[int] = field(default_factory=list)
    seed: int | None = None

    def validate(self) -> None:
        if self.max_tokens < 0:
            raise ValueError("max_tokens must be >= 0")
        if self.temperature < 0:
            raise ValueError("temperature must be >= 0")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")
        if self.top_k < 0:
            raise ValueError("top_k must be >= 0")


@dataclass
class Generation:
    """One row's output."""

    token_ids: list[int]  # generated ids (a stop token excluded)
    text: str  # decoded text, cut before the first stop string
    logprobs: list[float]  # log-probability of each generated id under the model
    finish_reason: str  # "stop" (stop string or stop token) or "length"
    prompt_tokens: int = 0


def _choose(logits: torch.Tensor, p: SamplingParams, gen: torch.Generator | None) -> int:
    """One token id from a row's logits (V,)."""
    if p.temperature <= 0:
        return int(logits.argmax())
    scores = logits.float() / p.temperature
    if p.top_k and p.top_k < scores.numel():
        kth = scores.topk(p.top_k).values[-1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    if p.top_p < 1.0:
        sorted_p, order = probs.sort(descending=True)
        drop = sorted_p.cumsum(-1) - sorted_p > p.top_p  # keep the smallest prefix reaching top_p
        sorted_p = sorted_p.masked_fill(drop, 0.0)
        return int(order[torch.multinomial(sorted_p / sorted_p.sum(), 1, generator=gen)])
    return int(torch.multinomial(probs, 1, generator=gen))


@torch.no_grad()
def generate(model, tokenizer, prompts: list[list[int]], params: SamplingParams | list[SamplingParams],
             fallback_id: int = 0) -> list[Generation]:
    """Continue every prompt (token ids) at once; results in the input order.

    `tokenizer` needs `decode(ids)` (a `tokenizers.Tokenizer` or any object with it). An empty prompt starts
    from `fallback_id` (augury's end-of-text id is 0).
    """
    if not prompts:
        return []
    settings = params if isinstance(params, list) else [params] * len(prompts)
    if len(settings) != len(prompts):
        raise ValueError(f"{len(settings)} sampling settings for {len(prompts)} prompts")
    for s in settings:
        s.validate()
    device = model.embed_tokens.weight.device
    limit = model.cfg.max_seq_len
    rows = [list(p)[-(limit - 1):] if p else [fallback_id] for p in prompts]
    budgets = [max(0, min(s.max_tokens, limit - len(r))) for s, r in zip(settings, rows)]
    width = max(len(r) for r in rows)
    pads = [width - len(r) for r in rows]
    ids = torch.tensor([[fallback_id] * pad + r for pad, r in zip(pads, rows)], device=device)
    slot = torch.arange(width, device=device)
    pad_t = torch.tensor(pads, device=device)
    positions = (slot[None, :] - pad_t[:, None]).clamp(min=0)
    cache = model.new_kv_cache(len(rows), width + max(budgets))
    if max(pads) > 0:  # without padding every slot is real: the plain causal path is faster
        cache.key_mask = torch.zeros(len(rows), cache.max_len, dtype=torch.bool, device=device)
        cache.key_mask[:, :width] = slot[None, :] >= pad_t[:, None]
    logits = model(ids, kv_cache=cache, positions=positions, logits_to_keep=1)[:, -1]

    gens = [torch.Generator(device=device).manual_seed(s.seed) if s.seed is not None else None for s in settings]
    streams = [TextStream(tokenizer.decode, s.stop) for s in settings]
    out_ids: list[list[int]] = [[] for _ in rows]
    out_lp: list[list[float]] = [[] for _ in rows]
    finish = ["length"] * len(rows)
    active = [i for i in range(len(rows)) if budgets[i] > 0]  # rows still in the batch, in cache order
    if len(active) < len(rows):
        cache.keep_rows(torch.tensor(active, dtype=torch.long, device=device))
        logits = logits[active]
    next_pos = torch.tensor([len(r) for r in rows], device=device)
    while active:
        logp = torch.log_softmax(logits.float(), dim=-1)
        chosen, keep = [], []
        for j, i in enumerate(active):
            tok = _choose(logits[j], settings[i], gens[i])
            if tok in settings[i].stop_token_ids:
                finish[i] = "stop"
                continue
            out_ids[i].append(tok)
            out_lp[i].append(float(logp[j, tok]))
            streams[i].push(tok)
            if streams[i].stopped:
                finish[i] = "stop"
                continue
            if len(out_ids[i]) >= budgets[i]:
                continue
            chosen.append(tok)
            keep.append(j)
        if not keep:
            break
        if len(keep) < len(active):
            rows_kept = torch.tensor(keep, dtype=torch.long, device=device)
            cache.keep_rows(rows_kept)
            active = [active[j] for j in keep]
        if cache.key_mask is not None:
            cache.key_mask[:, cache.pos] = True
        step_ids = torch.tensor(chosen, device=device)[:, None]
        made = torch.tensor([len(out_ids[i]) - 1 for i in active], device=device)
        step_pos = (next_pos[active] + made)[:, None]
        logits = model(step_ids, kv_cache=cache, positions=step_pos)[:, -1]
    results = []
    for i in range(len(rows)):
        streams[i].finish()
        results.append(Generation(out_ids[i], streams[i].text, out_lp[i], finish[i], len(rows[i])))
    return results
