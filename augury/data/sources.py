"""Corpus sources: find the documents of a DataConfig, read them as UTF-8, split them into train and val.

Three kinds of source:
- "stdlib": the running CPython's standard library `.py` files (via `sysconfig`), without `site-packages`,
  `dist-packages` and test folders (`test`, `tests`, `idle_test`). Every Python has it: no download needed.
- "stdlib+tests": the same with the test folders (CPython's own test suites: 2.6x the text on 3.11), where the
  interpreter ships them.
- a folder: files whose suffix is in `extensions`, walked recursively; hidden files and folders are skipped.
- a `.jsonl` file: one document per non-blank line, text in `text_field`.

A document's ID is its relative POSIX path (stdlib, folder) or `line:N` (JSONL, 1-based). The split depends
only on that ID (`split_of`), so adding or editing other documents never moves a document between train and
val.

    from augury.data.sources import list_source_files, read_documents
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from augury.data.config import STDLIB_SOURCES, DataConfig, DataError, normalized_extensions

# Folder names never read from the standard library: installed packages, and (source "stdlib") CPython's own
# test suites.
STDLIB_TEST_DIRS = frozenset({"test", "tests", "idle_test"})
STDLIB_EXCLUDED_DIRS = frozenset({"site-packages", "dist-packages", "__pycache__"}) | STDLIB_TEST_DIRS


@dataclass
class SourceFile:
    """One file of the corpus as found on disk (before reading): enough to key the cache."""

    rel: str  # relative POSIX path from the source root (the file name for JSONL)
    path: Path
    size: int
    mtime_ns: int


@dataclass
class Document:
    id: str  # relative path, or "line:N" for JSONL
    text: str
    nbytes: int  # UTF-8 bytes of `text`
    sha256: str


@dataclass
class Corpus:
    """The documents read from a source, in sorted ID order, plus what was skipped."""

    kind: str  # "stdlib" | "folder" | "jsonl"
    root: Path
    documents: list[Document]
    skipped_non_utf8: list[str]  # IDs of documents skipped because they were not UTF-8
    skipped_empty: int  # documents with no text (empty files or empty strings)
    truncated_by_max_bytes: bool


def stdlib_root() -> Path:
    """The folder of the running interpreter's standard library (the base install's, also inside a venv)."""
    return Path(sysconfig.get_paths()["stdlib"]).resolve()


def source_kind(source: str) -> str:
    if source in STDLIB_SOURCES:
        return "stdlib"
    return "jsonl" if Path(source).expanduser().is_file() else "folder"


def source_root(source: str) -> Path:
    return stdlib_root() if source in STDLIB_SOURCES else Path(source).expanduser().resolve()


def _printable(rel: str) -> str:
    """A relative path as a document ID. A name that is not UTF-8 (a Latin-1 name from an old archive) reaches
    Python as surrogate escapes, which cannot be hashed, logged or written as UTF-8: its odd bytes are spelled
    `\\xe9` instead, so the file is still read, under a stable ID."""
    return rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _folder_identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()  # through a link, to the folder itself
    except OSError:  # a dangling link
        return None
    return (st.st_dev, st.st_ino)


def _walk(root: Path, keep_dir: Callable[[str], bool], keep_file: Callable[[str], bool]) -> list[SourceFile]:
    out: list[SourceFile] = []
    # Links to folders are followed (a corpus assembled with `ln -s /data/books corpus/books`), each folder read
    # once: a link back up cannot loop, a second link to a folder adds nothing twice.
    seen = {_folder_identity(root)}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        kept = []
        for d in sorted(d for d in dirnames if keep_dir(d)):
            identity = _folder_identity(Path(dirpath) / d)
            if identity is not None and identity not in seen:
                seen.add(identity)
                kept.append(d)
        dirnames[:] = kept
        for name in filenames:
            if not keep_file(name):
                continue
            path = Path(dirpath) / name
            try:
                st = path.stat()
            except OSError:  # a dangling symlink
                continue
            if not path.is_file():
                continue
            out.append(SourceFile(_printable(path.relative_to(root).as_posix()), path, st.st_size, st.st_mtime_ns))
    out.sort(key=lambda f: f.rel)
    return out


def list_source_files(cfg: DataConfig) -> list[SourceFile]:
    """Every candidate file of the source, sorted by relative path; cheap (stat only), reads no contents."""
    kind, root = source_kind(cfg.source), source_root(cfg.source)
    if kind == "jsonl":
        st = root.stat()
        return [SourceFile(root.name, root, st.st_size, st.st_mtime_ns)]
    if kind == "stdlib":
        excluded = STDLIB_EXCLUDED_DIRS if cfg.source == "stdlib" else STDLIB_EXCLUDED_DIRS - STDLIB_TEST_DIRS
        return _walk(root, lambda d: d not in excluded, lambda f: f.endswith(".py"))
    if not root.is_dir():
        raise DataError(f"corpus folder {str(root)!r} is not a folder")
    exts = normalized_extensions(cfg.extensions)
    every = exts == ["*"]
    files = _walk(root, lambda d: not d.startswith("."),
                  lambda f: not f.startswith(".") and (every or Path(f).suffix.lower() in exts))
    if not files:
        raise DataError(f"corpus folder {str(root)!r} has no files with suffixes {', '.join(exts)} "
                        f"(set extensions, e.g. ['*'] for every file)")
    return files


def split_of(doc_id: str, val_fraction: float) -> str:
    """'val' or 'train' for a document ID: a fixed hash of the ID compared with `val_fraction`."""
    return "val" if _hash_unit(doc_id) < val_fraction else "train"


def _hash_unit(doc_id: str) -> float:
    digest = hashlib.sha256(doc_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def assign_splits(sizes: dict[str, int], val_fraction: float) -> dict[str, str]:
    """Split documents ({id: bytes}) by `split_of`, topped up for small corpora.

    When the hash split leaves val with less than half of `val_fraction` of the bytes (a few documents, or a
    `max_bytes` prefix), the remaining documents with the smallest hashes move to val until it holds
    `val_fraction` of the bytes, so a quick run still gets a usable validation set. Train always keeps at
    least one document (a one-document corpus is all train). On a corpus of hundreds of documents neither
    rule practically ever triggers, and each document's split is a function of its ID alone; with them it
    depends on the set, still deterministically.
    """
    splits = {d: split_of(d, val_fraction) for d in sizes}
    if sizes and "train" not in splits.values():
        splits[max(sizes, key=_hash_unit)] = "train"
    total = sum(sizes.values())
    val_bytes = sum(n for d, n in sizes.items() if splits[d] == "val")
    if val_fraction > 0 and len(sizes) >= 2 and val_bytes < 0.5 * val_fraction * total:
        train_left = [d for d in sorted(sizes, key=_hash_unit) if splits[d] == "train"]
        for d in train_left[:-1]:
            if val_bytes >= val_fraction * total:
                break
            splits[d] = "val"
            val_bytes += sizes[d]
    return splits


def _not_utf8(where: str, problem: str, cfg: DataConfig, skipped: list[str], doc_id: str) -> None:
    """A document that is not valid UTF-8: refused (non_utf8='error') or recorded as skipped."""
    if cfg.non_utf8 == "error":
        raise DataError(f"{where} is not valid UTF-8 ({problem}); set non_utf8='skip' to skip such documents")
    skipped.append(doc_id)


def _decode(data: bytes, where: str, cfg: DataConfig, skipped: list[str], doc_id: str) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        _not_utf8(where, f"{err.reason} at byte {err.start}", cfg, skipped, doc_id)
        return None


def _lone_surrogate(text: str, where: str, cfg: DataConfig, skipped: list[str], doc_id: str) -> bool:
    """Whether `text` holds a lone surrogate (JSON can spell one, "\\ud800"; UTF-8 cannot encode it): such a
    document is skipped or refused as other non-UTF-8 input is."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        _not_utf8(where, f"lone surrogate {text[err.start]!r} at character {err.start}", cfg, skipped, doc_id)
        return True
    return False


def read_documents(cfg: DataConfig, files: list[SourceFile], log=print) -> Corpus:
    """Read and validate every document (UTF-8, JSONL syntax and fields) before any tokenizing starts."""
    kind, root = source_kind(cfg.source), source_root(cfg.source)
    docs: list[Document] = []
    skipped: list[str] = []
    empty = 0
    total = 0
    truncated = False

    def add(doc_id: str, text: str) -> bool:
        nonlocal total, empty, truncated
        if not text:
            empty += 1
            return True
        data = text.encode("utf-8")
        if cfg.max_bytes is not None and total + len(data) > cfg.max_bytes:
            # The document that crosses the cap is cut there (at a character boundary) and reading stops, so a
            # quick run gets max_bytes of text whatever the sizes of the files around the cut.
            truncated = True
            data = data[:cfg.max_bytes - total]
            text = data.decode("utf-8", errors="ignore")
            data = text.encode("utf-8")
            if text:
                total += len(data)
                docs.append(Document(doc_id, text, len(data), hashlib.sha256(data).hexdigest()))
            return False
        total += len(data)
        docs.append(Document(doc_id, text, len(data), hashlib.sha256(data).hexdigest()))
        return True

    if kind == "jsonl":
        path = files[0].path
        with open(path, "rb") as f:
            for lineno, raw in enumerate(f, start=1):
                if lineno == 1 and raw.startswith(codecs.BOM_UTF8):  # written by a Windows tool: not text
                    raw = raw[len(codecs.BOM_UTF8):]
                if not raw.strip():
                    continue
                doc_id = f"line:{lineno}"
                line = _decode(raw, f"{path}:{lineno}", cfg, skipped, doc_id)
                if line is None:
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise DataError(f"{path}:{lineno}: not valid JSON "
                                    f"({err.msg} at column {err.colno})") from None
                if not isinstance(record, dict) or cfg.text_field not in record:
                    raise DataError(f"{path}:{lineno}: no field {cfg.text_field!r} "
                                    f"(set text_field to the field that holds the text)")
                text = record[cfg.text_field]
                if not isinstance(text, str):
                    raise DataError(f"{path}:{lineno}: field {cfg.text_field!r} is {type(text).__name__}, "
                                    f"not a string")
                if _lone_surrogate(text, f"{path}:{lineno}: field {cfg.text_field!r}", cfg, skipped, doc_id):
                    continue
                if not add(doc_id, text):
                    break
    else:
        for sf in files:
            try:
                data = sf.path.read_bytes()
            except OSError as err:
                raise DataError(f"cannot read {str(sf.path)!r}: {err.strerror}") from None
            text = _decode(data, repr(str(sf.path)), cfg, skipped, sf.rel)
            if text is None:
                continue
            if not add(sf.rel, text):
                break

    if skipped:
        shown = ", ".join(skipped[:5]) + (" ..." if len(skipped) > 5 else "")
        log(f"skipped {len(skipped)} non-UTF-8 document(s) in {root}: {shown}")
    if not docs:
        among = "" if kind == "jsonl" else f" among {len(files)} files"
        reason = []
        if skipped:
            reason.append(f"{len(skipped)} not UTF-8")
        if empty:
            reason.append(f"{empty} empty")
        if truncated:
            reason.append(f"max_bytes={cfg.max_bytes} is too small")
        detail = f" ({', '.join(reason)})" if reason else ""
        raise DataError(f"corpus {str(root)!r} has no readable documents{among}{detail}")
    return Corpus(kind, root, docs, skipped, empty, truncated)
