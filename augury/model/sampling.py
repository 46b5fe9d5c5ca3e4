"""Which tokens a sampled row may draw: top-k and top-p cut the temperature-scaled logits as transformers' warpers do.

    from augury.model.sampling import truncate
    kept = truncate(logits / temperature, top_k=[50], top_p=[0.9])   # (R, V); cut tokens are -inf

One rule for every sampler augury has (the batched engine, the Hugging Face backend of `augury serve`, the eval
backends), written as `TopKLogitsWarper` and `TopPLogitsWarper` compute theirs (temperature first, then top-k, then
top-p over what top-k left), so a setting keeps the same tokens here as in `transformers`' `generate`, exact ties
included (tests/model/test_sampling.py). Top-k keeps the tokens whose logit is at least the k-th largest (every
token tied with the k-th, so a tie can keep more than k). Top-p keeps the smallest set of most likely tokens whose
mass reaches `top_p`: a token is cut when the tokens less likely than it, and itself, hold at most `1 - top_p`,
counted from the least likely up, so a prefix that reaches `top_p` exactly is the whole set.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def truncate(logits: torch.Tensor, top_k: Sequence[int], top_p: Sequence[float]) -> torch.Tensor:
    """`logits` (R, V) (after temperature) with the tokens each row's `top_k` (0: off) and `top_p` (1: off) cut set
    to -inf; a row with neither is returned unchanged. At least the most likely token stays."""
    vocab = logits.shape[-1]
    out = logits
    if any(top_k):
        # as TopKLogitsWarper: cut what is below the k-th largest logit, so tokens tied with it all stay (more than
        # k); a k over the vocabulary keeps every token
        ks = [min(k, vocab) if k > 0 else 1 for k in top_k]
        kth = logits.topk(max(ks), dim=-1).values.gather(-1, torch.tensor(ks, device=logits.device)[:, None] - 1)
        on = torch.tensor([k > 0 for k in top_k], device=logits.device)
        out = out.masked_fill((logits < kth) & on[:, None], -math.inf)
    if any(p < 1.0 for p in top_p):
        # as TopPLogitsWarper: ascending order, cut while the cumulative mass is <= 1 - top_p (compared in float32,
        # as its Python-float threshold is), the most likely token always kept
        sorted_logits, sorted_ids = out.sort(dim=-1, descending=False)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        floor = torch.tensor([1 - p for p in top_p], dtype=cumulative.dtype, device=logits.device)
        on = torch.tensor([p < 1.0 for p in top_p], device=logits.device)
        cut = (cumulative <= floor[:, None]) & on[:, None]
        cut[:, -1] = False
        out = out.masked_fill(cut.scatter(-1, sorted_ids, cut), -math.inf)
    return out
