"""What the server generates with: a local model, an augury run or a Hugging Face folder (an upstream server in
gateway mode is `augury.serve.gateway`).

    backend = LocalBackend.load("runs/quickstart")            # or "hf:/models/llama" for a Hugging Face folder

It turns a `GenerationJob` into a stream of `Delta`s (text pieces, then a finish reason and token counts), which
the application checks with moderation as they come. The model runs in one worker thread: an augury run batches
concurrent requests there (continuous batching), a Hugging Face model takes them one at a time in arrival order.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from augury.errors import UsageError
from augury.model.textstream import TextStream
from augury.serve.responses import short_error


@dataclass
class GenerationJob:
    """One completion to generate (a request with n > 1 is n jobs)."""

    prompt_ids: list[int]
    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    stop_token_ids: list[int] = field(default_factory=list)
    seed: int | None = None
    logprobs: bool = False
    prompt_logprobs: int | None = None  # score the prompt too, with this many top alternatives per position


@dataclass
class Delta:
    text: str = ""
    logprobs: list[float] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)  # the tokens the log-probs belong to (when asked for)
    finish_reason: str | None = None  # "stop", "length" or "content_filter" on the last delta
    prompt_tokens: int = 0
    completion_tokens: int = 0  # tokens generated so far (on the last delta: in all), so an early end counts them
    # on the last delta of a job with prompt_logprobs: each prompt token's log-prob (None for the first) and the
    # top alternatives (token id -> log-prob) at each position
    prompt_logprobs: list[float | None] | None = None
    prompt_top: list[dict[int, float] | None] | None = None

    def then(self, later: Delta) -> Delta:
        """This delta followed by a later one, as one."""
        return Delta(self.text + later.text, self.logprobs + later.logprobs, self.token_ids + later.token_ids,
                     later.finish_reason, later.prompt_tokens, later.completion_tokens, later.prompt_logprobs,
                     later.prompt_top)


class GenerationFailed(Exception):
    """One job failed in the worker; the other requests go on. `status` is what its request is answered: 400 for a
    job the engine refuses (its input), 500 for a failure while generating. The message is one short line: a
    device error's C++ frames and other tracebacks stay in the server."""

    def __init__(self, message: str, status: int = 500):
        super().__init__(message)
        self.status = status

    @classmethod
    def of(cls, err: BaseException, status: int = 500) -> GenerationFailed:
        if isinstance(err, GenerationFailed):
            return err
        if status == 400:  # the engine's own check of the job: its message says what is wrong
            return cls(next((line for line in str(err).splitlines() if line.strip()), str(err))[:300], 400)
        return cls(f"generation failed: {short_error(err)}", 500)


class LocalBackend:
    """A model loaded in this process; generation in one worker thread (batched for an augury run)."""

    def __init__(self, model, tokenizer, model_id: str, max_context: int, kind: str, chat_render, stop_ids):
        self.model, self.tokenizer, self.model_id = model, tokenizer, model_id
        self.max_context, self.kind = max_context, kind
        self._chat_render, self.chat_stop_ids = chat_render, stop_ids
        self._jobs: queue.Queue = queue.Queue()
        self.max_batch = 32
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
        from augury.evals.backends.hf import ModelLoadError, load_hf_causal_lm

        try:
            _, tok, model = load_hf_causal_lm(path)
        except ModelLoadError as err:
            raise UsageError(str(err)) from None
        model = model.to(device).eval()
        eos = [tok.eos_token_id] if tok.eos_token_id is not None else []

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

    def check_prompt(self, ids: list[int]) -> None:
        """ValueError for token ids the model cannot read: an image-text model's `<|image|>` id stands for an
        image, and the API carries none."""
        check = getattr(self.model.model, "check_prompt", None)
        if check is None:
            return
        try:
            check(ids, 0)
        except ValueError:
            from augury.model.vision import IMAGE_TOKEN_ID

            raise ValueError(f"token id {IMAGE_TOKEN_ID} is this image-text model's <|image|> placeholder, which "
                             "stands for an image; this server takes no images, so a prompt cannot hold it") from None

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
                _send(loop, out.put_nowait, item)

            try:
                self._generate(job, emit, cancel)
            except Exception as err:  # noqa: BLE001 (reported to the waiting request)
                emit(GenerationFailed.of(err))

    def _work_batched(self) -> None:
        _BatchWorker(self).run()

    def _generate(self, job: GenerationJob, emit, cancel: threading.Event) -> None:
        import torch

        limit = self.max_context
        prompt = job.prompt_ids[-limit:] if job.prompt_ids else []
        budget = max(0, min(job.max_tokens, limit - len(prompt)))
        stream = TextStream(self.decode, job.stop)
        gen = torch.Generator().manual_seed(job.seed) if job.seed is not None else None
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
            if text or job.logprobs:
                emit(Delta(text=text, logprobs=[logprob] if job.logprobs else [],
                           token_ids=[token] if job.logprobs else [], completion_tokens=n_out))
            if stream.stopped:
                finish = "stop"
                break
        tail = stream.finish()
        emit(Delta(text=tail, finish_reason=finish, prompt_tokens=len(prompt), completion_tokens=n_out,
                   prompt_logprobs=scored[0], prompt_top=scored[1]))


def _send(loop, fn, item) -> None:
    """Run fn(item) on the request's event loop; nothing when that loop has closed (no one is waiting), so the
    worker thread outlives any one caller."""
    try:
        loop.call_soon_threadsafe(fn, item)
    except RuntimeError:
        pass


def _deliver(items) -> None:
    for out, delta in items:
        out.put_nowait(delta)


def _sample(logits, temperature: float, top_p: float, gen):
    import torch

    logp = torch.log_softmax(logits.float(), dim=-1)
    if temperature <= 0:
        tok = int(logp.argmax())
        return tok, float(logp[tok])
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_p, order = probs.sort(descending=True)
        drop = sorted_p.cumsum(-1) - sorted_p > top_p
        sorted_p = sorted_p.masked_fill(drop, 0.0)
        tok = int(order[torch.multinomial(sorted_p / sorted_p.sum(), 1, generator=gen)])
    else:
        tok = int(torch.multinomial(probs, 1, generator=gen))
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

    def tokens(self, prompt, budget, temperature, top_p, gen):
        import torch

        from augury.evals.backends.hf import returned_cache

        if not prompt:
            prompt = [self.tok.bos_token_id if self.tok.bos_token_id is not None else 0]
        with torch.no_grad():
            out = self.model(torch.tensor([prompt]), use_cache=True)
            for _ in range(budget):
                tok, lp = _sample(out.logits[0, -1], temperature, top_p, gen)
                yield tok, lp
                out = self.model(torch.tensor([[tok]]), use_cache=True, **{self._cache_arg: returned_cache(out)})

    def score(self, ids, top):
        import torch

        with torch.no_grad():
            logits = self.model(torch.tensor([ids])).logits[0]
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


@dataclass
class _Running:
    job: GenerationJob
    out: asyncio.Queue
    loop: asyncio.AbstractEventLoop
    cancel: threading.Event
    row: object  # the engine's row (augury.model.generate._Row): what the request has been sent, and its sampler
    made: int = 0  # tokens generated and handed to the request


class _BatchWorker:
    """An augury run's worker thread: between decode steps it takes in new jobs, drops cancelled ones and steps
    the engine (continuous batching).

    A step that raises is not every running request's failure: the rows it held are put back to what their requests
    have been sent (the failed step may have chosen tokens it never sent) and each is stepped alone in a fresh
    engine. A row that fails alone is its request's failure (`GenerationFailed`); the others rejoin the batch where
    they were (their cache prefilled again), so their replies go on with no token lost or sent twice. A seeded
    row draws from its generator as it stood after the failed step, so its reply can differ from there.
    """

    def __init__(self, backend: LocalBackend):
        self.backend = backend
        self.engine = self._new_engine()
        self.running: dict[int, _Running] = {}
        self.next_key = 0

    def _new_engine(self):
        from augury.model.generate import Engine

        b = self.backend
        return Engine(b.model.model, b.tokenizer.tok, fallback_id=b.model.eot_id or 0, max_batch=b.max_batch)

    def run(self) -> None:
        while True:
            try:
                self._turn()
            except Exception as err:  # noqa: BLE001 (a failure outside a step: the running requests hear of it, the worker goes on)
                for key in list(self.running):
                    self._fail(key, err)
                self.engine = self._new_engine()

    def _turn(self) -> None:
        jobs = self.backend._jobs
        try:
            item = jobs.get(block=not self.engine.busy())
        except queue.Empty:
            item = None
        while item is not None:
            self._add(*item)
            try:
                item = jobs.get_nowait()
            except queue.Empty:
                item = None
        for key in [k for k, r in self.running.items() if r.cancel.is_set() or r.loop.is_closed()]:
            self.engine.cancel(key)
            self.running.pop(key)
        if not self.engine.busy():
            return
        self.engine.max_batch = self.backend.max_batch  # set after the worker started (LocalBackend.load)
        try:
            events = self.engine.step()
        except Exception:  # noqa: BLE001 (whose failure it is, is found out next)
            self._isolate()
            return
        self._emit(events)

    def _add(self, job: GenerationJob, where, cancel: threading.Event) -> None:
        from augury.model.generate import SamplingParams

        loop, out = where
        key, self.next_key = self.next_key, self.next_key + 1
        try:
            self.engine.add(key, job.prompt_ids[-self.backend.max_context:], SamplingParams(
                max_tokens=job.max_tokens, temperature=job.temperature, top_p=job.top_p, stop=job.stop,
                stop_token_ids=job.stop_token_ids, seed=job.seed, prompt_logprobs=job.prompt_logprobs is not None,
                prompt_top_logprobs=job.prompt_logprobs or 0))
        except Exception as err:  # noqa: BLE001 (the engine refused this job: its request hears why)
            _send(loop, out.put_nowait, GenerationFailed.of(err, 400 if isinstance(err, ValueError) else 500))
            return
        self.running[key] = _Running(job, out, loop, cancel, self.engine.waiting[-1])

    def _isolate(self) -> None:
        """After a failed step: each row it held alone, from what its request has been sent."""
        queued = {id(row) for row in self.engine.waiting}  # rows the step did not reach wait on in order
        self.engine = self._new_engine()
        rejoin, waiting = [], []
        for key in sorted(self.running):
            r = self.running[key]
            if id(r.row) in queued:
                waiting.append(r.row)
                continue
            _rewind(r.row, r.made)
            probe = self._new_engine()
            probe.waiting.append(r.row)
            try:
                events = probe.step()
            except Exception as err:  # noqa: BLE001 (it fails alone: its own failure)
                self._fail(key, err)
                continue
            self._emit(events)
            if key in self.running:
                rejoin.append(r.row)
        self.engine.waiting = rejoin + waiting

    def _fail(self, key: int, err: Exception) -> None:
        r = self.running.pop(key)
        _send(r.loop, r.out.put_nowait, GenerationFailed.of(err))

    def _emit(self, events) -> None:
        batches: dict = {}  # event loop -> [(queue, delta)]: one wake-up per loop per step, not per token
        for event in events:
            r = self.running.get(event.key)
            if r is None:
                continue
            lps = [event.logprob] if r.job.logprobs and event.logprob is not None else []
            ids = [event.token_id] if lps else []
            r.made += event.token_id is not None
            if event.finished:
                g = event.generation
                delta = Delta(text=event.text, logprobs=lps, token_ids=ids, finish_reason=g.finish_reason,
                              prompt_tokens=g.prompt_tokens, completion_tokens=len(g.token_ids),
                              prompt_logprobs=g.prompt_logprobs, prompt_top=g.prompt_top_logprobs)
                self.running.pop(event.key)
            elif event.text or lps:
                delta = Delta(text=event.text, logprobs=lps, token_ids=ids, completion_tokens=r.made)
            else:
                continue
            batches.setdefault(r.loop, []).append((r.out, delta))
        for loop, items in batches.items():
            _send(loop, _deliver, items)


def _rewind(row, sent: int) -> None:
    """Put an engine row back to its first `sent` tokens (a failed step may have chosen one it never sent); its
    text stream is replayed, so what it sends next follows what was sent."""
    del row.ids[sent:]
    del row.logprobs[sent:]
    stream = TextStream(row.stream.decode, row.params.stop)
    for tok in row.ids:
        stream.push(tok)
    row.stream = stream
