"""The file of finished samples a run keeps per task, `OUT/.partial/<task>.<fingerprint>.jsonl`: appended a chunk at
a time with one fsync, read back on resume (augury/evals/runner.py decides which stored samples a rerun reuses).

    done = load_partial(path)               # [] before the first chunk; a torn last line is cut off the file
    append_records(path, finished)          # one JSON line a sample (a kill loses at most the chunk being written)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from augury.io import to_jsonable


class ResumeError(ValueError):
    """A file of finished samples in OUT/.partial cannot be read back."""


def load_partial(path: Path) -> list[dict]:
    """The finished samples stored in `path`. A torn last line (a kill mid-write) is cut off the file, so that
    the records appended next start on a line of their own; any other unreadable line is a ResumeError."""
    if not path.exists():
        return []
    data = path.read_bytes()
    intact = data[:data.rfind(b"\n") + 1]
    out = []
    for number, line in enumerate(intact.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            record = None
        if not isinstance(record, dict) or "doc_id" not in record:
            raise ResumeError(f"{path}: line {number} is not a stored sample (a JSON object with a doc_id); "
                              "remove that line, or the file, to score those samples again")
        out.append(record)
    if len(intact) < len(data):
        with open(path, "r+b") as f:
            f.truncate(len(intact))
            f.flush()
            os.fsync(f.fileno())
    return out


def append_records(path: Path, records: list[dict]) -> None:
    """Append a chunk's records with one fsync (a kill loses at most the chunk being written)."""
    if not records:
        return
    text = "".join(json.dumps(to_jsonable(r), ensure_ascii=False) + "\n" for r in records)
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
