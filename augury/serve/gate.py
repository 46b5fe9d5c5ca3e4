"""The gate every request of `augury serve` passes before the model sees it, and the record it leaves.

    gate = Gate(cfg, keys, log, moderator)
    return await gate.gated(request, "/v1/chat/completions", handle)   # handle(ticket, body) -> response

In this order: API key (401), body size and read time (413, 408), JSON object (400), server-wide queue (503);
then, inside the handler, parameters (400), per-key limits (429 with Retry-After, `admit`) and moderation
(`moderate`). Every outcome is one row in the request log, written once: by `gated` for an answer, by the stream
(`close`) for a streaming reply, which also gives its queue slot back. A client's rejections beyond
--log_rejected_per_minute are counted into one row per kind (`RejectedRows`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from dataclasses import dataclass, field

from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse

from augury.serve.config import ServeConfig
from augury.serve.jobs import GenerationFailed
from augury.serve.keys import KeyStore
from augury.serve.limits import Limiter
from augury.serve.moderation import Moderator, Verdict
from augury.serve.requestlog import RejectedRows, RequestLog, RequestRecord
from augury.serve.responses import error_body, short_error
from augury.serve.schema import RequestInvalid

# characters from which the rules check a text beside the event loop (a megabyte takes them half a second)
LARGE_TEXT = 65536


class Refused(Exception):
    """A request answered with an error status before any generation."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", retry_after: int = 0):
        super().__init__(message)
        self.status, self.kind, self.retry_after = status, kind, retry_after


@dataclass
class Ticket:
    """What the log records about one request as it passes the gate."""

    endpoint: str
    client: str = ""  # the client's address
    started: float = field(default_factory=time.perf_counter)
    arrived: float = field(default_factory=time.time)
    key: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    planned_tokens: int = 0  # what the per-key limits hold for it while it runs
    counted: bool = True  # False: the tokens used are unknown (an upstream that reported no usage)
    ttft_ms: float | None = None
    verdicts: list[Verdict] = field(default_factory=list)
    refused: bool = False
    images: int = 0  # image parts in the request
    image_bytes: int = 0  # their files' size in all (the log records this, never the images)
    recorded: bool = False  # its row is made (and being written): the request is logged
    bad_input: bool = False  # refused as bad input once admitted (an image that does not decode): costs nothing

    def record(self, status: int, error: str | None = None) -> RequestRecord:
        self.recorded = True
        cats = sorted({c for v in self.verdicts for c in v.flagged_names()})
        return RequestRecord(endpoint=self.endpoint, status=status, key=self.key, client=self.client or None,
                             ts=self.arrived, latency_ms=(time.perf_counter() - self.started) * 1000,
                             prompt_tokens=self.prompt_tokens,
                             completion_tokens=self.completion_tokens, ttft_ms=self.ttft_ms,
                             flagged=any(v.flagged for v in self.verdicts), refused=self.refused, categories=cats,
                             error=error, images=self.images, image_bytes=self.image_bytes)


class Gate:
    """Keys, body limits, the server-wide queue, per-key limits and moderation, with the request log they write."""

    def __init__(self, cfg: ServeConfig, keys: KeyStore | None, log: RequestLog, moderator: Moderator | None):
        self.cfg, self.keys, self.log, self.moderator = cfg, keys, log, moderator
        self.limiter = Limiter(cfg.limits)
        if cfg.limits.tokens_per_day:  # what each key used today before this server started
            for key, used in log.tokens_since(self.limiter.day_start()).items():
                self.limiter.charge(key or "", used)
        self.queue_slots = asyncio.Semaphore(cfg.max_queued)
        self.rejected = RejectedRows(cfg.log_rejected_per_minute)

    def authenticate(self, request: Request, ticket: Ticket) -> None:
        ticket.client = request.client.host if request.client else ""
        if self.keys is None:
            ticket.key = "(local)"
            return
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            raise Refused(401, "missing API key: send 'Authorization: Bearer KEY'", "authentication_error")
        name = self.keys.lookup(header[7:].strip())
        if name is None:
            raise Refused(401, "invalid API key", "authentication_error")
        ticket.key = name

    async def read_json(self, request: Request) -> dict:
        limit = self.cfg.max_body_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise Refused(413, f"request body over {limit} bytes")

        async def read() -> bytes:
            body = bytearray()
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise Refused(413, f"request body over {limit} bytes")
            return bytes(body)

        try:
            raw = await asyncio.wait_for(read(), self.cfg.body_timeout_s)
        except asyncio.TimeoutError:
            raise Refused(408, f"request body not received within {self.cfg.body_timeout_s:g} s") from None
        try:  # NaN and Infinity are not JSON (Python's reader takes them; an upstream request could not hold them)
            body = json.loads(raw, parse_constant=_not_json)
        except (ValueError, UnicodeDecodeError) as err:
            raise Refused(400, f"body is not valid JSON: {err}") from None
        if _SURROGATE_ESCAPE.search(raw) and _holds_lone_surrogate(body):
            raise Refused(400, "body is not valid JSON: a string holds an unpaired surrogate escape (\\ud800 to "
                               "\\udfff alone), which is no character")
        if not isinstance(body, dict):
            raise Refused(400, "body must be a JSON object")
        return body

    def admit(self, ticket: Ticket, planned_tokens: int) -> None:
        decision = self.limiter.admit(ticket.key or "", planned_tokens)
        if not decision.ok:  # nothing used, nothing charged: its row counts no tokens (a prompt counted to plan)
            ticket.prompt_tokens = ticket.completion_tokens = 0
            raise Refused(decision.status, decision.reason, "rate_limit_error", decision.retry_after_s)
        ticket.planned_tokens = planned_tokens

    def finish(self, ticket: Ticket) -> None:
        """Settle the per-key limits with the tokens the request used (after `admit`, whatever the outcome); what
        it planned when that is unknown, so a reply is never free for want of a count."""
        if ticket.bad_input:  # as any other 400: neither the request nor its tokens count against its key
            self.limiter.give_back(ticket.key or "", ticket.planned_tokens)
            return
        used = ticket.prompt_tokens + ticket.completion_tokens
        if not ticket.counted:
            used = max(used, ticket.planned_tokens)
        self.limiter.finish(ticket.key or "", used, ticket.planned_tokens)

    async def moderate(self, ticket: Ticket, texts: list[str], stage: str, final: bool = True) -> bool:
        """Check texts; True when the policy refuses them. `final=False`: a piece of a streaming reply (rules
        only). A safety grader, or the rules on a large input, runs in a worker thread, so it does not hold up
        other requests' streams."""
        moderator = self.moderator
        if moderator is None or not texts:
            return False
        if final and (moderator.extra is not None or sum(map(len, texts)) > LARGE_TEXT):
            verdicts = await asyncio.to_thread(moderator.check_many, texts, stage, final)
        else:
            verdicts = moderator.check_many(texts, stage, final)
        ticket.verdicts += [v for v in verdicts if v.flagged]  # all the log needs
        return any(v.refused for v in verdicts)

    async def write(self, rec: RequestRecord) -> None:
        """Commit a row in the log's writer thread. The request waits for it (its answer ends after its row, so a
        server killed after answering has lost no row); the event loop, and every other stream, does not. A
        request cancelled meanwhile (its client left) leaves the row to be written all the same."""
        await asyncio.shield(asyncio.wrap_future(self.log.submit(rec)))

    async def write_rejected(self, ticket: Ticket, status: int, error: str) -> None:
        """The row of a request rejected before any generation, within its client's --log_rejected_per_minute
        (beyond it the request is counted into a row written when the minute is over)."""
        for rec in self.rejected.admit(ticket.client, ticket.record(status, error)):
            await self.write(rec)

    async def answer_error(self, ticket: Ticket, err: Refused) -> JSONResponse:
        if err.status < 500 or err.status == 503:  # a rejection (key, body, limits, queue): cheap to make in bulk
            await self.write_rejected(ticket, err.status, str(err))
        else:  # the server or the upstream failed: a row each
            await self.write(ticket.record(err.status, str(err)))
        headers = {"Retry-After": str(err.retry_after)} if err.retry_after else {}
        if err.status in (408, 413):  # the rest of the body may still be on its way: end the connection
            headers["Connection"] = "close"
        return JSONResponse(error_body(str(err), err.kind), status_code=err.status, headers=headers)

    async def close(self, ticket: Ticket, status: int, error: str | None = None) -> None:
        """A streaming reply's end, after its last event: its row in the log, and its queue slot back once the row
        is written (so rows waiting for a locked log count against --max_queued), also when it cannot be: a log
        another process holds locked past the timeout, a full disk."""
        try:
            await self.write(ticket.record(status, error))
        finally:
            self.queue_slots.release()

    async def gated(self, request: Request, endpoint: str, handler):
        """Run `handler(ticket, body)` behind the gate; every outcome is logged once."""
        ticket = Ticket(endpoint)
        try:
            self.authenticate(request, ticket)
            body = await self.read_json(request)
            if self.queue_slots.locked():
                raise Refused(503, "server busy: too many requests in flight", "server_error", 1)
            await self.queue_slots.acquire()
        except Refused as err:
            return await self.answer_error(ticket, err)
        release = True
        try:
            response = await unless_client_leaves(request, handler(ticket, body))
            if isinstance(response, StreamingResponse):
                release = False  # the stream releases its slot and writes its row when it ends
            return response
        except ClientLeft:  # its work is stopped, its limits settled; its row says how far it got
            if not ticket.recorded:
                await self.write(ticket.record(499, "the client left before the end"))
            return JSONResponse(error_body("the client left before the end", "invalid_request_error"), 499)
        except Refused as err:
            return await self.answer_error(ticket, err)
        except RequestInvalid as err:
            return await self.answer_error(ticket, Refused(400, str(err)))
        except GenerationFailed as err:  # one request's job failed in the model's worker
            kind = "invalid_request_error" if err.status == 400 else "server_error"
            return await self.answer_error(ticket, Refused(err.status, str(err), kind))
        except Exception as err:  # noqa: BLE001 (answered and logged, the server keeps serving)
            logging.getLogger(__name__).error("%s %s failed", request.method, endpoint, exc_info=err)
            return await self.answer_error(ticket, Refused(500, short_error(err), "server_error"))
        finally:
            if release:
                self.queue_slots.release()


# a \uD800-\uDFFF escape: half of a pair (an emoji) or a lone one, which no tokenizer or UTF-8 encoder takes
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _holds_lone_surrogate(body) -> bool:
    try:
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _not_json(name: str):
    raise ValueError(f"{name} is not a JSON value")


class ClientLeft(Exception):
    """The client closed its connection before its answer was ready."""


async def unless_client_leaves(request: Request, work):
    """`await work`, unless the client closes its connection first (a client's timeout): then the work is cancelled
    (a local model's generation stops at its next step, an upstream request is closed) and ClientLeft raised, so a
    reply no one will read does not go on to max_tokens holding a slot and charging its key."""
    job, gone = asyncio.ensure_future(work), asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({job, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not job.done():
            job.cancel()
            await asyncio.gather(job, return_exceptions=True)  # its `finally`s settle the limits
    if job.cancelled():
        raise ClientLeft
    return job.result()


async def _disconnected(request: Request) -> None:
    """Returns once the client has closed its connection. The body has been read, so the server's next message is
    the disconnect; anything else (a server that speaks otherwise) ends the watch, not the request."""
    if (await request.receive())["type"] != "http.disconnect":
        await asyncio.Event().wait()
