"""augury's own checkpoints as an evaluation backend (`--model augury:RUN_DIR`).

Loads the run's newest intact checkpoint (or `checkpoint=PATH`) and its tokenizer. Scoring, rolling windows and
decoding come from `TokenizedLM`; the key/value cache is augury's pre-allocated `KVCache`.

    augury eval --model augury:runs/quickstart --tasks wikitext --data_dir DATA --out results/
"""

from __future__ import annotations

from typing import Any

import torch

from augury.data.chat import CONTENT_MARK, END_OF_TURN, chat_text_tokenizer
from augury.evals.backends.tokenized import TokenizedLM
from augury.model.transformer import KVCache


class AuguryLM(TokenizedLM):
    name = "augury"

    def __init__(self, run: str, checkpoint: str | None = None, device: str = "cpu", batch_size: int = 16,
                 dtype: str = "float32"):
        """Load an augury run.

        Args:
            run: the run folder (config.yaml, tokenizer.json, checkpoints/)
            checkpoint: a specific checkpoint folder; default: the newest intact one
            device: torch device
            batch_size: suffixes per forward pass when scoring
            dtype: float32 or bfloat16 weights
        """
        from augury.evals.backends.hf import ModelLoadError
        from augury.model.device import checked_device
        from augury.model.run import RunLoadError, load_run
        from augury.model.weights import find_latest_checkpoint

        if not isinstance(batch_size, int) or batch_size < 1:
            raise ModelLoadError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if dtype not in ("float32", "bfloat16"):
            raise ModelLoadError(f"dtype {dtype!r} is not one of float32, bfloat16")
        try:
            self.device = checked_device(device)
        except ValueError as err:
            raise ModelLoadError(str(err)) from None
        if checkpoint is None:
            checkpoint = find_latest_checkpoint(run)
        self.checkpoint = str(checkpoint) if checkpoint is not None else None
        try:
            self.model, self.tokenizer, self.cfg = load_run(run, checkpoint, device=self.device)
        except RunLoadError as err:
            raise ModelLoadError(str(err)) from None
        self.dtype = dtype
        if dtype == "bfloat16":
            self.model.to(torch.bfloat16)
        self.run = str(run)
        self.batch_size = batch_size
        self.max_length = self.cfg.max_seq_len
        self._eot = self.tokenizer.token_to_id("<|endoftext|>")
        self._chat_tokenizer = None  # made for the first chat prompt (chat_text_tokenizer)

    def tok_encode(self, text: str, special_tokens: bool | None = None) -> list[int]:
        # augury's tokenizer adds no BOS; documents are separated (and preceded) by <|endoftext|>.
        # A chat prompt (apply_chat_template) marks its content's "<|"; the chat tokenizer reads it back into
        # render_chat's ids. (Plain text holding "<|" + U+FDD0, a noncharacter, would lose the U+FDD0.)
        if CONTENT_MARK in text and self.tokenizer.token_to_id(END_OF_TURN) is not None:
            if self._chat_tokenizer is None:
                self._chat_tokenizer = chat_text_tokenizer(self.tokenizer)
            return self._chat_tokenizer.encode(text).ids
        return self.tokenizer.encode(text).ids

    def tok_decode(self, ids) -> str:
        return self.tokenizer.decode(list(ids))

    @property
    def eot_token_id(self) -> int:
        return self._eot if self._eot is not None else 0

    def forward(self, ids: torch.Tensor, past: Any = None, logits_to_keep: int | None = None):
        if past is None:
            past = self.model.new_kv_cache(ids.shape[0], self.max_length)
        logits = self.model(ids.to(self.device), kv_cache=past, logits_to_keep=logits_to_keep)
        return logits, past

    def repeat_past(self, past: KVCache, n: int) -> KVCache:
        out = self.model.new_kv_cache(n, past.max_len)
        out.k[:, :, :, :past.pos] = past.k[:, :1, :, :past.pos]
        out.v[:, :, :, :past.pos] = past.v[:, :1, :, :past.pos]
        out.pos = past.pos
        return out

    def apply_chat_template(self, messages: list[dict]) -> str:
        """The conversation as the exported chat template writes it (`render_chat_text`): tok_encode reads it into
        exactly render_chat's ids, the ones augury trains on and serves, so content spelling "<|end|>" stays text.
        Decoding render_chat's ids instead would turn such content into control ids when encoded again."""
        from augury.data.chat import ChatFormatError, chat_token_ids, render_chat_text

        try:
            chat_token_ids(self.tokenizer)  # a tokenizer without the chat tokens is refused here
            return render_chat_text(messages, add_generation_prompt=True)
        except ChatFormatError as err:
            raise ValueError(f"{self.run}: {err}; run without --chat") from None

    def generate_until(self, requests):
        """All requests through the batched engine, `batch_size` at a time; stops at end-of-text and <|end|>.

        A context keeps its last `max_length - max_gen_toks` tokens (at least one), as `TokenizedLM` and lm-eval
        do: a context over the model's length still leaves room for the reply (the engine alone would keep all
        but one slot of it, a reply of one token)."""
        from augury.evals.lm import cut_at_stop
        from augury.model.generate import SamplingParams, generate

        stop_ids = [i for i in (self._eot, self.tokenizer.token_to_id("<|end|>")) if i is not None]
        out: list[str] = []
        for start in range(0, len(requests), self.batch_size):
            chunk = requests[start:start + self.batch_size]
            prompts = [self.tok_encode(r.context) or [self.prefix_token_id] for r in chunk]
            prompts = [ids[-max(1, self.max_length - r.max_gen_toks):] for ids, r in zip(prompts, chunk)]
            params = [SamplingParams(max_tokens=r.max_gen_toks, temperature=r.temperature if r.do_sample else 0.0,
                                     top_p=r.top_p if r.do_sample else 1.0, stop=list(r.until),
                                     stop_token_ids=stop_ids, seed=r.seed if r.seed is not None else 0)
                      for r in chunk]
            outs = generate(self.model, self.tokenizer, prompts, params, fallback_id=self.prefix_token_id)
            out += [cut_at_stop(o.text, r.until) for o, r in zip(outs, chunk)]
        return out

    def config(self) -> dict[str, Any]:
        return {"model": "augury", "model_args": f"run={self.run},checkpoint={self.checkpoint},dtype={self.dtype}",
                "batch_size": self.batch_size, "device": str(self.device), "max_length": self.max_length}

    def identity(self) -> dict[str, Any]:
        from augury.model.weights import weights_key

        return {"model": "augury", "run": self.run, "checkpoint": self.checkpoint, "dtype": self.dtype,
                "weights": weights_key(self.run, self.checkpoint)}
