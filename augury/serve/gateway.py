"""Gateway mode of `augury serve --upstream URL`: the request goes on to another OpenAI-compatible server (vLLM,
another augury serve), and its answer comes back through the same gate and moderation as a local model's.

    backend = UpstreamBackend("http://127.0.0.1:8001/v1", api_key_env="UPSTREAM_KEY")
    return await proxy(gate, backend, ticket, req, body, texts, chat=True, refuse=finish_refusal)

The upstream body is the client's, with `max_tokens` (and `max_completion_tokens`, when the client sent it) made
explicit: the value the server's limits checked and counted. A whole reply's
flagged choices are replaced by the policy's refusal; a stream's flagged choice ends there with finish_reason
"content_filter", the other choices go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator

from fastapi.responses import StreamingResponse

from augury.errors import UsageError
from augury.serve.gate import Gate, Refused, Ticket
from augury.serve.moderation import StreamWindow
from augury.serve.responses import error_body, set_choice_text, short_error, sse
from augury.serve.schema import RequestInvalid


class UpstreamBackend:
    """Forward to an OpenAI-compatible server (e.g. vLLM), streaming, with this server's safety layer in front."""

    kind = "upstream"

    def __init__(self, base_url: str, api_key_env: str | None = None, timeout_s: float = 120.0,
                 model_id: str | None = None):
        import httpx

        self.base_url = base_url.rstrip("/")
        key = os.environ.get(api_key_env, "") if api_key_env else ""
        if api_key_env and not key:
            raise UsageError(f"--upstream_key_env {api_key_env} is not set")
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.timeout_s = timeout_s  # for the whole request: httpx's timeout bounds each wait for data
        self._timeout = httpx.Timeout(timeout_s)
        self._clients: dict[int, httpx.AsyncClient] = {}
        self.model_id = model_id or "upstream"

    @property
    def client(self):
        """One connection pool per event loop (a pool cannot outlive the loop it was opened on)."""
        import httpx

        loop = id(asyncio.get_running_loop())
        if loop not in self._clients:
            self._clients[loop] = httpx.AsyncClient(base_url=self.base_url, headers=self._headers,
                                                    timeout=self._timeout)
        return self._clients[loop]

    async def stream_raw(self, path: str, body: dict) -> AsyncIterator[dict]:
        """The upstream's streamed chunks (parsed JSON objects), from a request with stream=True; UpstreamError
        if it cannot be reached, answers an error, sends a chunk that is not a JSON object or stops before
        `data: [DONE]`."""
        import httpx

        body = dict(body, stream=True, stream_options={"include_usage": True})
        within = self._deadline()
        try:
            async with contextlib.AsyncExitStack() as stack:
                resp = await within(stack.enter_async_context(self.client.stream("POST", path, json=body)))
                if resp.status_code != 200:
                    text = (await within(resp.aread())).decode("utf-8", "replace")[:500]
                    raise UpstreamError(text, resp.status_code, resp.headers.get("retry-after"))
                lines = resp.aiter_lines()
                while (line := await within(anext(lines, None))) is not None:
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    chunk = _json_object(data, "a stream chunk")
                    if "error" in chunk:  # vLLM reports a failure that began after the headers this way
                        raise UpstreamError(f"error in the stream: {json.dumps(chunk['error'])[:500]}")
                    yield chunk
        except httpx.HTTPError as err:
            raise UpstreamError.of(err) from None
        raise UpstreamError("the stream ended before data: [DONE]")

    def _deadline(self):
        """`within(awaitable)`: its result, or UpstreamError (504) once `timeout_s` from now has passed: one limit
        for all the waits of a request, so an upstream that sends its reply a little at a time cannot keep it
        open for long."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s

        async def within(awaitable):
            try:
                return await asyncio.wait_for(awaitable, max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                raise UpstreamError(f"timed out (the reply was not complete within {self.timeout_s:g} s)",
                                    gateway_status=504) from None

        return within

    async def models(self) -> list[dict]:
        """The upstream's model list (`GET /models`): the names a client can ask it for."""
        data = (await self.request("GET", "/models")).get("data")
        if not isinstance(data, list) or not all(isinstance(m, dict) and "id" in m for m in data):
            raise UpstreamError(f"its /models is not a model list: {str(data)[:200]!r}")
        return data

    async def post(self, path: str, body: dict) -> dict:
        return await self.request("POST", path, body)

    async def request(self, method: str, path: str, body: dict | None = None) -> dict:
        import httpx

        try:
            resp = await self._deadline()(self.client.request(method, path, json=body))
        except httpx.HTTPError as err:
            raise UpstreamError.of(err) from None
        if resp.status_code != 200:
            raise UpstreamError(resp.text[:500], resp.status_code, resp.headers.get("retry-after"))
        return _json_object(resp.text, "the reply")


class UpstreamError(Exception):
    """The upstream failed: it answered an error status (`status`), could not be reached or timed out, or sent a
    body that is not the API's. `gateway_status` is what this server answers: the upstream's own 4xx (the
    client's request was refused: too long, rate-limited...), except 401/403/407, which are this server's
    credentials at fault and so a 502 like any other failure; 504 for a timeout."""

    def __init__(self, text: str, status: int | None = None, retry_after: str | None = None,
                 gateway_status: int = 502):
        super().__init__(f"upstream answered {status}: {text}" if status is not None else f"upstream: {text}")
        self.status = status
        passed = status is not None and 400 <= status < 500 and status not in (401, 403, 407)
        self.gateway_status = status if passed else gateway_status
        self.retry_after = int(retry_after) if retry_after and retry_after.isdigit() else 0

    @classmethod
    def of(cls, err: Exception) -> UpstreamError:
        import httpx

        timeout = isinstance(err, httpx.TimeoutException)
        return cls(f"{'timed out' if timeout else 'unreachable'} ({type(err).__name__}: {err})",
                   gateway_status=504 if timeout else 502)


# the keys of a chat message or delta (or of an object in it) whose values are not model text
_NOT_TEXT = ("role", "id", "type", "index")


def _choice_text(choice: dict, chat: bool, part: str) -> str:
    """All the model text of an upstream choice, which the output check reads: a completion's text, or every string
    of a chat message (`part` "message") or stream delta ("delta") but its role and ids: `content` (a string or
    a list of parts), `reasoning_content` / `reasoning` (vLLM's reasoning parsers), `refusal`, tool calls' and
    legacy `function_call`'s names and arguments, whatever field an upstream adds. A flagged choice's text is
    replaced whole (set_choice_text), so nothing of it passes."""
    if not chat:
        text = choice.get("text")
        return text if isinstance(text, str) else ""
    msg = choice.get(part)
    if not isinstance(msg, dict):
        return ""
    return "\n".join(t for t in _values(msg) if t)


def _values(value) -> list[str]:
    """Every string value in a JSON value (not the keys), but those under _NOT_TEXT keys."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() if k not in _NOT_TEXT for s in _values(v)]
    if isinstance(value, list):
        return [s for v in value for s in _values(v)]
    return []


def _json_object(text: str, what: str) -> dict:
    try:
        obj = json.loads(text)
    except ValueError:
        obj = None
    if not isinstance(obj, dict):
        raise UpstreamError(f"{what} is not a JSON object: {text[:200]!r}")
    return obj


async def proxy(gate: Gate, backend: UpstreamBackend, ticket: Ticket, req, body: dict, texts: list[str], chat: bool,
                refuse):
    """The upstream's answer to `body`, moderated; `texts` are what input moderation reads (with the body's other
    text, `forwarded_text`), and `refuse(ticket, req, chat, n_choices)` answers a request whose input the policy
    refuses."""
    path = "/chat/completions" if chat else "/completions"
    if chat and body.get("best_of") is not None:  # an upstream may read it: best_of completions made, n returned
        raise RequestInvalid("best_of: chat completions have no best_of (OpenAI's API takes it in /v1/completions "
                             "only); ask for n choices")
    n_choices = req.n * (1 if chat else len(req.prompts()))  # a completions request: n choices for each prompt
    made = n_choices if chat else req.made() * len(req.prompts())  # best_of: the completions the upstream makes
    besides = forwarded_text(body)
    texts = [*texts, besides] if besides else texts
    # held until the upstream's usage says what was used: the prompt, as estimated here, and the most it may make
    prompt_tokens = estimated_tokens(texts)
    gate.admit(ticket, prompt_tokens + req.max_tokens * made)
    finished = False
    try:
        if await gate.moderate(ticket, texts, "input"):
            ticket.refused = True
            ticket.prompt_tokens = prompt_tokens  # charged its prompt, as a local model's server charges it
            return await refuse(ticket, req, chat, n_choices)
        upstream_body = dict(body, max_tokens=req.max_tokens)
        if "max_completion_tokens" in body:  # the name an upstream may read first: the same, checked, value
            upstream_body["max_completion_tokens"] = req.max_tokens
        if not req.stream:
            # until the upstream's usage: a reply cut off (a timeout, a client that leaves) had the upstream working
            # and says nothing of it, so it is charged what it planned (Gate.finish)
            ticket.counted = False
            try:
                out = await backend.post(path, upstream_body)
            except UpstreamError as err:
                ticket.counted = err.gateway_status != 504  # an error answer or no connection: nothing was made
                raise Refused(err.gateway_status, str(err), "upstream_error", err.retry_after) from None
            _count(ticket, out.get("usage"))
            for choice in out.get("choices", []):
                text = _choice_text(choice, chat, "message")
                if text and await gate.moderate(ticket, [text], "output"):
                    ticket.refused = True
                    set_choice_text(choice, chat, gate.moderator.policy.refusal)
                    choice["finish_reason"], choice["logprobs"] = "content_filter", None
            await gate.write(ticket.record(200))
            return out
        # The answer's status is sent with its first event: wait for the upstream's first chunk, so an upstream
        # that refuses the request (a 4xx with its Retry-After), cannot be reached or times out before it starts is
        # answered with that status, as a whole reply would be, not with a 200 stream holding one error event.
        chunks = backend.stream_raw(path, upstream_body)
        try:
            first = await anext(chunks, None)  # (a generator that raised is closed)
        except UpstreamError as err:
            raise Refused(err.gateway_status, str(err), "upstream_error", err.retry_after) from None
        finished = True
        return StreamingResponse(_proxy_stream(gate, ticket, req, _prepend(first, chunks), chat),
                                 media_type="text/event-stream")
    finally:
        if not finished:
            gate.finish(ticket)


def forwarded_text(body: dict) -> str:
    """The text of a request body that the upstream may read into its prompt besides the messages' text or the
    prompts (which the caller reads): every string of every other field (vLLM renders `tools`, `chat_template`,
    `documents`, a message's `name` or earlier `tool_calls` into the prompt; a completion may have a `suffix`),
    but the roles and the parameters read here that are not prompt text (`_NOT_PROMPT`); and a message's text parts
    joined by line breaks, as vLLM joins them (the caller reads them run together, as a local model does). Empty
    for a body of messages or prompts and the usual parameters, so such a request is checked once."""
    out = []
    for key, value in body.items():
        if key in _NOT_PROMPT:
            continue
        if key != "messages" or not isinstance(value, list):
            out += _strings(value)
            continue
        for message in value:
            if not isinstance(message, dict):
                continue
            content = message.get("content")
            if isinstance(content, list):
                parts = [p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
                out += ["\n".join(parts)] if len(parts) > 1 else []
            out += _strings({k: v for k, v in message.items() if k not in ("role", "content")})
    return "\n".join(t for t in out if t.strip())


# fields of a body whose strings are not read into the prompt: the model's name, the prompts (read by the caller),
# stop strings, stream options, the end user's id
_NOT_PROMPT = ("model", "prompt", "stop", "stream_options", "user")


def _strings(value) -> list[str]:
    """Every string in a JSON value, the keys of its objects included (a tool's parameter names are text too)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [k, *_strings(v)]]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def estimated_tokens(texts: list[str]) -> int:
    """Texts' tokens as gateway mode counts them before the upstream does (it has no tokenizer): one per 4 bytes."""
    return sum(-(-len(text.encode("utf-8")) // 4) for text in texts)


async def _prepend(first: dict | None, rest: AsyncIterator[dict]) -> AsyncIterator[dict]:
    try:
        if first is not None:
            yield first
            async for obj in rest:
                yield obj
    finally:
        await rest.aclose()


def _count(ticket: Ticket, usage) -> None:
    """The tokens an upstream reports; without a count the request is charged what it planned (Gate.finish)."""
    try:
        ticket.prompt_tokens = int(usage["prompt_tokens"])
        ticket.completion_tokens = int(usage["completion_tokens"])
        ticket.counted = True
    except (TypeError, KeyError, ValueError):
        ticket.counted = False


async def _proxy_stream(gate: Gate, ticket: Ticket, req, chunks: AsyncIterator[dict], chat: bool):
    ticket.counted = False  # until the upstream's usage chunk
    texts: dict[int, str] = {}
    status, error, stopped = 499, "the client left before the end", set()
    windows: dict[int, StreamWindow] = {}  # with moderation on
    try:
        async for obj in chunks:
            if obj.get("usage"):
                _count(ticket, obj["usage"])
                if not req.include_usage():  # asked for upstream to count; the client did not ask for it
                    del obj["usage"]
            for choice in obj.get("choices", []):
                i = choice.get("index", 0)
                piece = _choice_text(choice, chat, "delta")
                if ticket.ttft_ms is None and piece:
                    ticket.ttft_ms = (time.perf_counter() - ticket.started) * 1000
                if i in stopped:
                    choice.clear()
                    continue
                final = bool(choice.get("finish_reason"))
                # while streaming: the new text with the window before it (rules); at the end: the whole reply
                if final or gate.moderator is None:
                    seen = texts.get(i, "") + piece
                else:
                    seen = windows.setdefault(i, StreamWindow(gate.moderator.policy.stream_window)).add(piece)
                if seen and await gate.moderate(ticket, [seen], "output", final):
                    ticket.refused = True
                    stopped.add(i)
                    set_choice_text(choice, chat, "", delta=True)
                    choice["finish_reason"], choice["logprobs"], choice["index"] = "content_filter", None, i
                texts[i] = texts.get(i, "") + piece
            obj["choices"] = [c for c in obj.get("choices", []) if c]
            if obj["choices"] or obj.get("usage"):
                yield sse(obj)
        status, error = 200, None
        yield "data: [DONE]\n\n"
    except UpstreamError as err:  # headers are sent: the error goes in the stream, and in the log
        status, error = err.gateway_status, str(err)
        yield sse(error_body(error, "upstream_error"))
    except Exception as err:  # noqa: BLE001 (as above: e.g. an upstream chunk of the wrong shape)
        status, error = 500, short_error(err)
        yield sse(error_body(f"gateway failed: {error}", "server_error"))
    finally:
        gate.finish(ticket)
        await gate.close(ticket, status, error)
