"""`augury monitor DB`: per-key (or per-client-address) summaries of the request log, and those over the abuse
thresholds.

    augury monitor serve/requests.db
    augury monitor serve/requests.db --since_hours 24 --max_flag_rate 0.05 --max_spike 10 --json_out true
    augury monitor serve/requests.db --by client      # per client address: a keyless server, a shared key

Per key: requests, tokens, the share of requests flagged by moderation (of the generation requests that reached it:
rejected requests and /v1/moderations calls cost nothing and are not counted, so they cannot dilute it), the share
refused, the share rejected by limits (429), the busiest minute, and the spike ratio (the busiest minute over the
key's average rate per minute from its first request to its last).
A key is listed as over a threshold when its flag rate, spike ratio or request count exceeds the given limit.
With `--by client` the same is done per client address (rows of a log from before addresses were logged are
"(unknown)").
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from augury.serve.requestlog import RequestLogError, open_readonly

# what summaries can be grouped by: the request log's column, and the name rows without a value get
GROUPS = {"key": "(no key)", "client": "(unknown)"}
# the endpoints whose requests moderation reads on the way to the model: what a flag rate is a share of
GENERATION = ("/v1/chat/completions", "/v1/completions")


def reached_moderation(endpoint: str, status: int) -> bool:
    """Whether a row is a generation request that was moderated: answered (a refusal is a 200), left by its client
    (499) or failed (5xx, not the 503 of a full queue); a rejection (4xx before generation) never was."""
    return endpoint in GENERATION and (status < 400 or status == 499 or (status >= 500 and status != 503))


@dataclass
class KeySummary:
    key: str  # the key's name; with by="client", the client's address
    requests: int
    moderated: int  # generation requests that reached moderation (the flag rate's denominator)
    prompt_tokens: int
    completion_tokens: int
    flag_rate: float
    refused: int
    rate_limited: int
    busiest_minute: int
    spike: float
    over: list[str]


def summarise(db_path: str | Path, since_hours: float = 24.0, max_flag_rate: float = 0.05,
              max_spike: float = 10.0, max_requests: int = 0, by: str = "key") -> list[KeySummary]:
    db = open_readonly(db_path)
    try:
        since = time.time() - since_hours * 3600 if since_hours > 0 else 0.0
        # a row may stand for several rejected requests counted together (`repeats`; a log older than that column
        # has a row each)
        columns = {row[1] for row in db.execute("PRAGMA table_info(requests)")}
        repeats = "repeats" if "repeats" in columns else "1"
        group = by if by in columns else "NULL"  # (a log older than the client column has no addresses)
        rows = db.execute(f"SELECT COALESCE({group}, '{GROUPS[by]}'), ts, status, prompt_tokens, completion_tokens, "
                          f"flagged, refused, {repeats}, endpoint FROM requests WHERE ts >= ? ORDER BY ts",
                          (since,)).fetchall()
    except sqlite3.DatabaseError as err:
        raise RequestLogError(f"cannot read request log {db_path}: {err}") from None
    finally:
        db.close()
    by_key: dict[str, list[tuple]] = {}
    for row in rows:
        by_key.setdefault(row[0], []).append(row)
    out = []
    for key, rs in sorted(by_key.items()):
        minutes: dict[int, int] = {}
        for r in rs:
            minutes[int(r[1] // 60)] = minutes.get(int(r[1] // 60), 0) + r[7]
        busiest = max(minutes.values())
        span_minutes = max(1.0, (rs[-1][1] - rs[0][1]) / 60.0 + 1.0)
        n = sum(r[7] for r in rs)
        spike = busiest / (n / span_minutes)
        moderated = [r for r in rs if reached_moderation(r[8], r[2])]
        flag_rate = sum(r[5] * r[7] for r in moderated) / max(1, sum(r[7] for r in moderated))
        over = []
        if flag_rate > max_flag_rate:
            over.append(f"flag rate {flag_rate:.1%} > {max_flag_rate:.1%}")
        if len(minutes) > 1 and spike > max_spike:
            over.append(f"spike {spike:.1f}x > {max_spike:g}x")
        if max_requests and n > max_requests:
            over.append(f"{n} requests > {max_requests}")
        out.append(KeySummary(key, n, sum(r[7] for r in moderated), sum(r[3] for r in rs), sum(r[4] for r in rs),
                              flag_rate,
                              sum(r[6] * r[7] for r in rs), sum(r[7] for r in rs if r[2] == 429), busiest, spike, over))
    return out


def format_table(summaries: list[KeySummary], by: str = "key") -> str:
    head = f"{by:<20} {'requests':>8} {'tokens':>9} {'flagged':>8} {'refused':>7} {'429s':>5} {'peak/min':>8}  over"
    lines = [head]
    for s in summaries:
        lines.append(f"{s.key[:20]:<20} {s.requests:>8} {s.prompt_tokens + s.completion_tokens:>9} "
                     f"{s.flag_rate:>8.1%} {s.refused:>7} {s.rate_limited:>5} {s.busiest_minute:>8}  "
                     f"{'; '.join(s.over) or '-'}")
    flagged = [s.key for s in summaries if s.over]
    lines.append(f"{len(summaries)} {by}s; over a threshold: {', '.join(flagged) if flagged else 'none'}")
    return "\n".join(lines)


def monitor(db: str, since_hours: float = 24.0, max_flag_rate: float = 0.05, max_spike: float = 10.0,
            max_requests: int = 0, by: str = "key", json_out: bool = False) -> list[KeySummary]:
    """Summarise a request log per key (or client address) and list those over the abuse thresholds.

    Args:
        db: the SQLite request log written by `augury serve --log`.
        since_hours: look at this many recent hours (0: everything).
        max_flag_rate: a key whose share of flagged requests (of its generation requests that reached moderation)
            exceeds this is listed.
        max_spike: a key whose busiest minute exceeds this many times its average minute is listed.
        max_requests: a key with more requests than this in the window is listed (0: no limit).
        by: "key", or "client" for each client address (a keyless server, a key many clients share); the
            thresholds apply to each address.
        json_out: print JSON instead of a table (with by client, each object names its "client", not a "key").
    """
    _check_thresholds(since_hours, max_flag_rate, max_spike, max_requests)
    if by not in GROUPS:
        from augury.errors import UsageError

        raise UsageError(f"--by must be one of {', '.join(GROUPS)}, got {by!r}")
    summaries = summarise(db, since_hours, max_flag_rate, max_spike, max_requests, by)
    if json_out:
        print(json.dumps([{by: s.key, **{k: v for k, v in asdict(s).items() if k != "key"}} for s in summaries],
                         indent=2))
    else:
        print(format_table(summaries, by))
    return summaries


def _check_thresholds(since_hours: float, max_flag_rate: float, max_spike: float, max_requests: int) -> None:
    """Refuse a window or threshold that cannot mean anything (a negative window would otherwise read as
    "everything", a negative --max_requests list every key)."""
    from augury.errors import UsageError

    if not (math.isfinite(since_hours) and since_hours >= 0):
        raise UsageError(f"--since_hours must be a number >= 0 (0: everything), got {since_hours}")
    if not 0 <= max_flag_rate <= 1:
        raise UsageError(f"--max_flag_rate must be in [0, 1] (a share of requests), got {max_flag_rate}")
    if not (math.isfinite(max_spike) and max_spike > 0):
        raise UsageError(f"--max_spike must be a number > 0, got {max_spike}")
    if max_requests < 0:
        raise UsageError(f"--max_requests must be >= 0 (0: no limit), got {max_requests}")


def main(argv: list[str]) -> int:
    from augury.command import function_cli

    function_cli(monitor, argv, prog="augury monitor")
    return 0
