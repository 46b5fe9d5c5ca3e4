"""The FastAPI application: the OpenAI API shape with a safety layer in front of the model.

    app = create_app(cfg, backend, keys=KeyStore.load(...), log=RequestLog(...))
    uvicorn.run(app, host=cfg.host, port=cfg.port)

Every request passes the same gate (`augury.serve.gate`: key, body, queue, per-key limits, input moderation, a
refusal in the desired style with finish_reason "content_filter"); then generation here, with the output checked
as it streams, or the upstream server in gateway mode (`augury.serve.gateway`). Each answered request, whatever
its status, is one row in the request log.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from augury.serve.config import ServeConfig
from augury.serve.gate import Gate, Refused, Ticket
from augury.serve.gateway import UpstreamBackend, UpstreamError, estimated_tokens, proxy
from augury.serve.images import ImageQuestion, chat_prompt, check_prompts, decoded, image_question
from augury.serve.jobs import Delta, GenerationFailed, GenerationJob
from augury.serve.keys import KeyStore
from augury.serve.moderation import ModerationPolicy, Moderator, StreamWindow
from augury.serve.requestlog import RequestLog
from augury.serve.responses import (
    add_logprobs,
    chat_logprobs,
    error_body,
    moderation_body,
    new_id,
    refusal_events,
    reply_body,
    sse,
    stream_chunk,
    usage_body,
    usage_chunk,
)
from augury.serve.schema import ChatRequest, CompletionRequest, RequestInvalid, moderation_texts, parse_request

CHAT_PAGE = Path(__file__).with_name("chat.html")


def create_app(cfg: ServeConfig, backend, keys: KeyStore | None, log: RequestLog,
               moderator: Moderator | None = None) -> FastAPI:
    if moderator is None and cfg.moderation:
        moderator = Moderator(ModerationPolicy.load(cfg.policy or None))
    gate = Gate(cfg, keys, log, moderator)
    moderate = gate.moderate

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        for rec in gate.rejected.flush():  # the rejections counted in a minute not yet over
            await gate.write(rec)

    app = FastAPI(title="augury serve", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    if cfg.trusted_proxy_list():
        # a client's address (what its rejected rows are bounded by) is X-Forwarded-For's last address that is not
        # a trusted proxy, when the connection comes from one; anyone else's header is ignored
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=cfg.trusted_proxy_list())

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """A path or method the API does not have (404, 405): the API's error shape; under /v1/ also a row in
        the log, with the key's name when a valid one was sent (who probes for endpoints), but not a browser's
        /favicon.ico."""
        message = f"{exc.detail}: {request.method} {request.url.path}"
        if request.url.path.startswith("/v1/"):
            ticket = Ticket(request.url.path)
            with contextlib.suppress(Refused):
                gate.authenticate(request, ticket)
            await gate.write_rejected(ticket, exc.status_code, message)
        return JSONResponse(error_body(message, "invalid_request_error"), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    # ---- endpoints ---------------------------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse)
    async def chat_page() -> HTMLResponse:
        return HTMLResponse(CHAT_PAGE.read_text(encoding="utf-8"))

    async def text_tokens(texts: list[str]) -> int:
        """Texts' tokens as the served model counts them; in gateway mode (no tokenizer here) one per 4 bytes."""
        if isinstance(backend, UpstreamBackend):
            return estimated_tokens(texts)
        return sum(len(ids) for ids in await backend.off_loop(lambda: [backend.encode(t) for t in texts]))

    async def served_models() -> list[dict]:
        """The local model, or in gateway mode the upstream's (the names it answers to)."""
        if not isinstance(backend, UpstreamBackend):
            return [{"id": backend.model_id, "object": "model", "created": 0, "owned_by": "augury"}]
        try:
            return await backend.models()
        except UpstreamError as err:
            raise Refused(err.gateway_status, str(err), "upstream_error", err.retry_after) from None

    @app.get("/v1/models")
    async def models(request: Request):
        ticket = Ticket("/v1/models")
        try:
            gate.authenticate(request, ticket)
            data = await served_models()
        except Refused as err:
            return await gate.answer_error(ticket, err)
        await gate.write(ticket.record(200))
        return {"object": "list", "data": data}

    @app.get("/v1/models/{model:path}")
    async def model(request: Request, model: str):
        ticket = Ticket("/v1/models/{model}")
        try:
            gate.authenticate(request, ticket)
            found = [m for m in await served_models() if m["id"] == model]
            if not found:
                raise Refused(404, f"the model {model!r} does not exist on this server")
        except Refused as err:
            return await gate.answer_error(ticket, err)
        await gate.write(ticket.record(200))
        return found[0]

    @app.post("/v1/moderations")
    async def moderations(request: Request):
        async def handle(ticket: Ticket, body: dict):
            texts = moderation_texts(body.get("input"))
            if moderator is None:
                raise Refused(400, "moderation is switched off on this server")
            if moderator.extra is not None:  # a grader (a judge model, say) reads every text: charged as a prompt
                ticket.prompt_tokens = await text_tokens(texts)
            gate.admit(ticket, ticket.prompt_tokens)
            try:
                verdicts = await asyncio.to_thread(moderator.check_many, texts, "none")
            finally:
                gate.finish(ticket)
            ticket.verdicts = verdicts
            await gate.write(ticket.record(200))
            return moderation_body(moderator.name, verdicts)

        return await gate.gated(request, "/v1/moderations", handle)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        async def handle(ticket: Ticket, body: dict):
            req = parse_request(ChatRequest, body, cfg)
            question = await image_question(backend, req, cfg, ticket)  # None without image parts
            # the conversation is read as one text, the way the model reads it: a request split over messages is
            # still the request (its images are not text: moderation reads the text parts)
            texts = ["\n".join(m.text() for m in req.messages)]
            if isinstance(backend, UpstreamBackend):
                return await proxy(gate, backend, ticket, req, body, texts, chat=True, refuse=finish_refusal)
            if req.top_logprobs:
                raise RequestInvalid("top_logprobs: a local model returns each generated token's own log-prob only "
                                     "(logprobs true), not the alternatives")
            prompt = await chat_prompt(backend, req, question)
            return await generate(ticket, req, [prompt], texts, chat=True, images=question)

        return await gate.gated(request, "/v1/chat/completions", handle)

    @app.post("/v1/completions")
    async def completions(request: Request):
        async def handle(ticket: Ticket, body: dict):
            req = parse_request(CompletionRequest, body, cfg)
            prompts = req.prompts()
            if isinstance(backend, UpstreamBackend):
                if not all(isinstance(p, str) for p in prompts):
                    raise RequestInvalid("prompt: token-id prompts are served by a local model only (the gateway "
                                         "cannot read them to moderate)")
                return await proxy(gate, backend, ticket, req, body, prompts, chat=False,
                                   refuse=finish_refusal)
            if req.made() > req.n:
                raise RequestInvalid("best_of: a local model returns every completion it makes (n), without ranking "
                                     "more; best_of above n is served in gateway mode only")
            ids = await backend.off_loop(lambda: [backend.encode(p) if isinstance(p, str) else p for p in prompts])
            if any(max(q, default=0) >= backend.vocab_size for q in ids):
                raise RequestInvalid(f"prompt: token ids must be below the vocabulary size {backend.vocab_size}")
            texts = await backend.off_loop(lambda: [p if isinstance(p, str) else backend.decode(p) for p in prompts])
            if req.stream and (req.echo or req.logprobs is not None):
                raise RequestInvalid("stream: echo and logprobs are served in whole replies only (stream false)")
            if req.echo and req.logprobs is not None and any(not q or len(q) >= backend.max_context for q in ids):
                raise RequestInvalid(f"prompt: with echo and logprobs a prompt must be 1 to {backend.max_context - 1}"
                                     " tokens (the model's context)")
            return await generate(ticket, req, ids, texts, chat=False)

        return await gate.gated(request, "/v1/completions", handle)

    # ---- generation --------------------------------------------------------------------------------------------
    async def generate(ticket: Ticket, req, prompts: list[list[int]], texts: list[str], chat: bool,
                       images: ImageQuestion | None = None):
        """Generate req.n choices for each prompt (token ids); `texts` are what input moderation reads (and, for
        completions, each prompt's text for echo). `images`: the images of a question about images (one prompt),
        decoded once the request is admitted, before moderation reads its text (an image that does not decode
        costs its key nothing, and no grader read the text for it)."""
        check_prompts(backend, prompts, images)
        ticket.prompt_tokens = sum(len(p) for p in prompts)
        gate.admit(ticket, ticket.prompt_tokens + req.max_tokens * req.n * len(prompts))
        finished = False
        try:
            pixels = await decoded(images, ticket)
            if await moderate(ticket, texts, "input"):
                ticket.refused = True
                return await finish_refusal(ticket, req, chat, req.n * len(prompts))
            stop_ids = list(backend.chat_stop_ids) if chat else list(getattr(backend, "eos_ids", []))
            logprobs = (0 if req.logprobs else None) if chat else req.logprobs
            scored = logprobs if not chat and req.echo else None  # echo with logprobs scores the prompt
            jobs = [GenerationJob(prompt, req.max_tokens, req.temperature, req.top_p, req.stop_list(), stop_ids,
                                  None if req.seed is None else (req.seed + i) % 2**63, logprobs=logprobs is not None,
                                  prompt_logprobs=scored, images=pixels)
                    for prompt in prompts for i in range(req.n)]
            if req.stream:
                finished = True  # the stream finishes the request
                return StreamingResponse(stream_reply(ticket, req, jobs, chat), media_type="text/event-stream")
            return await whole_reply(ticket, req, jobs, texts, chat)
        finally:
            if not finished:
                gate.finish(ticket)

    async def checked(job: GenerationJob, ticket: Ticket):
        """One choice's deltas, the output checked as it grows; a flagged delta is replaced by the end."""
        text, deadline, last = "", time.perf_counter() + cfg.request_timeout_s, None
        window = StreamWindow(moderator.policy.stream_window) if moderator is not None else None
        async with contextlib.aclosing(backend.stream(job)) as gen:
            while True:
                overdue = False
                try:
                    if last is None:
                        delta = await first_delta(gen, deadline)
                    else:  # the wait for the next token ends at the deadline too (a stuck or very slow step)
                        delta = await asyncio.wait_for(gen.__anext__(), max(0.0, deadline - time.perf_counter()))
                except StopAsyncIteration:
                    return
                except asyncio.TimeoutError:
                    # cancelling the wait closed the stream, so the worker drops the job (as for a client that
                    # leaves); the reply ends with what it has, as one cut at a delta that came late
                    delta, overdue = Delta(completion_tokens=last.completion_tokens, held=last.held), True
                last = delta
                if ticket.ttft_ms is None:
                    ticket.ttft_ms = (time.perf_counter() - ticket.started) * 1000
                if delta.finish_reason is None and (overdue or time.perf_counter() > deadline):
                    # the reply ends here, checked whole, with the text held back as a possible start of a stop
                    # string (it is not one: a stop string would have ended the reply)
                    delta = dataclasses.replace(delta, text=delta.text + delta.held, held="", finish_reason="length")
                text += delta.text
                # while streaming: the new text with the window before it (rules); at the end: the whole reply
                final = delta.finish_reason is not None
                seen = [text] if final and text else [window.add(delta.text)] if delta.text and window else []
                if await moderate(ticket, seen, "output", final):
                    ticket.refused = True
                    yield Delta(finish_reason="content_filter", completion_tokens=delta.completion_tokens)
                    return
                yield delta
                if delta.finish_reason is not None:
                    return

    async def first_delta(gen, deadline: float) -> Delta:
        """A reply's first delta, or GenerationFailed (504) at the deadline: a reply that has not begun by then (it
        waited behind --max_batch others) is a timeout error, not a reply of the one token it would get there."""
        try:
            delta = await asyncio.wait_for(gen.__anext__(), max(0.0, deadline - time.perf_counter()))
        except asyncio.TimeoutError:
            delta = None
        if delta is None or (delta.finish_reason is None and time.perf_counter() > deadline):
            raise GenerationFailed(f"timed out: the reply did not begin within --request_timeout_s "
                                   f"({cfg.request_timeout_s:g} s); the server is busy, retry later", 504)
        return delta

    async def run_job(job: GenerationJob, ticket: Ticket, index: int, sink: asyncio.Queue) -> None:
        try:
            async with contextlib.aclosing(checked(job, ticket)) as deltas:
                async for delta in deltas:
                    await sink.put((index, delta))
        except Exception as err:  # noqa: BLE001 (the reader raises it: a choice that failed ends the request)
            await sink.put((index, err))

    async def choices(ticket: Ticket, jobs: list[GenerationJob]):
        """(choice index, Delta) as the choices generate; one choice is read directly, several through tasks.
        ticket.completion_tokens follows the tokens made so far, so a reply cut short is counted too."""
        made = [0] * len(jobs)

        def count(index: int, delta: Delta) -> None:
            ticket.completion_tokens += delta.completion_tokens - made[index]
            made[index] = delta.completion_tokens

        if len(jobs) == 1:
            async with contextlib.aclosing(checked(jobs[0], ticket)) as deltas:
                async for delta in deltas:
                    count(0, delta)
                    yield 0, delta
            return
        sink: asyncio.Queue = asyncio.Queue()
        tasks = [asyncio.create_task(run_job(job, ticket, i, sink)) for i, job in enumerate(jobs)]
        try:
            open_jobs = len(jobs)
            while open_jobs:
                index, delta = await sink.get()
                if isinstance(delta, Exception):
                    raise delta
                count(index, delta)
                if delta.finish_reason is not None:
                    open_jobs -= 1
                yield index, delta
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            failed = [t.exception() for t in tasks if not t.cancelled() and t.exception() is not None]
            if failed:
                raise failed[0]

    async def finish_refusal(ticket: Ticket, req, chat: bool, n_choices: int):
        refusal = moderator.policy.refusal
        if req.stream:
            async def events():
                try:
                    for event in refusal_events(backend.model_id, chat, n_choices, refusal,
                                                usage(ticket) if req.include_usage() else None):
                        yield event
                finally:
                    await gate.close(ticket, 200)
            return StreamingResponse(events(), media_type="text/event-stream")
        await gate.write(ticket.record(200))
        return whole(ticket, chat, [(refusal, "content_filter", [])] * n_choices)

    async def whole_reply(ticket: Ticket, req, jobs, prompt_texts: list[str], chat: bool):
        texts = [""] * len(jobs)
        finish = ["length"] * len(jobs)
        lps: list[list[float]] = [[] for _ in jobs]
        ids: list[list[int]] = [[] for _ in jobs]
        last: list[Delta | None] = [None] * len(jobs)
        async with contextlib.aclosing(choices(ticket, jobs)) as stream:
            async for index, delta in stream:
                texts[index] += delta.text
                lps[index] += delta.logprobs
                ids[index] += delta.token_ids
                if delta.finish_reason:
                    finish[index], last[index] = delta.finish_reason, delta
        for i in (i for i, f in enumerate(finish) if f == "content_filter"):  # nothing of the flagged reply is sent
            texts[i], lps[i], ids[i] = moderator.policy.refusal, [], []
        if chat and req.logprobs:
            body = whole(ticket, chat, list(zip(texts, finish, lps)))
            for i, choice in enumerate(body["choices"]):
                choice["logprobs"] = chat_logprobs(ids[i], lps[i], backend.decode)
        elif not chat and (req.echo or req.logprobs is not None):
            body = add_logprobs(whole(ticket, False, list(zip(texts, finish, lps))), req,
                                [job.prompt_ids for job in jobs], prompt_texts, texts, lps, ids, last, backend.decode)
        else:
            body = whole(ticket, chat, list(zip(texts, finish, lps)))
        await gate.write(ticket.record(200))
        return body

    async def stream_reply(ticket: Ticket, req, jobs, chat: bool):
        rid, created, status, error = new_id(chat), int(time.time()), 499, "the client left before the end"
        try:
            if chat:
                for i in range(len(jobs)):
                    yield sse(chunk(rid, created, chat, i, None, None, role=True))
            async with contextlib.aclosing(choices(ticket, jobs)) as stream:
                async for index, delta in stream:
                    if delta.text or delta.finish_reason or delta.logprobs:
                        event = chunk(rid, created, chat, index, delta.text, delta.finish_reason)
                        if chat and req.logprobs:
                            event["choices"][0]["logprobs"] = chat_logprobs(delta.token_ids, delta.logprobs,
                                                                            backend.decode)
                        yield sse(event)
            if req.include_usage():
                yield sse(usage_chunk(backend.model_id, rid, created, chat, usage(ticket)))
            status, error = 200, None
            yield "data: [DONE]\n\n"
        except Exception as err:  # noqa: BLE001 (headers are sent: the error goes in the stream)
            failed = GenerationFailed.of(err)
            status, error = failed.status, str(failed)
            yield sse(error_body(error, "invalid_request_error" if status == 400 else "server_error"))
        finally:
            gate.finish(ticket)
            await gate.close(ticket, status, error)

    def usage(ticket: Ticket) -> dict:
        return usage_body(ticket.prompt_tokens, ticket.completion_tokens)

    def whole(ticket: Ticket, chat: bool, parts) -> dict:
        return reply_body(backend.model_id, chat, parts, usage(ticket))

    def chunk(rid, created, chat, index, text, finish, role=False) -> dict:
        return stream_chunk(backend.model_id, rid, created, chat, index, text, finish, role)

    app.state.log, app.state.limiter, app.state.moderator = log, gate.limiter, moderator
    app.state.rejected, app.state.backend = gate.rejected, backend
    return app
