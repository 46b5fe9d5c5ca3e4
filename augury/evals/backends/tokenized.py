"""`TokenizedLM`: the three lm-evaluation-harness requests for any local model with a tokenizer.

A backend subclasses it and gives a tokenizer and a `forward(ids, past)` hook (augury runs, Hugging Face folders).
Multiple-choice requests are scored with prefix reuse: requests whose token inputs share a long prefix (the few-shot
examples of one subject, the question shared by its four choices) compute that prefix's key/value cache once and
only run the differing suffixes, batched by length. The result equals scoring each request in full (tested).
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Sequence
from typing import Any

import torch

from augury.evals.lm import LM, GenRequest, cut_at_stop, split_context
from augury.model.sampling import truncate


def _lcp(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


@dataclasses.dataclass
class _Scored:
    inp: tuple[int, ...]  # model input tokens (context + continuation, minus the last token)
    targets: list[int]  # continuation tokens: the last len(targets) positions of `inp`'s logits predict them


class TokenizedLM(LM):
    """Shared logic for local models: tokenization semantics, prefix-reuse scoring, windows, decoding.

    A subclass provides the tokenizer and one forward hook; see `HFCausalLM` for a complete example.
    """

    max_length: int = 2048  # context length in tokens
    batch_size: int = 16  # suffixes per forward pass
    min_shared_prefix: int = 16  # shorter shared prefixes are not worth a cache copy
    prefix_keep_ratio: float = 0.75  # a group keeps growing while its shared prefix stays >= this share
    device: torch.device = torch.device("cpu")

    # ---- what a subclass provides --------------------------------------------------------------------------
    @abc.abstractmethod
    def tok_encode(self, text: str, special_tokens: bool | None = None) -> list[int]:
        """Token ids of `text`; special_tokens None means the tokenizer's default (a BOS it adds, if any)."""

    def prompt_encode(self, text: str) -> list[int]:
        """Token ids of a generation prompt; by default those of `tok_encode` with its default special tokens."""
        return self.tok_encode(text)

    @abc.abstractmethod
    def tok_decode(self, ids: Sequence[int]) -> str: ...

    @property
    @abc.abstractmethod
    def eot_token_id(self) -> int:
        """End-of-text id: generation stops there."""

    @property
    def stop_token_ids(self) -> set[int]:
        """Ids that end a generation (not part of its text): end-of-text by default."""
        return {self.eot_token_id}

    @property
    def prefix_token_id(self) -> int:
        """What an empty context and the first rolling window are conditioned on."""
        return self.eot_token_id

    @abc.abstractmethod
    def forward(self, ids: torch.Tensor, past: Any = None,
                logits_to_keep: int | None = None) -> tuple[torch.Tensor, Any]:
        """Logits [B, T', V] for `ids` [B, T] after the key/value cache `past` of a shared prefix; new cache.

        T' = T, or the last `logits_to_keep` positions only when that is given.
        """

    @abc.abstractmethod
    def repeat_past(self, past: Any, n: int) -> Any:
        """A copy of a batch-1 cache repeated `n` times along the batch (the original stays untouched)."""

    # ---- loglikelihood --------------------------------------------------------------------------------------
    def _encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        context, continuation = split_context(context, continuation)
        if not context:
            # lm-eval: the continuation alone, without special tokens, after the prefix token; a continuation
            # that itself starts with that token is conditioned on it instead.
            cont = self.tok_encode(continuation, special_tokens=False)
            if cont and cont[0] == self.prefix_token_id:
                return cont[:1], cont[1:]
            return [self.prefix_token_id], cont
        whole = self.tok_encode(context + continuation)
        ctx = self.tok_encode(context)
        return ctx, whole[len(ctx):]

    def loglikelihood(self, requests):
        pairs = [self._encode_pair(c, x) for c, x in requests]
        return self.score_tokens(pairs)

    def score_tokens(self, pairs: Sequence[tuple[list[int], list[int]]]) -> list[tuple[float, bool]]:
        """(logprob, is_greedy) of each continuation token list given its context token list."""
        items: list[_Scored] = []
        for ctx, cont in pairs:
            if not cont:
                raise ValueError("an empty continuation cannot be scored")
            full = (list(ctx) + list(cont))[-(self.max_length + 1):]
            # A continuation longer than the window is scored on its tokens that have something before them.
            n_targets = min(len(cont), len(full) - 1)
            items.append(_Scored(tuple(full[:-1]), full[len(full) - n_targets:]))
        # Identical inputs (one-token choices of one question) are computed once.
        unique: dict[tuple[int, ...], int] = {}
        for it in items:
            unique.setdefault(it.inp, len(unique))
        inputs = list(unique)
        need = {}  # unique input -> earliest position whose logits any of its requests needs
        for it in items:
            first = len(it.inp) - len(it.targets)
            need[it.inp] = min(need.get(it.inp, first), first)
        logits_of: dict[tuple[int, ...], tuple[int, torch.Tensor]] = {}
        with torch.inference_mode():
            for prefix_len, members in self._prefix_groups(sorted(inputs), need):
                self._run_group(prefix_len, members, need, logits_of)
        out = []
        for it in items:
            offset, logp = logits_of[it.inp]
            pos = len(it.inp) - len(it.targets) - offset
            rows = logp[pos:pos + len(it.targets)]
            tgt = torch.tensor(it.targets)
            lp = float(rows.gather(1, tgt[:, None]).sum())
            out.append((lp, bool((rows.argmax(-1) == tgt).all())))
        return out

    def _prefix_groups(self, inputs: list[tuple[int, ...]], need: dict):
        """Group lexicographically sorted inputs that share a long token prefix; yield (prefix_len, inputs).

        The prefix never reaches into a member's scored positions beyond its last prefix token, so every
        needed logit comes from the prefix's last position or from the member's own suffix.
        """
        group: list[tuple[int, ...]] = []
        shared = 0
        for inp in inputs:
            cap = need[inp] + 1
            if group:
                common = min(_lcp(group[-1], inp), shared, cap)
                keep = common >= self.min_shared_prefix and (
                    len(group) == 1 or common >= self.prefix_keep_ratio * shared)
                if keep:
                    group.append(inp)
                    shared = common
                    continue
                yield (shared if len(group) > 1 else 0), group
            group, shared = [inp], min(len(inp), cap)
        if group:
            yield (shared if len(group) > 1 else 0), group

    def _run_group(self, prefix_len: int, members: list[tuple[int, ...]], need: dict, logits_of: dict) -> None:
        past, last = None, None
        if prefix_len:
            ids = torch.tensor([members[0][:prefix_len]], device=self.device)
            logits, past = self.forward(ids, None, logits_to_keep=1)
            last = logits[0, -1:].float().log_softmax(-1).cpu()
        # Longest suffixes first, in batches of similar length (little padding).
        order = sorted(members, key=lambda m: -len(m))
        for start in range(0, len(order), self.batch_size):
            batch = order[start:start + self.batch_size]
            suffixes = [m[prefix_len:] for m in batch]
            width = max(len(s) for s in suffixes)
            if width == 0:  # every input is the prefix itself: its last logits are all that is needed
                for m in batch:
                    logits_of[m] = (prefix_len - 1, last)  # need[m] == prefix_len - 1 here
                continue
            # Right padding: causal attention keeps padded positions from touching real ones.
            ids = torch.tensor([list(s) + [0] * (width - len(s)) for s in suffixes], device=self.device)
            batch_past = self.repeat_past(past, len(batch)) if past is not None else None
            # Only positions some request scores need logits (the LM head is a large share of a small model).
            lows = [max(0, need[m] - prefix_len) for m in batch]
            keep_from = min(lows)
            logits, _ = self.forward(ids, batch_past, logits_to_keep=width - keep_from)
            logp = logits.float().log_softmax(-1).cpu()
            for row, (m, s, lo) in enumerate(zip(batch, suffixes, lows)):
                own = logp[row, lo - keep_from:len(s) - keep_from].clone()
                if prefix_len and need[m] < prefix_len:
                    logits_of[m] = (prefix_len - 1, torch.cat([last, own]))
                else:
                    logits_of[m] = (prefix_len + lo, own)

    # ---- rolling loglikelihood ------------------------------------------------------------------------------
    def rolling_windows(self, tokens: list[int]) -> list[tuple[list[int], list[int]]]:
        """Disjoint prediction windows over `tokens` as (context, continuation) token pairs.

        Every token is predicted exactly once; each window's input is at most `max_length` tokens, and the last
        window takes as much preceding context as fits (lm-evaluation-harness's rolling windows).
        """
        full = [self.prefix_token_id] + list(tokens)
        n, big = len(full), self.max_length
        pairs = []
        start = 1
        while start < n:
            end = min(n, start + big)
            lo = max(0, end - 1 - big)
            pairs.append((full[lo:start], full[start:end]))
            start = end
        return pairs

    def loglikelihood_rolling(self, texts):
        out = []
        for text in texts:
            # The tokenizer's default special tokens, as lm-eval 0.4 encodes: a BOS it adds is itself predicted
            # (after the prefix token) and counted.
            windows = self.rolling_windows(self.tok_encode(text))
            out.append(float(sum(lp for lp, _ in self.score_tokens(windows))) if windows else 0.0)
        return out

    # ---- generation -----------------------------------------------------------------------------------------
    def generate_until(self, requests):
        return [self._generate_one(r) for r in requests]

    def _generate_one(self, req: GenRequest) -> str:
        ctx = self.prompt_encode(req.context) or [self.prefix_token_id]
        ctx = ctx[-max(1, self.max_length - req.max_gen_toks):]
        gen = torch.Generator().manual_seed(req.seed if req.seed is not None else 0)
        out: list[int] = []
        text = ""
        stops = self.stop_token_ids
        with torch.inference_mode():
            logits, past = self.forward(torch.tensor([ctx], device=self.device), None, logits_to_keep=1)
            for _ in range(req.max_gen_toks):
                nxt = self._pick(logits[0, -1].float().cpu(), req, gen)
                if nxt in stops:
                    break
                out.append(nxt)
                text = self.tok_decode(out)
                if any(s in text for s in req.until) or len(ctx) + len(out) >= self.max_length:
                    break
                logits, past = self.forward(torch.tensor([[nxt]], device=self.device), past, logits_to_keep=1)
        return cut_at_stop(text, req.until)

    @staticmethod
    def _pick(logits: torch.Tensor, req: GenRequest, gen: torch.Generator) -> int:
        if not req.do_sample or req.temperature <= 0:
            return int(logits.argmax())
        scaled = logits[None] / req.temperature
        if req.top_p < 1.0:  # the generation engine's rule (transformers' TopPLogitsWarper)
            scaled = truncate(scaled, [0], [req.top_p])
        return int(torch.multinomial(scaled[0].softmax(-1), 1, generator=gen))
