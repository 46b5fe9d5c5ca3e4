"""Configuration of the data pipeline: which corpus, how it is split and tokenized, where the result is
cached.

    from augury.data.config import DataConfig
    cfg = DataConfig(source="stdlib", vocab_size=4096)          # CPython's own standard library
    cfg = DataConfig(source="stdlib+tests", vocab_size=1024)    # ... with its test suites (~2.6x the text)
    cfg = DataConfig(source="corpus/", extensions=[".txt"])     # a folder of text files
    cfg = DataConfig(source="docs.jsonl", text_field="body")    # one document per JSONL line

`validate_config` checks every field before any file is read, so a typo fails in one line, not after minutes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

# Suffixes read from a folder when `extensions` is None: prose, markup and common source code.
DEFAULT_EXTENSIONS: tuple[str, ...] = (
    ".txt", ".md", ".markdown", ".rst", ".tex",
    ".py", ".pyi", ".c", ".h", ".cc", ".cpp", ".hpp", ".rs", ".go", ".java", ".js", ".ts", ".sh",
    ".html", ".css", ".toml", ".yaml", ".yml", ".ini", ".cfg",
)

# Sources built into every Python, no download: the standard library, without or with CPython's test suites.
STDLIB_SOURCES: tuple[str, ...] = ("stdlib", "stdlib+tests")

# 256 byte-level tokens + the reserved special tokens: the smallest vocabulary a byte-level BPE can have.
MIN_VOCAB_SIZE = 256 + 9


class DataError(ValueError):
    """Bad data input (missing folder, empty corpus, bad JSONL line, non-UTF-8 file, corpus too small).

    Raised before any expensive work starts; the message names the offending path, line or size.
    """


@dataclass
class DataConfig:
    """Which corpus to prepare and how.

    Attributes:
        source: "stdlib" (CPython's standard-library .py files found via sysconfig, without site-packages and
            test folders: 12 MB on CPython 3.11), "stdlib+tests" (the same with CPython's test suites: 31.5 MB;
            some distributions ship those separately, e.g. Debian's libpython3.X-testsuite), a folder of text
            files, a .jsonl file with one document per line, or a folder prepared earlier (it has augury's
            manifest.json; used as it is, e.g. copied from another machine).
        text_field: for a .jsonl source, the field that holds each document's text.
        extensions: for a folder source, the file suffixes to read (e.g. [".txt", ".md"]; ["*"] reads every
            file). None reads common text and source-code suffixes (DEFAULT_EXTENSIONS, incl. .py .txt .md).
        vocab_size: BPE vocabulary size including the 9 special tokens (>= 265).
        val_fraction: share of documents held out for validation, chosen by a hash of each document's
            relative path (folders, stdlib) or line number (JSONL): stable when other documents change.
        max_bytes: read at most this many UTF-8 bytes of text, documents in sorted path (or line) order;
            the document that crosses the cap is cut there and reading stops. None reads everything. For
            quick runs.
        cache_dir: where prepared data lives; None uses $AUGURY_CACHE/data or ~/.cache/augury/data.
        non_utf8: what to do with a document that is not valid UTF-8: "skip" (count it, log it and record the
            count in the manifest) or "error" (stop with an error naming the file or line).
        decontaminate: drop the documents that hold examples of the evaluation sets (MMLU, HumanEval, ...; see
            augury.data.contamination). False keeps them; either way the counts per set go to the manifest.
        eval_data_dir: the folder of the evaluation sets to check against; None uses $AUGURY_SHARED_DATA, else
            shared/data beside the checkout. When none is found the manifest records that the check did not run.
    """

    source: str = "stdlib"
    text_field: str = "text"
    extensions: list[str] | None = None
    vocab_size: int = 4096
    val_fraction: float = 0.05
    max_bytes: int | None = None
    cache_dir: str | None = None
    non_utf8: Literal["skip", "error"] = "skip"
    decontaminate: bool = True
    eval_data_dir: str | None = None


def validate_config(cfg: DataConfig) -> None:
    """Raise DataError naming the first bad field; reads no corpus file, only checks the source exists."""
    if not isinstance(cfg.vocab_size, int) or cfg.vocab_size < MIN_VOCAB_SIZE:
        raise DataError(f"vocab_size must be an integer >= {MIN_VOCAB_SIZE} (256 bytes + 9 special tokens), "
                        f"got {cfg.vocab_size!r}")
    if cfg.vocab_size > 2**32 - 1:
        raise DataError(f"vocab_size {cfg.vocab_size} does not fit in uint32 token ids")
    if not (0.0 <= float(cfg.val_fraction) < 1.0):
        raise DataError(f"val_fraction must be in [0, 1), got {cfg.val_fraction!r}")
    if cfg.max_bytes is not None and (not isinstance(cfg.max_bytes, int) or cfg.max_bytes <= 0):
        raise DataError(f"max_bytes must be a positive integer or None, got {cfg.max_bytes!r}")
    if cfg.non_utf8 not in ("skip", "error"):
        raise DataError(f"non_utf8 must be 'skip' or 'error', got {cfg.non_utf8!r}")
    if not cfg.text_field:
        raise DataError("text_field must be a non-empty field name")
    if cfg.extensions is not None:
        if (isinstance(cfg.extensions, str) or not cfg.extensions
                or not all(isinstance(e, str) and e for e in cfg.extensions)):
            raise DataError(f"extensions must be a list of suffixes such as ['.txt', '.md'], "
                            f"got {cfg.extensions!r}; None reads the common text and source suffixes")
    if not isinstance(cfg.decontaminate, bool):
        raise DataError(f"decontaminate must be true or false, got {cfg.decontaminate!r}")
    if cfg.eval_data_dir and not Path(cfg.eval_data_dir).expanduser().is_dir():
        raise DataError(f"eval_data_dir {cfg.eval_data_dir!r} is not a folder (the evaluation sets to check the "
                        f"corpus against; leave it unset to use $AUGURY_SHARED_DATA)")
    cache = resolve_cache_dir(cfg.cache_dir)
    existing = cache.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        where = "cache_dir" if cfg.cache_dir else "the data cache ($AUGURY_CACHE/data or ~/.cache/augury/data)"
        problem = "is a file" if existing == cache.absolute() else f"cannot be created: {str(existing)!r} is a file"
        raise DataError(f"{where} {str(cache)!r} {problem}; it must be a folder")
    if cfg.source not in STDLIB_SOURCES:
        path = Path(cfg.source).expanduser()
        if not path.exists():
            raise DataError(f"corpus source {str(path)!r} does not exist "
                            f"(expected 'stdlib', 'stdlib+tests', a folder or a .jsonl file)")
        if path.is_file() and path.suffix.lower() != ".jsonl":
            raise DataError(f"corpus source {str(path)!r} is a file but not .jsonl; "
                            f"give a folder or a .jsonl file")


def normalized_extensions(extensions: list[str] | None) -> list[str]:
    """Lower-case suffixes with a leading dot, sorted; ['*'] means every file."""
    if extensions is None:
        return sorted(DEFAULT_EXTENSIONS)
    if "*" in extensions:
        return ["*"]
    return sorted({(e if e.startswith(".") else "." + e).lower() for e in extensions})


def resolve_cache_dir(cache_dir: str | None) -> Path:
    """`cache_dir`, else $AUGURY_CACHE/data, else ~/.cache/augury/data."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    env = os.environ.get("AUGURY_CACHE")
    if env:
        return Path(env).expanduser() / "data"
    return Path.home() / ".cache" / "augury" / "data"
