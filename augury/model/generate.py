"""Batched generation: many prompts of different lengths at once, each with its own sampling settings.

    from augury.model.generate import Engine, SamplingParams, generate
    outs = generate(model, tokenizer, [ids_a, ids_b], SamplingParams(max_tokens=64, temperature=0.7, stop=["\\n"]))
    outs[0].text, outs[0].token_ids, outs[0].logprobs, outs[0].finish_reason   # "stop" or "length"

    engine = Engine(model, tokenizer)            # continuous batching: requests join and leave between steps
    engine.add("a", ids_a, SamplingParams(max_tokens=32))
    while engine.busy():
        for event in engine.step():              # one token per active request: Event(key, text, ..., finished)
            ...

Rows are left-padded into one key/value cache; each row has its own rotary positions (a padded row computes
exactly what it would alone) and a key mask hides the padding. Rows leave the batch as they finish, so the
batch shrinks instead of carrying finished rows. Each row samples with its own generator, seeded from its
`seed`, so a seeded row draws the same tokens whatever else is in the batch. `logprobs` are the log-probabilities
of the chosen tokens under the model's own distribution (before temperature, top-k and top-p), what an RL
objective or a likelihood evaluation needs. Stop strings are checked incrementally (`augury.model.textstream`).
Greedy decoding gives the same tokens as generating each prompt alone (tests/model/test_generate.py). A model's
`never_sampled` ids (an image-text model's `<|image|>` placeholder) are never chosen, and a prompt whose
placeholders its images do not fill is refused by `Engine.add`, before it can fail a batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from augury.model.sampling import truncate
from augury.model.textstream import TextStream


@dataclass
class SamplingParams:
    """How one row is sampled.

    Args:
        max_tokens: most new tokens (fewer when the prompt leaves less room in the model's context).
        temperature: softmax temperature; 0 is greedy.
        top_p: nucleus mass (0 keeps the most likely token alone, 1.0 disables it).
        top_k: keep the k most likely tokens, and any tied with the k-th (0 disables it).
        stop: strings that end the row; they are cut from its text (the tokens stay in token_ids).
        stop_token_ids: token ids that end the row (not included in its output), e.g. end-of-turn.
        seed: the row's sampling seed (None: drawn from torch's global generator).
        prompt_logprobs: also return the log-probability of each prompt token given the ones before it.
        prompt_top_logprobs: with prompt_logprobs, also the this many most likely tokens at each prompt position
            (what OpenAI's echo with logprobs returns). With max_tokens 0 the prompt is scored and nothing generated.
    """

    max_tokens: int = 128
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    stop: list[str] = field(default_factory=list)
    stop_token_ids: list[int] = field(default_factory=list)
    seed: int | None = None
    prompt_logprobs: bool = False
    prompt_top_logprobs: int = 0

    def validate(self) -> None:
        if self.max_tokens < 0:
            raise ValueError("max_tokens must be >= 0")
        if not 0 <= self.temperature < math.inf:  # also refuses NaN
            raise ValueError(f"temperature must be a finite number >= 0 (0 is greedy), got {self.temperature}")
        if not 0 <= self.top_p <= 1:  # OpenAI's range (also refuses NaN)
            raise ValueError(f"top_p must be in [0, 1] (0 keeps the most likely token alone, 1 disables it), "
                             f"got {self.top_p}")
        if self.top_k < 0:
            raise ValueError("top_k must be >= 0")
        if self.prompt_top_logprobs < 0:
            raise ValueError("prompt_top_logprobs must be >= 0")


@dataclass
class Generation:
    """One row's output."""

    token_ids: list[int]  # generated ids (a stop token excluded)
    text: str  # decoded text, cut before the first stop string
    logprobs: list[float]  # log-probability of each generated id under the model
    finish_reason: str  # "stop" (stop string or stop token) or "length"
    prompt_tokens: int = 0
    prompt_logprobs: list[float | None] | None = None  # with params.prompt_logprobs: None for the first token
    prompt_top_logprobs: list[dict[int, float] | None] | None = None  # with params.prompt_top_logprobs: id -> lp
    stop_token_id: int | None = None  # the stop token that ended the row (not in token_ids), if one did


@dataclass
class Event:
    """What one step did for one request."""

    key: object  # the caller's handle given to Engine.add
    token_id: int | None  # the new token (None when the request ended without one: a stop token or no room)
    logprob: float | None
    text: str  # text that can be sent now (held back while it could still be a stop string or a partial char)
    finished: bool = False
    generation: Generation | None = None  # the whole result, on the last event


@dataclass
class _Row:
    key: object
    prompt: list[int]
    params: SamplingParams
    budget: int
    gen: torch.Generator | None
    stream: TextStream
    ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    prompt_logprobs: list[float | None] | None = None
    prompt_top_logprobs: list[dict[int, float] | None] | None = None
    images: torch.Tensor | None = None  # (n, 3, S, S) pixels for the prompt's <|image|> runs, in order


class NonFiniteLogits(ValueError):
    """A row's next-token logits hold NaN, or no finite value: there is no token to choose."""


def _choose(logits: torch.Tensor, rows: list[_Row]) -> list[int]:
    """One token id per row from the batch's logits (B, V), each row with its own settings and generator.

    Sampling is by inverse CDF over the batch at once: each sampling row draws one uniform number from its own
    generator, after its top-k and top-p cut (`augury.model.sampling.truncate`, transformers' rule). Which order a
    row's CDF runs in depends on its own settings only (most to least likely when it truncates, vocabulary order
    when not), never on its neighbours': the same number picks another token in another order, so a seeded row's
    tokens would otherwise depend on its batch.

    A row whose logits hold NaN or only -inf raises `NonFiniteLogits` (every token drawn from them would be the
    last id, without a word). A sampling row whose distribution overflows (a +inf logit, or a temperature so small
    that the scaled logits do) takes its most likely token, the distribution's limit.
    """
    chosen = logits.argmax(-1)
    broken = logits.isnan().any(-1) | (logits == -math.inf).all(-1)
    hot = [j for j, r in enumerate(rows) if r.params.temperature > 0]
    if hot:
        idx = torch.tensor(hot, device=logits.device)
        temps = torch.tensor([rows[j].params.temperature for j in hot], device=logits.device)
        scaled = logits[idx].float() / temps[:, None]
        truncates = [bool(rows[j].params.top_k or rows[j].params.top_p < 1.0) for j in hot]
        if any(truncates):
            scaled = truncate(scaled, [rows[j].params.top_k for j in hot], [rows[j].params.top_p for j in hot])
        probs = torch.softmax(scaled, dim=-1)
        order = None
        if any(truncates):
            vocab = probs.shape[-1]
            sorted_p, sorted_ids = probs.sort(dim=-1, descending=True)
            sort = torch.tensor(truncates, device=logits.device)[:, None]
            probs = torch.where(sort, sorted_p, probs)
            order = torch.where(sort, sorted_ids, torch.arange(vocab, device=logits.device).expand_as(sorted_ids))
        cdf = probs.cumsum(-1)
        # u in (0, 1], so the first slot whose cdf reaches u * total has a non-zero probability
        u = torch.cat([1 - torch.rand(1, generator=rows[j].gen, device=logits.device) for j in hot])
        pick = torch.searchsorted(cdf, (u * cdf[:, -1])[:, None]).clamp(max=cdf.shape[-1] - 1)
        if order is not None:
            pick = order.gather(-1, pick)
        chosen[idx] = torch.where(probs.isnan().any(-1), chosen[idx], pick[:, 0])
    chosen, broken = torch.stack([chosen, broken.long()]).tolist()  # one wait for the device
    if any(broken):
        keys = [rows[j].key for j, b in enumerate(broken) if b]
        raise NonFiniteLogits(f"the model's next-token logits hold NaN or no finite value (request {keys[0]!r}"
                              f"{f' and {len(keys) - 1} more' if len(keys) > 1 else ''}): there is no token to choose")
    return chosen


class Engine:
    """Continuous batching over one key/value cache: requests join and leave between decode steps.

    Running rows share a left-padded cache (each with its own rotary positions and a key mask). A row that finishes
    leaves at once (its cache row is dropped); requests added meanwhile join at the next step: their prompts are
    prefilled together and their cache is merged with the running one. Each row keeps its own generator, so what a
    seeded row draws does not depend on what else is running.
    """

    def __init__(self, model, tokenizer, fallback_id: int = 0, max_batch: int = 64):
        self.model, self.tokenizer, self.fallback_id, self.max_batch = model, tokenizer, fallback_id, max_batch
        self.device = model.embed_tokens.weight.device
        self.rows: list[_Row] = []  # running, in cache order
        self.waiting: list[_Row] = []
        self.cache = None
        self.logits: torch.Tensor | None = None  # (len(rows), V): the next token's logits of each running row
        # ids the model takes as input only (an image-text model's <|image|> placeholder): never chosen
        self.never_sampled = list(getattr(model, "never_sampled", ()))

    def add(self, key, prompt: list[int], params: SamplingParams, images: torch.Tensor | None = None) -> None:
        """Queue a request. `images` (n, 3, S, S) fill the prompt's runs of `<|image|>` ids, in order (an
        image-text model, augury.model.vision); such a prompt must fit the context whole. A text prompt longer
        than `max_seq_len - 1` keeps its last `max_seq_len - 1` tokens, room for one new token: a caller that
        wants room for more cuts it first (augury sample, the eval backend) or refuses it (augury serve)."""
        params.validate()
        limit = self.model.cfg.max_seq_len
        if images is not None and len(prompt) > limit - 1:
            raise ValueError(f"a prompt with images is {len(prompt)} tokens; the model's context is {limit}")
        check = getattr(self.model, "check_prompt", None)
        if check is not None:  # here, not in a later step, where it would fail every request in the batch
            check(prompt, 0 if images is None else images.shape[0])
        prompt = list(prompt)[-(limit - 1):] if prompt else [self.fallback_id]
        gen = torch.Generator(device=self.device).manual_seed(params.seed) if params.seed is not None else None
        budget = max(0, min(params.max_tokens, limit - len(prompt)))
        self.waiting.append(_Row(key, prompt, params, budget, gen, TextStream(self.tokenizer.decode, params.stop),
                                 images=images))

    def cancel(self, key) -> None:
        """Drop a request (a client that went away); it produces no more events."""
        self.waiting = [r for r in self.waiting if r.key != key]
        keep = [j for j, r in enumerate(self.rows) if r.key != key]
        if len(keep) < len(self.rows):
            self._keep(keep)

    def busy(self) -> bool:
        return bool(self.rows or self.waiting)

    def _keep(self, keep: list[int]) -> None:
        self.rows = [self.rows[j] for j in keep]
        if not self.rows:
            self.cache, self.logits = None, None
            return
        index = torch.tensor(keep, dtype=torch.long, device=self.device)
        self.cache.keep_rows(index)
        self.logits = self.logits[index]

    def _prefill(self, rows: list[_Row]):
        """A cache and next-token logits for `rows` (prompt and tokens so far), left-padded together."""
        from augury.model.transformer import KVCache

        seqs = [r.prompt + r.ids for r in rows]
        width = max(len(q) for q in seqs)
        pads = [width - len(q) for q in seqs]
        ids = torch.tensor([[self.fallback_id] * pad + q for pad, q in zip(pads, seqs)], device=self.device)
        slot = torch.arange(width, device=self.device)
        pad_t = torch.tensor(pads, device=self.device)
        cache = KVCache(self.model.cfg, len(seqs), width, self.device, self.model.embed_tokens.weight.dtype)
        cache.key_mask = slot[None, :] >= pad_t[:, None]
        positions = (slot[None, :] - pad_t[:, None]).clamp(min=0)
        scored = [j for j, r in enumerate(rows) if r.params.prompt_logprobs and r.prompt_logprobs is None]
        images = [r.images.to(self.device) for r in rows if r.images is not None]
        extra = {"images": torch.cat(images)} if images else {}  # rows in order, as the placeholders are read
        logits = self.model(ids, kv_cache=cache, positions=positions, logits_to_keep=None if scored else 1, **extra)
        for j in scored:  # position t's logits predict token t + 1; the row's tokens start after its padding
            n = len(rows[j].prompt)
            logp = torch.log_softmax(logits[j, pads[j]:pads[j] + n - 1].float(), dim=-1)
            target = ids[j, pads[j] + 1:pads[j] + n]
            rows[j].prompt_logprobs = [None] + logp.gather(-1, target[:, None])[:, 0].tolist()
            top = min(rows[j].params.prompt_top_logprobs, logp.shape[-1])
            if top:
                vals, idx = logp.topk(top, dim=-1)
                rows[j].prompt_top_logprobs = [None] + [dict(zip(i, v)) for i, v in zip(idx.tolist(), vals.tolist())]
        return cache, logits[:, -1]

    def _join(self, rows: list[_Row]) -> None:
        """Prefill the joining rows alone, then merge their cache with the running one.

        Slots are not positions (each row carries its own rotary positions), so the two caches are aligned on their
        last slot; slots no running row uses any more are dropped on the way, so the cache stays short.
        """
        from augury.model.transformer import KVCache

        cache, logits = self._prefill(rows)
        if self.cache is None:
            old_rows, old_len, old = 0, 0, None
        else:
            old = self.cache
            used = old.key_mask[:, :old.pos] if old.key_mask is not None else None
            first = int(used.any(0).nonzero()[0]) if used is not None else 0
            old_rows, old_len = len(self.rows), old.pos - first
        width = max(old_len, cache.pos)
        room = max(r.budget - len(r.ids) for r in self.rows + rows)
        merged = KVCache(self.model.cfg, old_rows + len(rows), width + room, self.device, cache.k.dtype)
        # slots a row never wrote are masked, but a masked weight of 0 times uninitialised memory can still be NaN
        merged.k.zero_()
        merged.v.zero_()
        merged.key_mask = torch.zeros(old_rows + len(rows), width + room, dtype=torch.bool, device=self.device)
        if old is not None:
            merged.k[:, :old_rows, :, width - old_len:width] = old.k[:, :, :, old.pos - old_len:old.pos]
            merged.v[:, :old_rows, :, width - old_len:width] = old.v[:, :, :, old.pos - old_len:old.pos]
            merged.key_mask[:old_rows, width - old_len:width] = (
                old.key_mask[:, old.pos - old_len:old.pos] if old.key_mask is not None else True)
        merged.k[:, old_rows:, :, width - cache.pos:width] = cache.k
        merged.v[:, old_rows:, :, width - cache.pos:width] = cache.v
        merged.key_mask[old_rows:, width - cache.pos:width] = cache.key_mask
        merged.pos = width
        self.cache = merged
        self.logits = logits if self.logits is None or old is None else torch.cat([self.logits, logits])
        self.rows += rows

    @torch.no_grad()
    def step(self) -> list[Event]:
        """Admit waiting requests, then give every running request one token; returns what happened."""
        events: list[Event] = []
        joining = []
        while self.waiting and len(self.rows) + len(joining) < self.max_batch:
            row = self.waiting.pop(0)
            if row.budget == 0 and not row.params.prompt_logprobs:
                events.append(self._finish(row, "length"))
            else:
                joining.append(row)
        if joining:
            self._join(joining)
            scored_only = [j for j, r in enumerate(self.rows) if r.budget == 0]  # prompt scored, nothing to generate
            if scored_only:
                events += [self._finish(self.rows[j], "length") for j in scored_only]
                self._keep([j for j in range(len(self.rows)) if j not in set(scored_only)])
        if not self.rows:
            return events
        logp = torch.log_softmax(self.logits.float(), dim=-1)
        allowed = self.logits
        if self.never_sampled:
            allowed = allowed.clone()
            allowed[:, self.never_sampled] = -math.inf
        keep, chosen = [], []
        for j, (row, tok) in enumerate(zip(self.rows, _choose(allowed, self.rows))):
            if tok in row.params.stop_token_ids:
                events.append(self._finish(row, "stop", stop_token=tok))
                continue
            row.ids.append(tok)
            row.logprobs.append(float(logp[j, tok]))
            text = row.stream.push(tok)
            if row.stream.stopped or len(row.ids) >= row.budget:
                events.append(self._finish(row, "stop" if row.stream.stopped else "length", tok, text))
                continue
            events.append(Event(row.key, tok, row.logprobs[-1], text))
            keep.append(j)
            chosen.append(tok)
        if len(keep) < len(self.rows):
            self._keep(keep)
        if self.rows:
            self.cache.key_mask[:, self.cache.pos] = True
            step_ids = torch.tensor(chosen, device=self.device)[:, None]
            positions = torch.tensor([len(r.prompt) + len(r.ids) - 1 for r in self.rows], device=self.device)
            self.logits = self.model(step_ids, kv_cache=self.cache, positions=positions[:, None])[:, -1]
        return events

    def _finish(self, row: _Row, reason: str, tok: int | None = None, text: str = "",
                stop_token: int | None = None) -> Event:
        text += row.stream.finish()
        result = Generation(row.ids, row.stream.text, row.logprobs, reason, len(row.prompt), row.prompt_logprobs,
                            row.prompt_top_logprobs, stop_token)
        return Event(row.key, tok, row.logprobs[-1] if tok is not None else None, text, True, result)


def generate(model, tokenizer, prompts: list[list[int]], params: SamplingParams | list[SamplingParams],
             fallback_id: int = 0, images: list[torch.Tensor | None] | None = None) -> list[Generation]:
    """Continue every prompt (token ids) at once; results in the input order.

    `tokenizer` needs `decode(ids)` (a `tokenizers.Tokenizer` or any object with it). An empty prompt starts
    from `fallback_id` (augury's end-of-text id is 0). `images[i]` (n, 3, S, S) are prompt i's images.
    """
    settings = params if isinstance(params, list) else [params] * len(prompts)
    if len(settings) != len(prompts):
        raise ValueError(f"{len(settings)} sampling settings for {len(prompts)} prompts")
    if images is not None and len(images) != len(prompts):
        raise ValueError(f"images for {len(images)} prompts, but {len(prompts)} prompts")
    engine = Engine(model, tokenizer, fallback_id, max_batch=max(1, len(prompts)))
    for i, (prompt, p) in enumerate(zip(prompts, settings)):
        engine.add(i, prompt, p, images=None if images is None else images[i])
    results: list[Generation | None] = [None] * len(prompts)
    while engine.busy():
        for event in engine.step():
            if event.finished:
                results[event.key] = event.generation
    return results
