"""Serving with deployment-time safety: an OpenAI-compatible server (`augury serve`) and its abuse monitor.

    augury serve runs/quickstart --keys serve/keys.json --log serve/requests.db
    augury serve --upstream http://127.0.0.1:8001/v1 --keys serve/keys.json      # gateway in front of e.g. vLLM
    augury monitor serve/requests.db

Modules, bottom up: `keys` (hashed API keys), `limits` (rate limits, token budgets, concurrency), `moderation`
(categories in the OpenAI moderation schema, graders, the refusal policy), `requestlog` (SQLite request log),
`monitor` (per-key summaries), `jobs` (what the server hands a local model's worker), `batching` (an augury
run's continuous-batching worker), `backends` (an augury run / Hugging Face folder), `gateway` (an upstream
server), `gate` (the checks every request passes), `app` (the FastAPI application), `cli` (the two commands).
"""
