"""A local model's batching worker when a step runs out of memory: that depends on how many rows the step holds,
so the rows are retried in smaller batches (halving), each reply goes on where it was, the number of failed steps
stays small, and a request too big for memory even alone fails alone."""

from __future__ import annotations

import asyncio

import pytest
import torch

FITS = 2  # rows a forward pass holds before it runs out of memory
TOO_LONG = 100  # a prefill this wide runs out of memory even alone


class SmallMemory:
    """The run's model on a device with little memory: a forward pass over more than FITS rows (or a prefill
    wider than TOO_LONG) raises torch.OutOfMemoryError, as a CUDA allocation would (or `error`)."""

    def __init__(self, model, error=None):
        self._model = model
        self.error = error or (lambda: torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
        self.fits = FITS
        self.fits_after = 0  # rows that fit once a pass has run out of memory (memory another process held is free)
        self.ooms = 0
        self.widest = 0  # most rows a pass that succeeded held

    def __getattr__(self, name):
        return getattr(self._model, name)

    def __call__(self, ids, **kw):
        if ids.shape[0] > self.fits or ids.shape[1] > TOO_LONG:
            self.ooms += 1
            self.fits = self.fits_after or self.fits
            raise self.error()
        self.widest = max(self.widest, ids.shape[0])
        return self._model(ids, **kw)


def _backend(tiny_run, monkeypatch, error=None):
    import augury.model.run
    from augury.serve.backends import LocalBackend

    load_run = augury.model.run.load_run

    def small_run(*args, **kw):
        model, tok, cfg = load_run(*args, **kw)
        return SmallMemory(model, error), tok, cfg

    monkeypatch.setattr(augury.model.run, "load_run", small_run)
    return LocalBackend.load(str(tiny_run), max_batch=8)


async def _collect(backend, job):
    return [delta async for delta in backend.stream(job)]


def _check(deltas, backend, n: int) -> None:
    ids = [t for d in deltas for t in d.token_ids]
    assert deltas[-1].finish_reason == "length" and deltas[-1].completion_tokens == n == len(ids)
    assert "".join(d.text for d in deltas) == backend.tokenizer.tok.decode(ids)  # each token sent once, in order


# what PyTorch raises when memory runs out: OutOfMemoryError for CUDA; a plain RuntimeError for a CPU allocation
# (this message is torch's own) and on some devices and versions (MPS, a CUDA error raised as such)
OUT_OF_MEMORY = {
    "cuda": lambda: torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    "cpu": lambda: RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
                                "memory: you tried to allocate 35184372088832 bytes. Error code 12 (Cannot allocate "
                                "memory)"),
    "mps": lambda: RuntimeError("MPS backend out of memory (MPS allocated: 17.00 GB, other allocations: 1.00 GB, "
                                "max allowed: 18.13 GB). Tried to allocate 256.00 MB on private pool."),
    "cuda-error": lambda: RuntimeError("CUDA error: out of memory\nCUDA kernel errors might be asynchronously "
                                       "reported at some other API call"),
}


@pytest.mark.parametrize("device", list(OUT_OF_MEMORY))
def test_a_batch_that_runs_out_of_memory_is_retried_in_smaller_batches(tiny_run, monkeypatch, device):
    from augury.serve.backends import GenerationJob

    backend = _backend(tiny_run, monkeypatch, OUT_OF_MEMORY[device])
    jobs = [GenerationJob([10 + i, 11, 12], max_tokens=30, temperature=1.0, seed=i, logprobs=True) for i in range(8)]

    async def together():
        return await asyncio.gather(*(_collect(backend, job) for job in jobs))

    for deltas in asyncio.run(together()):
        _check(deltas, backend, 30)
    model = backend.model.model
    assert model.widest == FITS
    assert model.ooms <= 4  # 8 rows, then 4, then 2: not a failed step for each token
    later = asyncio.run(_collect(backend, GenerationJob([7, 8], max_tokens=5, logprobs=True)))
    _check(later, backend, 5)


def test_a_request_too_big_for_memory_alone_fails_alone(tiny_run, monkeypatch):
    from augury.serve.backends import GenerationFailed, GenerationJob

    backend = _backend(tiny_run, monkeypatch)

    async def scenario():
        fine = [asyncio.create_task(_collect(backend, GenerationJob([10 + i], max_tokens=20, logprobs=True)))
                for i in range(2)]
        try:
            await _collect(backend, GenerationJob([9] * (TOO_LONG + 1), max_tokens=5))
        except GenerationFailed as err:
            return err, await asyncio.gather(*fine)
        raise AssertionError("the request too big for memory did not fail")

    err, replies = asyncio.run(scenario())
    assert err.status == 500 and "OutOfMemoryError" in str(err)
    for deltas in replies:
        _check(deltas, backend, 20)
    assert backend.model.model.ooms <= 4


def test_the_batch_grows_back_after_steps_that_fit(tiny_run, monkeypatch):
    from augury.serve.backends import GenerationJob
    from augury.serve.batching import BatchWorker

    monkeypatch.setattr(BatchWorker, "REGROW_STEPS", 4)
    backend = _backend(tiny_run, monkeypatch)
    backend.model.model.fits_after = 8  # the memory short at first is there again after the first failure
    jobs = [GenerationJob([10 + i, 11], max_tokens=40, logprobs=True) for i in range(8)]

    async def together():
        return await asyncio.gather(*(_collect(backend, job) for job in jobs))

    for deltas in asyncio.run(together()):
        _check(deltas, backend, 40)
    assert backend.model.model.ooms == 1 and backend.model.model.widest == 8


@pytest.mark.parametrize("message", ["Expected all tensors to be on the same device", "memory format is not supported",
                                     "index out of range in self"])
def test_other_runtime_errors_are_not_taken_for_out_of_memory(message):
    from augury.serve.batching import out_of_memory

    assert not out_of_memory(RuntimeError(message)) and not out_of_memory(ValueError("out of memory"))
    assert all(out_of_memory(make()) for make in OUT_OF_MEMORY.values())
