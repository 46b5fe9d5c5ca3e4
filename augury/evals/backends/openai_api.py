"""Any OpenAI-compatible endpoint (`--model openai:MODEL@BASE_URL`): OpenAI, vLLM, llama.cpp, TGI, ...

- Likelihood tasks use `POST BASE_URL/completions` with `echo: true, logprobs: 1`: the continuation's log-probability
  is the sum over the echoed prompt tokens that end after the end of the context (by `text_offset`), so a token
  that straddles the boundary counts in the continuation.
  Rolling log-likelihood sums every echoed token but the first, which the API does not score.
  With `tokenizer=FOLDER` (the served model's Hugging Face tokenizer) the prompt is sent as token ids instead, the
  context's and the continuation's split as lm-eval's `local-completions` splits them, and the continuation's
  log-probability is the sum over its own ids.
- Generation uses `POST BASE_URL/chat/completions` (the task's chat messages, or the prompt as one user message),
  with the stop strings applied again on our side (the API takes at most four).
- The API key is read from the environment variable `api_key_env` (default OPENAI_API_KEY); none is sent if unset.
- Retries with exponential backoff (honouring Retry-After) on connection errors, timeouts, broken HTTP replies
  (a body cut short, a reply that is not HTTP), HTTP 408, 409, 429 and 5xx, and a client-side rate limit. A request
  still failing after its retries becomes a per-sample error (None); after `max_consecutive_failures` such requests
  in a row the run stops. HTTP 400, 413 and 422 reject that one request (a prompt longer than the model's context):
  it is not retried, and it is a per-sample error counted the same way (so a rejection of every request still stops
  the run after `max_consecutive_failures`). A chat completion without answer text (no choices, `message.content`
  null or missing, or empty with finish_reason `length`: a reasoning model that spent its tokens thinking, a
  structured refusal) is a per-sample error counted the same way, not retried and never an empty answer; an empty
  answer that stopped (a stop string at once) is "". Other HTTP 4xx (401, 403, 404: a wrong key, URL or model) and
  responses that are not the expected JSON stop the run at once with one clear error. Scored samples are kept
  either way. Error messages never quote what the server sent back (a server may echo the request, and a safety
  prompt is harmful text): they give the HTTP status, and the error's `type` and `code` where each is a short
  identifier that does not occur in the request.

    augury eval --model openai:gpt-4o-mini@https://api.openai.com/v1 --model_args requests_per_second=2 ...
"""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import threading
import time
import urllib.error
import urllib.request
from http import HTTPStatus
from typing import Any

from augury.evals.backends.errors import (
    EndpointError,
    NoAnswerError,
    RejectedRequestError,
    TransientEndpointError,
)
from augury.evals.lm import LM, GenRequest, cut_at_stop, split_context


def _load_tokenizer(path: str):
    """The served model's tokenizer from a local folder (no network), imported only when asked for."""
    if not os.path.isdir(path):  # else transformers reads it as a hub name (a cached "gpt2" would load)
        raise ValueError(f"openai option tokenizer={path!r}: no such folder (give the served model's local "
                         "Hugging Face tokenizer folder)")
    try:
        import transformers

        return transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (ImportError, OSError, ValueError) as err:
        raise ValueError(f"openai option tokenizer={path!r}: no tokenizer could be loaded there "
                         f"({str(err).splitlines()[0] if str(err) else type(err).__name__})") from None


# Worth a retry besides 5xx (as OpenAI's own client): request timeout (a proxy's), conflict, too many requests.
RETRIED_STATUS = (408, 409, 429)
# The endpoint rejects this request, not every request (its prompt exceeds the context, a value it cannot take):
# a per-sample error; the same status on every request in a row still stops the run (max_consecutive_failures).
REJECTED_STATUS = (400, 413, 422)


_IDENTIFIER = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


def _safe(values, request: str) -> list[str]:
    """The values that are short identifiers (an error type or code: `context_length_exceeded`) and do not occur in
    the request: whatever a server echoes of the request can never get into an error message this way."""
    out = []
    for v in values:
        v = str(v) if isinstance(v, (str, int)) and not isinstance(v, bool) else ""
        if _IDENTIFIER.fullmatch(v) and v not in request and v not in out:
            out.append(v)
    return out


def _http_summary(code: int, raw: bytes, request: str) -> str:
    """`HTTP 400 Bad Request (invalid_request_error, context_length_exceeded)`: the status, its standard phrase,
    and the error's type and code fields where `_safe`; never the body's text (it may echo the prompt)."""
    try:
        phrase = f" {HTTPStatus(code).phrase}"
    except ValueError:
        phrase = ""
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    fields = []
    for part in (body.get("error"), body) if isinstance(body, dict) else ():
        if isinstance(part, dict):
            fields += [part.get("type"), part.get("code")]
    named = _safe(fields, request)
    return f"HTTP {code}{phrase}" + (f" ({', '.join(named)})" if named else "")


def _shape(obj, request: str) -> str:
    """What a response that is not the expected one is, without its text: its type and (safe) keys."""
    if isinstance(obj, dict):
        keys = _safe(list(obj), request)
        more = len(obj) - len(keys)
        return f"a JSON object with keys {keys}" + (f" and {more} more" if more else "")
    return f"a JSON {type(obj).__name__}"


class OpenAICompatibleLM(LM):
    """An OpenAI-compatible HTTP endpoint behind the evaluation interface."""

    name = "openai"
    sequential = True

    def __init__(self, spec: str, api_key_env: str = "OPENAI_API_KEY", max_retries: int = 5,
                 backoff_s: float = 1.0, max_backoff_s: float = 60.0, requests_per_second: float = 5.0,
                 timeout_s: float = 120.0, max_consecutive_failures: int = 10, tokenizer: str | None = None,
                 add_bos_token: bool = False):
        """Connect to `MODEL@BASE_URL` (BASE_URL defaults to https://api.openai.com/v1).

        Args:
            spec: MODEL@BASE_URL, e.g. "llama-3-8b@http://127.0.0.1:8000/v1"
            api_key_env: environment variable holding the API key (sent as a Bearer token when set)
            max_retries: retries of a transient failure before the sample counts as an error
            backoff_s: first retry delay; doubles each retry (with jitter), capped by max_backoff_s
            max_backoff_s: longest wait between retries (also caps a server's Retry-After)
            requests_per_second: client-side rate limit (0: none)
            timeout_s: per-request timeout
            max_consecutive_failures: failed samples in a row after which the endpoint is taken to be down
            tokenizer: a local Hugging Face tokenizer folder of the served model; likelihood requests are then
                sent as token ids, split into context and continuation as lm-eval's local-completions does
            add_bos_token: with `tokenizer`, encode with its special tokens (lm-eval's option; off by default)
        """
        for name, value in (("max_retries", max_retries), ("backoff_s", backoff_s), ("max_backoff_s", max_backoff_s),
                            ("requests_per_second", requests_per_second)):
            if value < 0:
                raise ValueError(f"openai option {name}={value} must be >= 0")
        for name, value in (("timeout_s", timeout_s), ("max_consecutive_failures", max_consecutive_failures)):
            if value <= 0:
                raise ValueError(f"openai option {name}={value} must be > 0")
        model, _, base = spec.partition("@")
        if not model:
            raise ValueError(f"openai model spec {spec!r} must look like MODEL@BASE_URL")
        base = base or "https://api.openai.com/v1"
        if not base.startswith(("http://", "https://")):
            raise ValueError(f"openai base URL {base!r} must start with http:// or https://")
        self.model, self.base_url = model, base.rstrip("/")
        self.api_key_env = api_key_env
        self.api_key = os.environ.get(api_key_env) or None
        self.max_retries, self.backoff_s, self.max_backoff_s = max_retries, backoff_s, max_backoff_s
        self.min_interval = 1.0 / requests_per_second if requests_per_second > 0 else 0.0
        self.timeout_s = timeout_s
        self.max_consecutive_failures = max_consecutive_failures
        self._next_slot = 0.0
        self._lock = threading.Lock()
        self._consecutive_failures = 0
        self.stats = {"requests": 0, "retries": 0, "failed_samples": 0}
        self.tokenizer_path, self.add_bos_token = tokenizer, add_bos_token
        self.tokenizer = _load_tokenizer(tokenizer) if tokenizer else None

    # ---- transport ------------------------------------------------------------------------------------------
    def _wait_for_slot(self) -> None:
        with self._lock:
            now = time.monotonic()
            wait = self._next_slot - now
            self._next_slot = max(now, self._next_slot) + self.min_interval
        if wait > 0:
            time.sleep(wait)

    def _post(self, path: str, payload: dict) -> dict:
        url = f"{self.base_url}/{path}"
        request = json.dumps(payload)
        body = request.encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                self.stats["retries"] += 1
            self._wait_for_slot()
            self.stats["requests"] += 1
            retry_after = None
            try:
                req = urllib.request.Request(url, data=body, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    raw = resp.read()
                try:
                    return json.loads(raw)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    raise EndpointError(f"{url} returned a response that is not JSON ({len(raw)} bytes)") from None
            except urllib.error.HTTPError as err:
                text = _http_summary(err.code, err.read(), request)
                if err.code in REJECTED_STATUS:
                    raise RejectedRequestError(f"{url}: {text}") from None
                if err.code not in RETRIED_STATUS and err.code < 500:
                    hint = (f"; set the API key in ${self.api_key_env}" if err.code in (401, 403) else "")
                    raise EndpointError(f"{url}: {text}{hint}") from None
                last = text
                retry_after = err.headers.get("Retry-After") if err.headers else None
            # HTTPException: a dropped body (IncompleteRead) or a reply that is not HTTP (BadStatusLine), which a
            # proxy or an overloaded server gives now and then: worth a retry, never a crash of the run.
            # (Its name only: a BadStatusLine quotes what the server sent.)
            except http.client.HTTPException as err:
                last = type(err).__name__
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as err:
                last = f"{type(err).__name__}: {err}"
            if attempt < self.max_retries:
                delay = min(self.max_backoff_s, self.backoff_s * 2 ** attempt) * (0.5 + random.random() / 2)
                if retry_after:
                    try:
                        delay = min(self.max_backoff_s, max(delay, float(retry_after)))
                    except ValueError:
                        pass
                time.sleep(delay)
        raise TransientEndpointError(f"{url}: still failing after {self.max_retries} retries ({last})")

    def _each(self, items, fn) -> list:
        """Apply `fn` per request; a request failing transiently after its retries, rejected by the endpoint, or
        answered without answer text gives None."""
        out = []
        for item in items:
            try:
                out.append(fn(item))
                self._consecutive_failures = 0
            except (TransientEndpointError, RejectedRequestError, NoAnswerError) as err:
                self.stats["failed_samples"] += 1
                self._consecutive_failures += 1
                if self._consecutive_failures >= self.max_consecutive_failures:
                    raise EndpointError(f"{self._consecutive_failures} requests in a row failed; the endpoint "
                                        f"looks down (last: {err})") from None
                out.append(None)
        return out

    # ---- likelihood -----------------------------------------------------------------------------------------
    def _echo_logprobs(self, prompt: str | list[int]) -> tuple[list[str], list[float | None], list[int], list[Any]]:
        url = f"{self.base_url}/completions"
        payload = {"model": self.model, "prompt": prompt, "max_tokens": 1, "temperature": 0.0, "echo": True,
                   "logprobs": 1}
        resp = self._post("completions", payload)
        try:
            lp = resp["choices"][0]["logprobs"]
            tokens, values, offsets = lp["tokens"], lp["token_logprobs"], lp["text_offset"]
            tops = lp.get("top_logprobs") or [None] * len(tokens)
            ok = (isinstance(tokens, list) and len(tokens) == len(values) == len(offsets) == len(tops)
                  and all(isinstance(o, int) for o in offsets)
                  and all(v is None or isinstance(v, (int, float)) for v in values))
        except (KeyError, IndexError, TypeError, AttributeError):
            ok = False
        if not ok:
            raise EndpointError(f"{url} did not return echoed logprobs (choices[0].logprobs with tokens, "
                                f"token_logprobs, text_offset); got {_shape(resp, json.dumps(payload))}. The endpoint "
                                "must support echo=true with logprobs for likelihood tasks")
        return tokens, values, offsets, tops

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=self.add_bos_token).input_ids

    def _encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """lm-eval's split: the continuation is the tokens of context + continuation after the context's count."""
        context, continuation = split_context(context, continuation)
        if not context:
            bos = self.tokenizer.bos_token_id
            return [bos if bos is not None else self.tokenizer.eos_token_id], self._encode(continuation)
        whole, ctx = self._encode(context + continuation), self._encode(context)
        return ctx, whole[len(ctx):]

    def _one_loglikelihood_ids(self, pair: tuple[str, str]) -> tuple[float, bool]:
        ctx, cont = self._encode_pair(*pair)
        if not cont:
            raise ValueError(f"an empty continuation cannot be scored ({pair[1]!r} after the context has no "
                             "tokens of its own)")
        tokens, values, _, tops = self._echo_logprobs(ctx + cont)
        scored = slice(len(ctx), len(ctx) + len(cont))
        if len(tokens) < scored.stop or any(v is None for v in values[scored]):
            raise EndpointError(f"{self.base_url}/completions did not echo a logprob for each of the "
                                f"{scored.stop} token ids it was sent")
        greedy = all(not (isinstance(top, dict) and top) or max(top, key=top.get) == tok
                     for tok, top in zip(tokens[scored], tops[scored]))
        return float(sum(values[scored])), greedy

    def _one_loglikelihood(self, pair: tuple[str, str]) -> tuple[float, bool]:
        if self.tokenizer is not None:
            return self._one_loglikelihood_ids(pair)
        context, continuation = split_context(*pair)
        tokens, values, offsets, tops = self._echo_logprobs(context + continuation)
        lo, hi = len(context), len(context) + len(continuation)
        # A token ends where the next one starts. One that starts in the context and ends in the continuation
        # (the server tokenizes the joined text: "... 4" + "2 apples" gives " 42") holds scored text, so it counts;
        # dropped, a choice whose first token merges with the context would lose its first characters' cost.
        ends = [*offsets[1:], hi]
        total, greedy, n = 0.0, True, 0
        for tok, val, off, end, top in zip(tokens, values, offsets, ends, tops):
            if off < hi and max(end, off + 1) > lo:
                if val is None:
                    raise EndpointError(f"{self.base_url}/completions gave no logprob for a continuation token "
                                        "(an empty context cannot be scored by this endpoint)")
                total += float(val)
                n += 1
                if isinstance(top, dict) and top:
                    greedy = greedy and max(top, key=top.get) == tok
        if n == 0:
            raise EndpointError(f"{self.base_url}/completions echoed no token for a continuation of "
                                f"{len(continuation)} characters")
        return total, greedy

    def loglikelihood(self, requests):
        return self._each(list(requests), self._one_loglikelihood)

    def _one_rolling(self, text: str) -> float:
        tokens, values, offsets, _ = self._echo_logprobs(text)
        return float(sum(v for v, off in zip(values, offsets) if v is not None and off < len(text)))

    def loglikelihood_rolling(self, texts):
        return self._each(list(texts), self._one_rolling)

    # ---- generation -----------------------------------------------------------------------------------------
    def _one_generate(self, req: GenRequest) -> str:
        payload: dict[str, Any] = {
            "model": self.model, "max_tokens": req.max_gen_toks,
            "messages": req.messages or [{"role": "user", "content": req.context}],
            "temperature": req.temperature if req.do_sample else 0.0,
        }
        if req.do_sample and req.top_p < 1.0:
            payload["top_p"] = req.top_p
        if req.until:
            payload["stop"] = list(req.until)[:4]
        if req.seed is not None:
            payload["seed"] = req.seed
        resp = self._post("chat/completions", payload)
        return cut_at_stop(self._answer_text(resp, json.dumps(payload)), req.until)

    def _answer_text(self, resp, request: str) -> str:
        """choices[0].message.content. No answer text in a chat completion (no choices, content null or missing,
        or "" at the token limit, which only thinking that is not returned explains) is NoAnswerError, that
        sample's failure; a reply that is not a chat completion at all is EndpointError."""
        url = f"{self.base_url}/chat/completions"
        choices = resp.get("choices") if isinstance(resp, dict) else None
        choice = choices[0] if isinstance(choices, list) and choices else None
        message = choice.get("message") if isinstance(choice, dict) else None
        if choices != [] and not isinstance(message, dict):
            raise EndpointError(f"{url} did not return choices[0].message.content as text; got "
                                f"{_shape(resp, request)}")
        text = message.get("content") if message is not None else None
        finish = _safe([choice.get("finish_reason")], request) if choice is not None else []
        if text is None or (text == "" and finish == ["length"]):
            why = ("no choices" if message is None else "a refusal" if message.get("refusal")
                   else "content null" if "content" in message else "no content" if text is None
                   else "empty content")
            raise NoAnswerError(f"{url} gave no answer text ({why}"
                                + (f", finish_reason {finish[0]}" if finish else "") + ")")
        if not isinstance(text, str):
            raise EndpointError(f"{url} did not return choices[0].message.content as text; got "
                                f"{_shape(resp, request)}")
        return text

    def generate_until(self, requests):
        return self._each(list(requests), self._one_generate)

    def apply_chat_template(self, messages: list[dict]) -> str:
        # The chat endpoint formats messages itself; this transcript is the stored prompt, and the prompt that
        # likelihood requests send to /completions. It opens the assistant's turn (as a template's generation
        # prompt does), because under --chat a choice is scored bare right after it.
        return "\n\n".join(f"{m['role']}: {m['content']}" for m in messages) + "\n\nassistant: "

    def config(self) -> dict[str, Any]:
        return {"model": "openai", "model_args": f"model={self.model},base_url={self.base_url}",
                "api_key_env": self.api_key_env, "tokenizer": self.tokenizer_path,
                "requests_per_second": 1 / self.min_interval
                if self.min_interval else None, "endpoint_stats": dict(self.stats)}

    def identity(self) -> dict[str, Any]:
        # likelihood_rules 2: a token straddling the context's end counts in the continuation (before: dropped),
        # so samples resumed from an older run are scored again rather than mixed in
        from augury.io import files_signature

        # the tokenizer folder's files too: a tokenizer replaced in place splits prompts into other tokens
        return {"model": "openai", "name": self.model, "base_url": self.base_url, "likelihood_rules": 2,
                **({"tokenizer": self.tokenizer_path, "tokenizer_files": files_signature(self.tokenizer_path),
                    "add_bos_token": self.add_bos_token} if self.tokenizer else {})}
