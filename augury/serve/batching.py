"""The worker thread of a local augury run: continuous batching of the server's jobs over one
`augury.model.generate.Engine`.

    threading.Thread(target=BatchWorker(backend).run, daemon=True).start()   # LocalBackend does this

Between decode steps the worker takes in new jobs, drops the ones whose client went away and steps the engine; each
step's deltas reach the requests' event loops, one wake-up per loop per step. A step that runs out of memory is
retried with half its rows batched; any other step that raises fails only the request that causes it (see
`BatchWorker`).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from augury.model.textstream import TextStream
from augury.serve.jobs import Delta, GenerationFailed, GenerationJob, send_to

if TYPE_CHECKING:
    from augury.serve.backends import LocalBackend

log = logging.getLogger(__name__)  # a failure's traceback, for the operator (the client gets one line)


@dataclass
class _Running:
    job: GenerationJob
    out: asyncio.Queue
    loop: asyncio.AbstractEventLoop
    cancel: threading.Event
    row: object  # the engine's row (augury.model.generate._Row): what the request has been sent, and its sampler
    made: int = 0  # tokens generated and handed to the request


class BatchWorker:
    """An augury run's worker thread: between decode steps it takes in new jobs, drops cancelled ones and steps
    the engine (continuous batching).

    A step that raises is not every running request's failure: the rows it held are put back to what their requests
    have been sent (the failed step may have chosen tokens it never sent) and each is stepped alone in a fresh
    engine. A row that fails alone is its request's failure (`GenerationFailed`); the others rejoin the batch where
    they were (their cache prefilled again), so their replies go on with no token lost or sent twice. A seeded
    row draws from its generator as it stood after the failed step, so its reply can differ from there.

    A step that runs out of memory (`out_of_memory`: torch.OutOfMemoryError, or torch's RuntimeError for a CPU
    allocation or another device's memory) failed for how many rows it held, not for one of
    them: its rows are put back the same way and wait, and the worker batches at most half as many from then on
    (`cap`), halving again at each such step down to one row, where a row that still runs out of memory is
    isolated as above (its request fails alone). The cap doubles back after `REGROW_STEPS` steps without one, and
    goes once the worker is idle, so a burst costs a few failed steps, not one per token.
    """

    REGROW_STEPS = 256

    def __init__(self, backend: LocalBackend):
        self.backend = backend
        self.engine = self._new_engine()
        self.running: dict[int, _Running] = {}
        self.next_key = 0
        self.cap: int | None = None  # most rows batched after a step ran out of memory (None: --max_batch)
        self.fine_steps = 0  # steps since the cap was set or last doubled

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
            self.cap = None  # idle: the next burst starts from --max_batch again
            return
        # --max_batch is set after the worker started (LocalBackend.load)
        self.engine.max_batch = min(self.backend.max_batch, self.cap or self.backend.max_batch)
        try:
            events = self.engine.step()
        except Exception as err:  # noqa: BLE001 (whose failure it is, is found out next)
            stepped = self._stepped()
            if out_of_memory(err) and len(stepped) > 1:
                self.cap = max(1, len(stepped) // 2)
                log.warning("a generation step of %d rows ran out of memory; batching at most %d from now",
                            len(stepped), self.cap)
                self._requeue(stepped)
                return
            log.warning("a generation step failed (%s); its requests are retried one at a time", err)
            self._isolate()
            return
        self._regrow()
        self._emit(events)

    def _regrow(self) -> None:
        if self.cap is None:
            return
        self.fine_steps += 1
        if self.fine_steps >= self.REGROW_STEPS:
            self.cap, self.fine_steps = (None if 2 * self.cap >= self.backend.max_batch else 2 * self.cap), 0

    def _stepped(self) -> list[int]:
        """After a failed step: the keys of the rows it held (running, or joining), in order."""
        queued = {id(row) for row in self.engine.waiting}  # rows the step did not reach
        return [key for key in sorted(self.running) if id(self.running[key].row) not in queued]

    def _requeue(self, stepped: list[int]) -> None:
        """After a step that ran out of memory: a fresh engine, with the rows it held put back to what their
        requests have been sent, waiting ahead of the rows that were waiting already."""
        waiting = self.engine.waiting
        self.engine = self._new_engine()  # (it allocates at its first step, when the failed step's tensors are gone)
        self.fine_steps = 0
        for key in stepped:
            _rewind(self.running[key].row, self.running[key].made)
        self.engine.waiting = [self.running[key].row for key in stepped] + waiting

    def _add(self, job: GenerationJob, where, cancel: threading.Event) -> None:
        import torch

        from augury.model.generate import SamplingParams

        loop, out = where
        key, self.next_key = self.next_key, self.next_key + 1
        try:
            images = None if job.images is None else torch.from_numpy(job.images)
            self.engine.add(key, job.prompt_ids[-self.backend.max_context:], SamplingParams(
                max_tokens=job.max_tokens, temperature=job.temperature, top_p=job.top_p, stop=job.stop,
                stop_token_ids=job.stop_token_ids, seed=job.seed, prompt_logprobs=job.prompt_logprobs is not None,
                prompt_top_logprobs=job.prompt_logprobs or 0), images=images)
        except Exception as err:  # noqa: BLE001 (the engine refused this job: its request hears why)
            send_to(loop, out.put_nowait, GenerationFailed.of(err, 400 if isinstance(err, ValueError) else 500))
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
        log.error("a request failed in generation", exc_info=err)
        r = self.running.pop(key)
        send_to(r.loop, r.out.put_nowait, GenerationFailed.of(err))

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
            else:  # also for a token whose text is held back: the request sees it has begun, and what is held
                stream = r.row.stream
                delta = Delta(text=event.text, logprobs=lps, token_ids=ids, completion_tokens=r.made,
                              held=stream.text[stream.sent:])
            batches.setdefault(r.loop, []).append((r.out, delta))
        for loop, items in batches.items():
            send_to(loop, _deliver, items)


# how PyTorch words running out of memory when it raises a plain RuntimeError, not torch.OutOfMemoryError: a CPU
# allocation ("DefaultCPUAllocator: can't allocate memory", "... not enough memory"), MPS ("MPS backend out of
# memory"), a CUDA error ("CUDA error: out of memory"), other backends ("XPU out of memory")
_OUT_OF_MEMORY = ("out of memory", "defaultcpuallocator: can't allocate memory",
                  "defaultcpuallocator: not enough memory")


def out_of_memory(err: BaseException) -> bool:
    """Whether a failed step ran out of memory (so it failed for how many rows it held, not for one of them)."""
    import torch

    if isinstance(err, torch.OutOfMemoryError):
        return True
    return isinstance(err, RuntimeError) and any(words in str(err).lower() for words in _OUT_OF_MEMORY)


def _rewind(row, sent: int) -> None:
    """Put an engine row back to its first `sent` tokens (a failed step may have chosen one it never sent); its
    text stream is replayed, so what it sends next follows what was sent."""
    del row.ids[sent:]
    del row.logprobs[sent:]
    stream = TextStream(row.stream.decode, row.params.stop)
    for tok in row.ids:
        stream.push(tok)
    row.stream = stream


def _deliver(items) -> None:
    for out, delta in items:
        out.put_nowait(delta)
