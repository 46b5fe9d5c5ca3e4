"""Gateway mode of `augury serve --upstream URL`: the request goes on to another OpenAI-compatible server, and its
answer comes back through the same gate and moderation as a local model's.

    return await proxy(gate, backend, ticket, req, body, texts, chat=True, refuse=finish_refusal)

The upstream body is the client's, with `max_tokens` made explicit (the per-key limits counted it). A whole reply's
flagged choices are replaced by the policy's refusal; a stream's flagged choice ends there with finish_reason
"content_filter", the other choices go on.
"""

from __future__ import annotations

import time

from fastapi.responses import StreamingResponse

from augury.serve.backends import UpstreamBackend, UpstreamError
from augury.serve.gate import Gate, Ticket
from augury.serve.responses import error_body, set_choice_text, sse


async def proxy(gate: Gate, backend: UpstreamBackend, ticket: Ticket, req, body: dict, texts: list[str], chat: bool,
                refuse):
    """The upstream's answer to `body`, moderated; `texts` are what input moderation reads, and `refuse(ticket,
    req, chat, n_choices)` answers a request whose input the policy refuses."""
    path = "/chat/completions" if chat else "/completions"
    gate.admit(ticket, req.max_tokens * req.n)
    finished = False
    try:
        if await gate.moderate(ticket, texts, "input"):
            ticket.refused = True
            return refuse(ticket, req, chat, req.n * (1 if chat else len(req.prompts())))
        upstream_body = dict(body, max_tokens=req.max_tokens)
        if not req.stream:
            out = await backend.post(path, upstream_body)
            usage_in = out.get("usage") or {}
            ticket.prompt_tokens = int(usage_in.get("prompt_tokens", 0))
            ticket.completion_tokens = int(usage_in.get("completion_tokens", 0))
            for choice in out.get("choices", []):
                text = (choice.get("message") or {}).get("content") if chat else choice.get("text")
                if text and await gate.moderate(ticket, [text], "output"):
                    ticket.refused = True
                    set_choice_text(choice, chat, gate.moderator.policy.refusal)
                    choice["finish_reason"] = "content_filter"
            gate.log.write(ticket.record(200))
            return out
        finished = True
        return StreamingResponse(_proxy_stream(gate, backend, ticket, req, path, upstream_body, chat),
                                 media_type="text/event-stream")
    finally:
        if not finished:
            gate.finish(ticket)


async def _proxy_stream(gate: Gate, backend: UpstreamBackend, ticket: Ticket, req, path: str, body: dict, chat: bool):
    texts: dict[int, str] = {}
    status, error, stopped = 200, None, set()
    window = gate.moderator.policy.stream_window if gate.moderator is not None else 0
    try:
        async for obj in backend.stream_raw(path, body):
            if obj.get("usage"):
                ticket.prompt_tokens = int(obj["usage"].get("prompt_tokens", 0))
                ticket.completion_tokens = int(obj["usage"].get("completion_tokens", 0))
                if not req.include_usage():
                    continue
            for choice in obj.get("choices", []):
                i = choice.get("index", 0)
                piece = ((choice.get("delta") or {}).get("content") if chat else choice.get("text")) or ""
                if ticket.ttft_ms is None and piece:
                    ticket.ttft_ms = (time.perf_counter() - ticket.started) * 1000
                if i in stopped:
                    choice.clear()
                    continue
                final = bool(choice.get("finish_reason"))
                seen = texts.get(i, "") + piece
                seen = seen if final else seen[-(len(piece) + window):] if piece else ""
                if seen and await gate.moderate(ticket, [seen], "output", final):
                    ticket.refused = True
                    stopped.add(i)
                    set_choice_text(choice, chat, "", delta=True)
                    choice["finish_reason"] = "content_filter"
                    choice["index"] = i
                texts[i] = texts.get(i, "") + piece
            obj["choices"] = [c for c in obj.get("choices", []) if c]
            if obj["choices"] or obj.get("usage"):
                yield sse(obj)
        yield "data: [DONE]\n\n"
    except UpstreamError as err:
        status, error = 502, str(err)
        yield sse(error_body(str(err), "upstream_error"))
    finally:
        gate.finish(ticket)
        gate.close(ticket, status, error)
