"""Read task data files: CSV (with or without a header), JSON, JSONL and plain text, each optionally gzipped.

Every value is kept as the text in the file (a CSV cell that says `None` stays the string "None"). Problems are
reported once, naming the file and row: a missing file, a row with the wrong number of fields, bad JSON.

    records = read_records(Path("data/task/test.csv"), "csv", columns=["question", "A", "B", "C", "D", "answer"])

`augury.evals.prompts.load_spec` calls it for each task's data files (a task YAML's `format`, `columns`, ...), and
`augury.data.contamination` for the evaluation sets a corpus is checked against; it lives here, below both.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from pathlib import Path

from augury.io import jsonl_objects


class TaskDataError(ValueError):
    """A task's data file is missing or malformed (the message names the file and row)."""


def _read_text(path: Path, encoding: str) -> str:
    if not path.is_file():
        raise TaskDataError(f"data file {str(path)!r} does not exist")
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise TaskDataError(f"{path}: not a valid gzip file ({err})") from None
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as err:
        raise TaskDataError(f"{path}: not {encoding} text ({err})") from None


def file_format(path: Path, declared: str | None) -> str:
    """The declared format, else the one the extension (before any .gz) says."""
    if declared:
        return declared
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    ext = suffixes[-1].lstrip(".") if suffixes else ""
    if ext in ("csv", "json", "jsonl", "txt"):
        return "text" if ext == "txt" else ext
    raise TaskDataError(f"{path}: cannot tell the format from the extension; set data.format "
                        "(csv, json, jsonl or text)")


def read_records(path: Path, fmt: str | None = None, columns: list[str] | None = None,
                 encoding: str = "utf-8-sig", json_field: str | None = None,
                 split_regex: str | None = None) -> list[dict]:
    """Read one data file into a list of records (dicts).

    Args:
        path: the file (a `.gz` suffix means gzip)
        fmt: csv, json, jsonl or text; default from the extension
        columns: CSV column names for a file without a header row; None means the first row is the header
        encoding: text encoding (the default also strips a UTF-8 byte-order mark)
        json_field: for JSON files holding an object, the key whose value is the list of records
        split_regex: for text files, a multiline regex whose matches start new documents (else one document)
    """
    fmt = file_format(path, fmt)
    text = _read_text(path, encoding)
    if fmt == "csv":
        return _read_csv(path, text, columns)
    if fmt == "jsonl":
        return [rec for _, rec in jsonl_objects(text, str(path), TaskDataError)]
    if fmt == "json":
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as err:
            raise TaskDataError(f"{path}: not valid JSON ({err})") from None
        if json_field is not None:
            if not isinstance(obj, dict) or json_field not in obj:
                raise TaskDataError(f"{path}: no top-level key {json_field!r}")
            obj = obj[json_field]
        if not isinstance(obj, list) or not all(isinstance(r, dict) for r in obj):
            raise TaskDataError(f"{path}: expected a JSON list of objects (set json_field for a nested list)")
        return obj
    if fmt == "text":
        return [{"text": doc} for doc in split_documents(text, split_regex)]
    raise TaskDataError(f"{path}: unknown format {fmt!r} (csv, json, jsonl or text)")


def _read_csv(path: Path, text: str, columns: list[str] | None) -> list[dict]:
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if columns is None:
        if not rows:
            raise TaskDataError(f"{path}: empty CSV file (expected a header row)")
        header, body, first_line = rows[0], rows[1:], 2
    else:
        header, body, first_line = list(columns), rows, 1
    out = []
    for i, row in enumerate(body):
        if not row:
            continue
        if len(row) != len(header):
            raise TaskDataError(f"{path}: row {i + first_line} has {len(row)} fields, expected {len(header)} "
                                f"({', '.join(header)})")
        out.append(dict(zip(header, row)))
    return out


def split_documents(text: str, split_regex: str | None) -> list[str]:
    """Split a text into documents at each line matching `split_regex` (the line starts the new document)."""
    if not split_regex:
        return [text] if text.strip() else []
    starts = [m.start() for m in re.finditer(split_regex, text, flags=re.MULTILINE)]
    if not starts or starts[0] != 0:
        starts = [0] + starts
    docs = [text[a:b] for a, b in zip(starts, starts[1:] + [len(text)])]
    return [d for d in docs if d.strip()]
