"""Sampling parity with transformers' logits warpers: the tokens a row can draw after temperature, top-k and top-p
are the ones `TemperatureLogitsWarper`, `TopKLogitsWarper` and `TopPLogitsWarper` (applied in that order) leave
finite, exact ties included."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from augury.model.generate import NonFiniteLogits, SamplingParams, _choose
from augury.model.sample import _sample_next
from augury.model.sampling import truncate

warpers = pytest.importorskip("transformers.generation.logits_process")


def transformers_kept(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> set:
    """The token ids transformers' generate(do_sample=True) leaves finite, its warpers in its order."""
    scores = logits[None].float()
    if temperature != 1.0:
        scores = warpers.TemperatureLogitsWarper(temperature)(None, scores)
    if top_k:
        scores = warpers.TopKLogitsWarper(top_k)(None, scores)
    if top_p < 1.0:
        scores = warpers.TopPLogitsWarper(top_p)(None, scores)
    return set(torch.isfinite(scores[0]).nonzero()[:, 0].tolist())


def drawn(logits: torch.Tensor, params: SamplingParams, draws: int = 300) -> set:
    """The token ids `_choose` picks for one row over many seeded draws."""
    row = SimpleNamespace(key=0, params=params, gen=torch.Generator().manual_seed(0))
    return {_choose(logits[None], [row])[0] for _ in range(draws)}


def test_top_p_reached_exactly_keeps_no_further_token():
    # probabilities 1/2, 1/4, 1/4 (exact in float32): the first token alone reaches top_p 0.5
    logits = torch.tensor([math.log(2), 0.0, 0.0])
    assert transformers_kept(logits, top_p=0.5) == {0}
    assert drawn(logits, SamplingParams(temperature=1.0, top_p=0.5)) == {0}
    # 1/2, 1/4, 1/8, 1/8: the first two reach 0.75
    logits = torch.tensor([math.log(4), math.log(2), 0.0, 0.0])
    assert transformers_kept(logits, top_p=0.75) == {0, 1}
    assert drawn(logits, SamplingParams(temperature=1.0, top_p=0.75)) == {0, 1}


# hand-built logits whose probabilities are exact in float32, so cumulative masses hit top_p exactly
TIES = [
    (torch.zeros(4), 0.5),                                        # four equal tokens: two reach 0.5
    (torch.zeros(8), 0.25),
    (torch.zeros(8), 0.75),
    (torch.tensor([math.log(2), 0.0, 0.0]), 0.5),                 # 1/2, 1/4, 1/4
    (torch.tensor([math.log(4), math.log(2), 0.0, 0.0]), 0.75),  # 1/2, 1/4, 1/8, 1/8
    (torch.tensor([math.log(4), math.log(2), 0.0, 0.0]), 0.875),
    (torch.tensor([0.0, math.log(4), 0.0, math.log(2)]), 0.5),   # not in order
    (torch.tensor([0.0, 0.0, -math.inf, 0.0, 0.0]), 0.5),        # a token already cut
]


@pytest.mark.parametrize("logits, top_p", TIES)
def test_top_p_keeps_the_tokens_transformers_keeps_at_exact_ties(logits, top_p):
    assert set(torch.isfinite(truncate(logits[None], [0], [top_p])[0]).nonzero()[:, 0].tolist()) == \
        transformers_kept(logits, top_p=top_p)
    assert drawn(logits, SamplingParams(temperature=1.0, top_p=top_p)) == transformers_kept(logits, top_p=top_p)


def test_the_plain_sampling_loop_cuts_top_p_as_the_engine():
    logits = torch.tensor([[math.log(2), 0.0, 0.0]])
    gen = torch.Generator().manual_seed(0)
    assert {int(_sample_next(logits, 1.0, 0.5, gen)[0]) for _ in range(300)} == {0}


def kept(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> set:
    scaled = logits[None].float() / temperature
    return set(torch.isfinite(truncate(scaled, [top_k], [top_p])[0]).nonzero()[:, 0].tolist())


@pytest.mark.parametrize("logits, top_k, top_p", [
    (torch.zeros(4), 2, 1.0),                                     # every token ties the 2nd: all kept
    (torch.tensor([1.0, 0.5, 0.5, 0.5, 0.0]), 2, 1.0),           # the 2nd ties the 3rd and 4th
    (torch.tensor([1.0, 0.5, 0.5, 0.0]), 3, 1.0),
    (torch.tensor([0.0, 0.0, 0.0, 0.0, -1.0]), 2, 0.5),          # top-k keeps the four tied, top-p two of them
    (torch.tensor([math.log(4), math.log(2), 0.0, 0.0]), 3, 0.75),
])
def test_top_k_keeps_every_token_tied_with_the_kth_as_transformers(logits, top_k, top_p):
    expected = transformers_kept(logits, top_k=top_k, top_p=top_p)
    assert kept(logits, top_k=top_k, top_p=top_p) == expected
    assert drawn(logits, SamplingParams(temperature=1.0, top_k=top_k, top_p=top_p)) == expected


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_nan_logits_are_an_error_not_a_token(temperature):
    # a forward pass that overflowed: no token means anything, and every one drawn would be the last id
    logits = torch.tensor([1.0, float("nan"), 0.5, 0.2])
    with pytest.raises(NonFiniteLogits, match="NaN"):
        drawn(logits, SamplingParams(temperature=temperature), draws=1)
    with pytest.raises(NonFiniteLogits):
        drawn(torch.full((4,), -math.inf), SamplingParams(temperature=temperature), draws=1)


def test_a_distribution_that_overflows_is_its_most_likely_token():
    # an infinite logit, or a temperature so small that the scaled logits overflow float32: all the mass is on the
    # most likely token (the limit of the distribution), not on the last id
    assert drawn(torch.tensor([1.0, math.inf, 0.5, 0.2]), SamplingParams(temperature=1.0, top_p=0.9)) == {1}
    assert drawn(torch.tensor([3.0, 1.0, 2.0]), SamplingParams(temperature=1e-39)) == {0}
    assert drawn(torch.tensor([3.0, 1.0, 2.0]), SamplingParams(temperature=1e-39, top_k=2)) == {0}
