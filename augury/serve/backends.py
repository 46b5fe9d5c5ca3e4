"""What the server generates with: a local model, an augury run or a Hugging Face folder (an upstream server in
gateway mode is `augury.serve.gateway`).

    backend = LocalBackend.load("runs/quickstart")            # or "hf:/models/llama" for a Hugging Face folder

It turns a `GenerationJob` into a stream of `Delta`s (text pieces, then a finish reason and token counts), which
the application checks with moderation as they come (the job and delta types: `augury.serve.jobs`). The model
runs in one worker thread: an augury run batches concurrent requests there (continuous batching,
`augury.serve.batching`), a Hugging Face model takes them one at a time in arrival order.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from augury.errors import UsageError
from augury.model.textstream import TextStream
from augury.serve.batching import BatchWorker
from augury.serve.jobs import Delta, GenerationFailed, GenerationJob, send_to

__all__ = ["Delta", "GenerationFailed", "GenerationJob", "LocalBackend"]


class LocalBackend:
    """A model loaded in this process; generation in one worker thread (batched for an augury run)."""

    def __init__(self, model, tokenizer, model_id: str, max_context: int, kind: str, chat_render, stop_ids):
        self.model, self.tokenizer, self.model_id = model, tokenizer, model_id
        self.max_context, self.kind = max_context, kind
        self._chat_render, self.chat_stop_ids = chat_render, stop_ids
        # the side of the images the model reads (an image-text run), None for a model that reads none
        vision = getattr(getattr(model, "model", None), "vision_cfg", None)
        self.image_size = vision.image_size if vision is not None else None
        self._jobs: queue.Queue = queue.Queue()
        self.max_batch = 32
        # one thread of its own for tokenizing (encode_documents switches a flag on the shared tokenizer while it
        # encodes, so two at once could read each other's setting)
        self._text_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="augury-serve-tokenize")
        self._worker = threading.Thread(target=self._work, name="augury-serve-generate", daemon=True)
        self._worker.start()

    # ---- loading -------------------------------------------------------------------------------------------
    @classmethod
    def load(cls, spec: str, device: str = "cpu", max_batch: int = 32) -> LocalBackend:
        from augury.model.device import checked_device

        try:
            device = checked_device(device)
        except ValueError as err:
            raise UsageError(str(err)) from None
        if spec.startswith("hf:"):
            return cls._load_hf(spec[3:], device)
        backend = cls._load_augury(spec, device)
        backend.max_batch = max_batch
        return backend

    @classmethod
    def _load_augury(cls, run: str, device) -> LocalBackend:
        from augury.model.run import RunLoadError, load_run

        try:
            model, tok, cfg = load_run(run, device=device)
        except RunLoadError as err:
            raise UsageError(str(err)) from None
        end_id = tok.token_to_id("<|end|>")
        eot_id = tok.token_to_id("<|endoftext|>")

        def render(messages):
            from augury.data.chat import render_chat

            return render_chat(tok, messages, add_generation_prompt=True).ids

        ids = [i for i in (end_id, eot_id) if i is not None]
        backend = cls(_AuguryLM(model, tok, eot_id), _AuguryTokenizer(tok), Path(run).name, cfg.max_seq_len,
                      "augury", render, ids)
        backend.eos_ids = [eot_id] if eot_id is not None else []
        return backend

    @classmethod
    def _load_hf(cls, path: str, device) -> LocalBackend:
        from augury.evals.backends.hf import ModelLoadError, generation_stop_ids, load_hf_causal_lm

        try:
            _, tok, model = load_hf_causal_lm(path)
        except ModelLoadError as err:
            raise UsageError(str(err)) from None
        model = model.to(device).eval()
        # every eos id of the generation_config too, as transformers' generate stops: a chat model's end of turn
        eos = generation_stop_ids(model, tok)

        def render(messages):
            if not getattr(tok, "chat_template", None):
                raise ValueError("this model's tokenizer has no chat_template; use /v1/completions")
            return list(tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                return_dict=False))

        max_ctx = getattr(model.config, "max_position_embeddings", 2048)
        backend = cls(_HFLM(model, tok), _HFTokenizer(tok), Path(path).name, max_ctx, "hf", render, eos)
        backend.eos_ids = eos
        return backend

    # ---- text <-> ids ----------------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        """Token ids of user text: special-token strings in it stay text, never control ids."""
        return self.tokenizer.encode_text(text)

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(list(ids))

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    def chat_prompt(self, messages: list[dict]) -> list[int]:
        return self._chat_render(messages)

    async def off_loop(self, fn, *args):
        """`fn(*args)` (encode, decode, chat_prompt) in the tokenizing thread: a prompt of a megabyte takes a
        second, in which the event loop goes on streaming the other replies."""
        return await asyncio.wrap_future(self._text_thread.submit(fn, *args))

    def check_prompt(self, ids: list[int], n_images: int = 0) -> None:
        """ValueError for token ids the model cannot read: an image-text model's `<|image|>` ids stand for the
        request's images (a chat request's image parts), so a prompt holds exactly the ones its images fill."""
        check = getattr(self.model.model, "check_prompt", None)
        if check is None:
            return
        try:
            check(ids, n_images)
        except ValueError:
            from augury.model.vision import IMAGE_TOKEN_ID

            raise ValueError(f"token id {IMAGE_TOKEN_ID} is this image-text model's <|image|> placeholder, which "
                             "stands for an image; images come only as image parts of a chat message, so a prompt "
                             "cannot hold it") from None

    # ---- generation ------------------------------------------------------------------------------------------
    async def stream(self, job: GenerationJob) -> AsyncIterator[Delta]:
        loop = asyncio.get_running_loop()
        out: asyncio.Queue = asyncio.Queue()
        cancel = threading.Event()
        self._jobs.put((job, (loop, out), cancel))
        try:
            while True:
                item = await out.get()
                if isinstance(item, BaseException):
                    raise item
                # Deltas that queued up while the consumer was busy go out as one: under load the per-chunk
                # work (moderation, one SSE event, one socket write) is paid per step of the reader, not per token.
                while item.finish_reason is None and not out.empty():
                    later = out.get_nowait()
                    if isinstance(later, BaseException):
                        yield item
                        raise later
                    item = item.then(later)
                yield item
                if item.finish_reason is not None:
                    return
        finally:
            cancel.set()  # a client that went away frees the worker at the next token

    def _work(self) -> None:
        if self.kind == "augury":
            return self._work_batched()
        while True:
            job, (loop, out), cancel = self._jobs.get()

            def emit(item, loop=loop, out=out):
                send_to(loop, out.put_nowait, item)

            try:
                self._generate(job, emit, cancel)
            except Exception as err:  # noqa: BLE001 (reported to the waiting request, its traceback logged)
                logging.getLogger(__name__).error("a request failed in generation", exc_info=err)
                emit(GenerationFailed.of(err))

    def _work_batched(self) -> None:
        BatchWorker(self).run()

    def _generate(self, job: GenerationJob, emit, cancel: threading.Event) -> None:
        import torch

        limit = self.max_context
        prompt = job.prompt_ids[-limit:] if job.prompt_ids else []
        budget = max(0, min(job.max_tokens, limit - len(prompt)))
        stream = TextStream(self.decode, job.stop)
        # a generator on the model's device: multinomial on a GPU's probabilities refuses a CPU generator
        gen = torch.Generator(device=self.model.device).manual_seed(job.seed) if job.seed is not None else None
        n_out, finish = 0, "length"
        scored = self.model.score(prompt, job.prompt_logprobs) if job.prompt_logprobs is not None else (None, None)
        for token, logprob in self.model.tokens(prompt, budget, job.temperature, job.top_p, gen):
            if cancel.is_set():
                return
            if token in job.stop_token_ids:
                finish = "stop"
                break
            n_out += 1
            text = stream.push(token)
            # a delta for every token, also one whose text is held back (see Delta.held)
            emit(Delta(text=text, logprobs=[logprob] if job.logprobs else [], token_ids=[token] if job.logprobs else [],
                       completion_tokens=n_out, held=stream.text[stream.sent:]))
            if stream.stopped:
                finish = "stop"
                break
        tail = stream.finish()
        emit(Delta(text=tail, finish_reason=finish, prompt_tokens=len(prompt), completion_tokens=n_out,
                   prompt_logprobs=scored[0], prompt_top=scored[1]))


def _sample(logits, temperature: float, top_p: float, gen):
    import torch

    from augury.model.sampling import truncate

    logp = torch.log_softmax(logits.float(), dim=-1)
    if temperature <= 0:
        tok = int(logp.argmax())
        return tok, float(logp[tok])
    scaled = logits.float()[None] / temperature
    if top_p < 1.0:  # the engine's rule (transformers' TopPLogitsWarper)
        scaled = truncate(scaled, [0], [top_p])
    tok = int(torch.multinomial(torch.softmax(scaled[0], dim=-1), 1, generator=gen))
    return tok, float(logp[tok])


def _score_from_logits(ids, logits, top):
    import torch

    logp = torch.log_softmax(logits.float(), dim=-1)
    token_lp: list[float | None] = [None]
    tops: list[dict[int, float] | None] = [None]
    for i in range(1, len(ids)):
        token_lp.append(float(logp[i - 1, ids[i]]))
        if top:
            vals, idx = logp[i - 1].topk(top)
            tops.append({int(j): float(v) for j, v in zip(idx, vals)})
        else:
            tops.append(None)
    return token_lp, tops


class _AuguryLM:
    """An augury run's model for the worker: generation goes through augury.model.generate.Engine."""

    def __init__(self, model, tok, eot_id):
        self.model, self.tok, self.eot_id = model, tok, eot_id


class _HFLM:
    def __init__(self, model, tok):
        from augury.evals.backends.hf import cache_argument

        self.model, self.tok = model, tok
        self._cache_arg = cache_argument(model)

    @property
    def device(self):
        """Where the model's weights are: its inputs and a seeded request's generator are made there."""
        return self.model.device

    def tokens(self, prompt, budget, temperature, top_p, gen):
        import torch

        from augury.evals.backends.hf import returned_cache

        if not prompt:
            prompt = [self.tok.bos_token_id if self.tok.bos_token_id is not None else 0]
        with torch.no_grad():
            out = self.model(torch.tensor([prompt], device=self.device), use_cache=True)
            for _ in range(budget):
                tok, lp = _sample(out.logits[0, -1], temperature, top_p, gen)
                yield tok, lp
                out = self.model(torch.tensor([[tok]], device=self.device), use_cache=True,
                                 **{self._cache_arg: returned_cache(out)})

    def score(self, ids, top):
        import torch

        with torch.no_grad():
            logits = self.model(torch.tensor([ids], device=self.device)).logits[0]
        return _score_from_logits(ids, logits, top)


class _AuguryTokenizer:
    def __init__(self, tok):
        self.tok = tok
        self.vocab_size = tok.get_vocab_size()

    def encode_text(self, text):
        from augury.data.tokenizer import encode_documents

        return encode_documents(self.tok, [text])[0]

    def decode(self, ids):
        return self.tok.decode(ids, skip_special_tokens=False)


class _HFTokenizer:
    def __init__(self, tok):
        self.tok = tok
        self.vocab_size = len(tok)

    def encode_text(self, text):
        return self.tok(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]

    def decode(self, ids):
        return self.tok.decode(ids)
