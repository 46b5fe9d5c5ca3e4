"""The OpenAI API's response bodies, as `augury serve` writes them: whole replies, stream chunks, errors, usage.

    body = reply_body(model_id, chat=True, parts=[("Hello.", "stop", [])], usage=usage_body(12, 3))
    yield sse(stream_chunk(model_id, rid, created, chat=True, index=0, text="Hel", finish=None))

Plain functions of their arguments (the server's state stays in `augury.serve.app` and `.gate`), so each
shape is read in one place: chat (`chat.completion`, `chat.completion.chunk`) and completions
(`text_completion`, with lm-eval's `local-completions` log-probs and echo).
"""

from __future__ import annotations

import json
import time
import uuid


def short_error(err: BaseException) -> str:
    """An exception as one short line for a client: its type and the first line of its message (a device error's
    C++ frames and other tracebacks stay in the server)."""
    first = next((line.strip() for line in str(err).splitlines() if line.strip()), "")
    return f"{type(err).__name__}: {first[:200]}" if first else type(err).__name__


def error_body(message: str, kind: str) -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def usage_body(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def new_id(chat: bool) -> str:
    return f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"


def moderation_body(model_id: str, verdicts) -> dict:
    """/v1/moderations' answer: a result per text (augury.serve.moderation.Verdict) in OpenAI's schema. Every score
    is the text's (`category_applied_input_types`): the policy reads no image."""
    return {"id": f"modr-{uuid.uuid4().hex}", "model": model_id,
            "results": [{"flagged": v.flagged, "categories": v.categories, "category_scores": v.scores,
                         "category_applied_input_types": {c: ["text"] for c in v.categories}} for v in verdicts]}


def sse(obj: dict) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


def reply_body(model_id: str, chat: bool, parts, usage: dict) -> dict:
    """A whole reply: one choice per (text, finish_reason, token log-probs) in `parts`."""
    out = {"id": new_id(chat), "object": "chat.completion" if chat else "text_completion",
           "created": int(time.time()), "model": model_id, "usage": usage}
    if chat:
        out["choices"] = [{"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": f,
                           "logprobs": None} for i, (t, f, _) in enumerate(parts)]
    else:
        out["choices"] = [{"index": i, "text": t, "finish_reason": f, "logprobs": None}
                          for i, (t, f, _) in enumerate(parts)]
    return out


def add_logprobs(out: dict, req, prompt_ids: list[list[int]], prompt_texts: list[str], texts: list[str],
                 lps: list[list[float]], gen_ids: list[list[int]], last: list, decode) -> dict:
    """lm-eval's `local-completions` shape on a completions body: echo the prompt, token log-probs, top
    alternatives (the prompt's scored by the engine in the same prefill that starts generation). `last` holds each
    choice's final Delta (its prompt log-probs), `decode` turns one token id into text."""
    for i, choice in enumerate(out["choices"]):
        scored = req.echo and last[i] is not None and last[i].prompt_logprobs is not None
        prompt = prompt_ids[i] if scored else []
        tokens = [decode([t]) for t in prompt + gen_ids[i]]
        token_lps = (list(last[i].prompt_logprobs) if scored else []) + lps[i]
        tops = ([None if d is None else {decode([k]): v for k, v in d.items()}
                 for d in (last[i].prompt_top or [None] * len(prompt))] if scored else [])
        tops += [None] * (len(tokens) - len(tops))
        if req.logprobs is not None:
            choice["logprobs"] = {"tokens": tokens, "token_logprobs": token_lps, "top_logprobs": tops,
                                  "text_offset": text_offsets(tokens)}
        if req.echo:
            choice["text"] = prompt_texts[i // req.n] + texts[i]
    return out


def chat_logprobs(token_ids: list[int], lps: list[float], decode) -> dict:
    """A chat choice's `logprobs`: each generated token with its log-prob (no alternatives: `top_logprobs` empty).
    `bytes` is the token's UTF-8 text, null for a token that is part of a character."""
    content = []
    for tok, lp in zip(token_ids, lps):
        text = decode([tok])
        raw = None if "\ufffd" in text else list(text.encode("utf-8"))
        content.append({"token": text, "logprob": lp, "bytes": raw, "top_logprobs": []})
    return {"content": content}


def stream_chunk(model_id: str, rid: str, created: int, chat: bool, index: int, text, finish,
                 role: bool = False) -> dict:
    if chat:
        delta = {"role": "assistant", "content": ""} if role else ({"content": text} if text else {})
        choice = {"index": index, "delta": delta, "finish_reason": finish, "logprobs": None}
        obj = "chat.completion.chunk"
    else:
        choice = {"index": index, "text": text or "", "finish_reason": finish, "logprobs": None}
        obj = "text_completion"
    return {"id": rid, "object": obj, "created": created, "model": model_id, "choices": [choice]}


def usage_chunk(model_id: str, rid: str, created: int, chat: bool, usage: dict) -> dict:
    """A stream's last chunk before [DONE] (stream_options.include_usage): no choices, the usage."""
    return {"id": rid, "object": "chat.completion.chunk" if chat else "text_completion", "created": created,
            "model": model_id, "choices": [], "usage": usage}


def refusal_events(model_id: str, chat: bool, n_choices: int, refusal: str, usage: dict | None):
    """A refusal's streamed reply, as SSE events, the way a generated reply streams: each choice's role (chat),
    the refusal's text and its finish (content_filter); then the usage when it is asked for, and [DONE]."""
    rid, created = new_id(chat), int(time.time())
    for i in range(n_choices):
        if chat:
            yield sse(stream_chunk(model_id, rid, created, chat, i, None, None, role=True))
        yield sse(stream_chunk(model_id, rid, created, chat, i, refusal, None))
        yield sse(stream_chunk(model_id, rid, created, chat, i, "", "content_filter"))
    if usage is not None:
        yield sse(usage_chunk(model_id, rid, created, chat, usage))
    yield "data: [DONE]\n\n"


def set_choice_text(choice: dict, chat: bool, text: str, delta: bool = False) -> None:
    """Replace a choice's text in place (a whole reply's message, a stream delta, or a completion's text)."""
    if not chat:
        choice["text"] = text
    elif delta:
        choice["delta"] = {"content": text} if text else {}
    else:
        choice["message"] = {"role": "assistant", "content": text}


def text_offsets(tokens: list[str], start: int = 0) -> list[int]:
    out, pos = [], start
    for t in tokens:
        out.append(pos)
        pos += len(t)
    return out
