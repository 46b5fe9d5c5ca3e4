"""`augury serve`'s configuration: where it listens, what it serves, its limits, moderation and log.

    augury serve runs/quickstart --keys serve/keys.json
    augury serve --config serve.yaml --limits.requests_per_minute 30
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from augury.serve.limits import LimitsConfig


@dataclass
class ServeConfig:
    """A server's settings.

    Args:
        model: what to serve: an augury run folder, or hf:PATH for a Hugging Face folder. Empty with --upstream.
        upstream: gateway mode: base URL of an OpenAI-compatible server to forward to (e.g. http://HOST:8001/v1).
        upstream_key_env: environment variable holding the upstream's API key, if it needs one.
        host: address to listen on; loopback by default. Another address needs --keys.
        port: port to listen on.
        keys: the API keys file (made with `augury serve keys add NAME --keys FILE`); empty: no authentication,
            allowed on a loopback host only.
        log: the SQLite request log (one row per answered request).
        log_rejected_per_minute: rows one client address's rejected requests (401, 400, 404, 429, 503, ...: answered
            before any generation) get per minute; beyond, they are counted in one row per key, endpoint and status
            (its `repeats` column), written when the minute is over. 0: a row each.
        trusted_proxies: reverse proxies whose X-Forwarded-For names the client (comma-separated addresses or
            networks, e.g. "10.0.0.0/8,192.0.2.7"; "*": every peer, only where nothing else can reach the server);
            empty: none, and a client's address is the connection's.
        policy: moderation policy YAML; empty: the shipped default.
        moderation: check input and output with the policy's grader.
        max_body_bytes: largest request body accepted (413 beyond).
        max_image_bytes: largest image file a chat request's data: URL may hold, decoded from base64 (413
            beyond); an image travels in the body, so max_body_bytes bounds it too.
        max_tokens_limit: largest max_tokens a request may ask for (400 beyond).
        max_n: largest n (completions per request).
        max_queued: requests generating or waiting at once, over all keys (503 beyond).
        header_timeout_s: a client must send a request's line and headers within this of its first byte (or of
            connecting); beyond, the connection is answered 408 and closed (slow-header clients).
        body_timeout_s: a client must send its whole request body within this (408 beyond).
        request_timeout_s: a reply must be finished within this (a local model's reply ends there with
            finish_reason "length" and the text it has, or is a 504 if it has made no token by then; in gateway
            mode the upstream's whole reply, however steadily it trickles in, else 504, or an error event ending a
            stream that has started).
        device: torch device for a local model.
        max_batch: requests an augury run generates for at once (continuous batching); 1 serves one at a time.
        threads: torch threads for a local model (0: torch's default, one per core). The event loop needs a core
            of its own to stream replies, so on a small or shared machine fewer threads can be faster.
        limits: per-key rate limits, daily token budgets and concurrency.
    """

    model: str = ""
    upstream: str = ""
    upstream_key_env: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    keys: str = ""
    log: str = "runs/serve/requests.db"
    log_rejected_per_minute: int = 60
    trusted_proxies: str = ""
    policy: str = ""
    moderation: bool = True
    max_body_bytes: int = 1 << 20
    max_image_bytes: int = 4 << 20
    max_tokens_limit: int = 1024
    max_n: int = 8
    max_queued: int = 64
    header_timeout_s: float = 10.0
    body_timeout_s: float = 10.0
    request_timeout_s: float = 300.0
    device: str = "cpu"
    max_batch: int = 32
    threads: int = 0
    limits: LimitsConfig = field(default_factory=LimitsConfig)

    def validate(self) -> None:
        if not self.model and not self.upstream:
            raise ValueError("nothing to serve: give a model (a run folder or hf:PATH) or --upstream URL")
        if self.model and self.upstream:
            raise ValueError("give a model to serve (a run folder or hf:PATH) or --upstream URL, not both")
        if self.upstream and not self.upstream.startswith(("http://", "https://")):
            raise ValueError(f"--upstream must be an http(s) URL, got {self.upstream!r}")
        if not self.keys and not _is_loopback(self.host):
            raise ValueError(f"listening on {self.host} needs --keys (no authentication is allowed on loopback only)")
        if not 0 < self.port < 65536:
            raise ValueError("--port must be in 1..65535")
        for name in ("max_body_bytes", "max_image_bytes", "max_tokens_limit", "max_n", "max_queued", "max_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be >= 1")
        if self.log_rejected_per_minute < 0:
            raise ValueError("--log_rejected_per_minute must be >= 0 (0: a row for each rejected request)")
        proxies = self.trusted_proxy_list()
        if proxies != ["*"]:
            for item in proxies:
                try:
                    ipaddress.ip_network(item)  # an address is a network of one
                except ValueError:
                    raise ValueError(f"--trusted_proxies: {item!r} is not an IP address or network (e.g. 10.0.0.0/8), "
                                     "nor '*'") from None
        if self.threads < 0:
            raise ValueError("--threads must be >= 0 (0: torch's default)")
        for name in ("header_timeout_s", "body_timeout_s", "request_timeout_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"--{name} must be > 0")
        self.limits.validate()

    def trusted_proxy_list(self) -> list[str]:
        """--trusted_proxies as a list (empty: none)."""
        return [item.strip() for item in self.trusted_proxies.split(",")] if self.trusted_proxies.strip() else []


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
