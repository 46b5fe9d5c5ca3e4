"""A local model's batching worker when the engine raises: the request whose own job fails gets one clear error
(400 for a job the engine refuses, 500 with one short line otherwise), the requests running beside it finish as if
nothing happened (no token lost or sent twice), and the worker serves later requests."""

from __future__ import annotations

import asyncio

import pytest

from augury.serve.limits import LimitsConfig

POISON_LONG = 230  # a prompt this long fails the forward pass once it reaches position POISON_LONG + 3
MARKER = [3, 4, 5, 6]  # a prompt holding this run of ids fails its prefill


class Poisoned:
    """The run's model, failing the way a bug one input trips does: the whole forward pass raises (with a long
    multi-line message, as torch's C++ errors have) whenever one of its rows is the poisoned request."""

    def __init__(self, model):
        self._model = model

    def __getattr__(self, name):
        return getattr(self._model, name)

    def __call__(self, ids, **kw):
        rows = ids.tolist()
        marked = ids.shape[1] > 1 and any(row[i:i + 4] == MARKER for row in rows for i in range(len(row) - 3))
        if marked or int(kw["positions"].max()) >= POISON_LONG + 3:
            raise RuntimeError("the forward pass failed for one row\nException raised from at::native::index\n"
                               "frame #0: c10::Error::Error(...)")
        return self._model(ids, **kw)


def _backend(tiny_run, monkeypatch):
    import augury.model.run
    from augury.serve.backends import LocalBackend

    load_run = augury.model.run.load_run

    def poisoned_run(*args, **kw):
        model, tok, cfg = load_run(*args, **kw)
        return Poisoned(model), tok, cfg

    monkeypatch.setattr(augury.model.run, "load_run", poisoned_run)
    return LocalBackend.load(str(tiny_run))


async def _collect(backend, job, started: asyncio.Event | None = None):
    deltas = []
    async for delta in backend.stream(job):
        deltas.append(delta)
        if started is not None:
            started.set()
    return deltas


@pytest.mark.parametrize("poison", ["prefill", "decode"])
def test_a_job_that_fails_the_engine_fails_alone(tiny_run, poison, monkeypatch, caplog):
    from augury.serve.backends import GenerationFailed, GenerationJob

    backend = _backend(tiny_run, monkeypatch)
    healthy = GenerationJob([10, 11, 12], max_tokens=200, temperature=1.0, seed=5, logprobs=True)
    bad_prompt = MARKER * 5 if poison == "prefill" else [9] * POISON_LONG
    bad = GenerationJob(bad_prompt, max_tokens=20, temperature=0.0)

    async def scenario():
        started = asyncio.Event()
        running = asyncio.create_task(_collect(backend, healthy, started))
        await started.wait()  # the healthy request is mid-generation when the bad one joins its batch
        with pytest.raises(GenerationFailed) as failed:
            await _collect(backend, bad)
        return await running, failed.value

    deltas, err = asyncio.run(scenario())
    assert err.status == 500 and "RuntimeError" in str(err)
    assert "\n" not in str(err) and "frame #0" not in str(err)  # one short line, no traceback
    ids = [t for d in deltas for t in d.token_ids]
    assert deltas[-1].finish_reason == "length" and deltas[-1].completion_tokens == 200 == len(ids)
    assert "".join(d.text for d in deltas) == backend.tokenizer.tok.decode(ids)  # each token sent once, in order
    assert backend._worker.is_alive()
    assert any(r.exc_info and "frame #0" in str(r.exc_info[1]) for r in caplog.records)  # the whole error: logged
    later = asyncio.run(_collect(backend, GenerationJob([7, 8], max_tokens=5, temperature=0.0)))
    assert later[-1].finish_reason == "length" and later[-1].completion_tokens == 5


def test_a_job_the_engine_refuses_is_a_400_for_that_job_only(tiny_run, monkeypatch):
    from augury.serve.backends import GenerationFailed, GenerationJob

    backend = _backend(tiny_run, monkeypatch)

    async def both():
        refused = backend.stream(GenerationJob([10], max_tokens=3, top_p=1.5))  # top_p over 1: the engine's check
        fine = asyncio.create_task(_collect(backend, GenerationJob([10], max_tokens=3)))
        with pytest.raises(GenerationFailed) as failed:
            async for _ in refused:
                pass
        return failed.value, await fine

    err, deltas = asyncio.run(both())
    assert err.status == 400 and "top_p" in str(err)
    assert deltas[-1].completion_tokens == 3


def test_the_server_answers_a_failed_job_with_a_short_500_and_goes_on(tiny_run, tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    from augury.serve.app import create_app
    from augury.serve.config import ServeConfig
    from augury.serve.requestlog import RequestLog

    cfg = ServeConfig(model=str(tiny_run), log=str(tmp_path / "r.db"),
                      limits=LimitsConfig(requests_per_minute=600, burst=100))
    client = TestClient(create_app(cfg, _backend(tiny_run, monkeypatch), None, RequestLog(cfg.log)))
    resp = client.post("/v1/completions", json={"prompt": MARKER * 3, "max_tokens": 4})
    assert resp.status_code == 500
    error = resp.json()["error"]
    assert error["type"] == "server_error" and "\n" not in error["message"] and "frame #0" not in error["message"]
    stream = client.post("/v1/completions", json={"prompt": MARKER * 3, "max_tokens": 4, "stream": True}).text
    assert "frame #0" not in stream and "data: [DONE]" not in stream
    assert client.post("/v1/completions", json={"prompt": [7, 8], "max_tokens": 4}).status_code == 200
