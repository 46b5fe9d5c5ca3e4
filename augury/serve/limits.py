"""Per-key limits: request rate (token bucket), a daily token budget, and concurrent requests.

    limiter = Limiter(LimitsConfig(requests_per_minute=60, tokens_per_day=200_000, concurrent_requests=4))
    decision = limiter.admit("alice", planned_tokens=512)   # Decision(ok, status, reason, retry_after_s)
    ... limiter.finish("alice", used_tokens=321, planned_tokens=512)

A refused request costs nothing: the bucket, the budget and the concurrency count are only taken when the
request is admitted (and given back, `give_back`, when an admitted request turns out to be bad input). An
admitted request holds its planned tokens (prompt + the most it may generate) until it ends, when the budget is
charged with the tokens it actually used; admission checks that the planned tokens fit beside what was used and
what the key's other requests in flight hold, so a key cannot run past its budget with concurrent requests. A server
started with a request log counts the tokens its rows say each key used today (`charge`), so a restart does not give
every key a fresh day's budget.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field


@dataclass
class LimitsConfig:
    """Limits that apply to every key.

    Args:
        requests_per_minute: sustained request rate per key (bursts up to `burst`); 0 disables it.
        burst: requests a key may make at once after being idle.
        tokens_per_day: prompt + completion tokens per key per UTC day; 0 disables the budget.
        concurrent_requests: requests of one key in flight at once; 0 disables it.
    """

    requests_per_minute: float = 60.0
    burst: int = 10
    tokens_per_day: int = 0
    concurrent_requests: int = 4

    def validate(self) -> None:
        for name in ("requests_per_minute", "burst", "tokens_per_day", "concurrent_requests"):
            if getattr(self, name) < 0:
                raise ValueError(f"limits.{name} must be >= 0")
        if self.requests_per_minute > 0 and self.burst < 1:
            raise ValueError("limits.burst must be >= 1 when requests_per_minute is set")


@dataclass
class Decision:
    ok: bool
    status: int = 200
    reason: str = ""
    retry_after_s: int = 0


@dataclass
class _KeyState:
    tokens: float
    updated: float
    day: int
    used_today: int = 0
    in_flight: int = 0
    held: int = 0  # planned tokens of the requests in flight
    last: float = field(default=0.0)


class Limiter:
    def __init__(self, cfg: LimitsConfig, clock=time.monotonic, wall=time.time):
        cfg.validate()
        self.cfg = cfg
        self.clock = clock
        self.wall = wall
        self._state: dict[str, _KeyState] = {}
        self._lock = threading.Lock()

    def _get(self, key: str) -> _KeyState:
        now, day = self.clock(), int(self.wall() // 86400)
        st = self._state.get(key)
        if st is None:
            st = self._state[key] = _KeyState(tokens=float(self.cfg.burst), updated=now, day=day)
        if st.day != day:
            st.day, st.used_today = day, 0
        if self.cfg.requests_per_minute > 0:
            rate = self.cfg.requests_per_minute / 60.0
            st.tokens = min(float(self.cfg.burst), st.tokens + (now - st.updated) * rate)
        st.updated = now
        return st

    def admit(self, key: str, planned_tokens: int = 0) -> Decision:
        with self._lock:
            st = self._get(key)
            cfg = self.cfg
            if cfg.concurrent_requests and st.in_flight >= cfg.concurrent_requests:
                return Decision(False, 429, f"more than {cfg.concurrent_requests} concurrent requests", 1)
            if cfg.requests_per_minute > 0 and st.tokens < 1.0:
                wait = (1.0 - st.tokens) / (cfg.requests_per_minute / 60.0)
                return Decision(False, 429, f"rate limit of {cfg.requests_per_minute:g} requests per minute",
                                max(1, math.ceil(wait)))
            if cfg.tokens_per_day and st.used_today + st.held + planned_tokens > cfg.tokens_per_day:
                until_midnight = 86400 - self.wall() % 86400
                held = f", {st.held} held by requests in flight" if st.held else ""
                return Decision(False, 429, f"daily budget of {cfg.tokens_per_day} tokens used "
                                            f"({st.used_today} so far{held}; this request may use "
                                            f"{planned_tokens})", max(1, math.ceil(until_midnight)))
            if cfg.requests_per_minute > 0:
                st.tokens -= 1.0
            st.in_flight += 1
            st.held += max(0, int(planned_tokens))
            return Decision(True)

    def day_start(self) -> float:
        """The unix time today's budget began (UTC midnight)."""
        return self.wall() // 86400 * 86400

    def charge(self, key: str, used_tokens: int) -> None:
        """Count tokens used today outside this limiter (before a restart: the request log's)."""
        with self._lock:
            self._get(key).used_today += max(0, int(used_tokens))

    def give_back(self, key: str, planned_tokens: int = 0) -> None:
        """A request admitted with `planned_tokens` was then refused as bad input (an image that does not decode):
        it costs nothing, as a request refused before admission, so its bucket token comes back too."""
        with self._lock:
            st = self._get(key)
            st.in_flight = max(0, st.in_flight - 1)
            st.held = max(0, st.held - max(0, int(planned_tokens)))
            if self.cfg.requests_per_minute > 0:
                st.tokens = min(float(self.cfg.burst), st.tokens + 1.0)

    def finish(self, key: str, used_tokens: int, planned_tokens: int = 0) -> None:
        """A request admitted with `planned_tokens` ended having used `used_tokens`."""
        with self._lock:
            st = self._get(key)
            st.in_flight = max(0, st.in_flight - 1)
            st.held = max(0, st.held - max(0, int(planned_tokens)))
            st.used_today += max(0, int(used_tokens))
