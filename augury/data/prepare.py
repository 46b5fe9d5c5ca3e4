"""Prepare a corpus for training: read, split, train the tokenizer, write token memmaps, cache the result.

    from augury.data import DataConfig, prepare_data
    data = prepare_data(DataConfig(source="stdlib", vocab_size=4096))
    data.split_path("train")      # .bin of token ids (data.manifest["dtype"]), read with TokenLoader
    data.tokenizer()              # the tokenizers.Tokenizer saved as data.tokenizer_path (tokenizer.json)

A source that is itself a prepared folder (one with this layout's complete `manifest.json`, e.g. copied from
the machine that prepared it) is used as it is: nothing is read again or rebuilt, and its vocabulary must
match `vocab_size`. Prepare once, copy the folder to other machines, point `source` at it.

The result lives in `<cache_dir>/<name>-<key>/` and is reused when the key matches. The key hashes the fields
of the config that change the result, the format version, the `tokenizers` version and the source's file list
with sizes and modification times, so editing any corpus file re-prepares. A build is written into a hidden
temporary folder and renamed into place only when complete: a killed build never leaves a folder that looks
finished (its leftover temporary folder is removed by the next build once its process is gone).

Documents holding examples of an evaluation set (MMLU, HumanEval, ...) are dropped before anything else sees
them, unless `decontaminate` is false; the manifest records the counts per set, or why the check did not run
(augury.data.contamination).

Layout of a prepared folder:
    manifest.json     source, config, counts per split, dtype, special tokens, skipped documents, hashes,
                      contamination check
    tokenizer.json    byte-level BPE (Hugging Face tokenizers)
    train.bin, val.bin  token ids; every document is preceded by <|endoftext|> (id 0)
    documents.jsonl   one row per document: id, split, bytes, sha256, tokens, offset (of its first token)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from augury.data import contamination
from augury.data.config import (
    STDLIB_SOURCES,
    DataConfig,
    DataError,
    normalized_extensions,
    resolve_cache_dir,
    validate_config,
)
from augury.data.sources import (
    Corpus,
    SourceFile,
    assign_splits,
    list_source_files,
    read_documents,
    source_kind,
    source_root,
    split_of,
)
from augury.data.tokenizer import (
    EOT_ID,
    MAX_TRAIN_RUN,
    SPECIAL_TOKENS,
    encode_documents,
    load_tokenizer,
    train_tokenizer,
)
from augury.io import atomic_write_json, not_a_folder, sha256_file, utc_now

# Bump when the prepared layout or the way tokens are produced changes: old caches then stop matching.
FORMAT_VERSION = 3
SPLITS = ("train", "val")
_ENCODE_CHUNK = 256  # documents per encode_batch call: bounded memory, still parallel inside tokenizers


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every id fits (vocab_size <= 65535), else uint32."""
    return np.dtype(np.uint16 if vocab_size <= 65535 else np.uint32)


@dataclass
class PreparedData:
    """A prepared corpus folder: tokenizer, one token memmap per split, and its manifest."""

    dir: Path
    tokenizer_path: Path
    manifest: dict

    @classmethod
    def load(cls, path: str | os.PathLike) -> PreparedData:
        """Open a prepared folder (e.g. one recorded in a run's config); checks that it is complete."""
        path = Path(path)
        problem = _check_complete(path)
        if problem:
            raise DataError(f"{path} is not a complete prepared corpus: {problem}")
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        return cls(path, path / "tokenizer.json", manifest)

    def split_path(self, split: str) -> Path:
        """The .bin memmap of a split ("train" or "val")."""
        return self.dir / self._split(split)["file"]

    def split_tokens(self, split: str) -> int:
        """Tokens in the split, <|endoftext|> separators included."""
        return int(self._split(split)["tokens"])

    def split_bytes(self, split: str) -> int:
        """UTF-8 bytes of the split's document text (separators excluded): the denominator of bits/byte."""
        return int(self._split(split)["bytes"])

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.manifest["dtype"])

    @property
    def vocab_size(self) -> int:
        return int(self.manifest["vocab_size"])

    def tokenizer(self):
        """The tokenizers.Tokenizer of this corpus."""
        return load_tokenizer(self.tokenizer_path)

    def documents(self, split: str | None = None) -> list[dict]:
        """Rows of documents.jsonl (id, split, bytes, sha256, tokens, offset), optionally of one split.

        Use it to hold out whole files, e.g. build a test suite only from documents of the "val" split.
        """
        if split is not None:
            self._split(split)
        lines = (self.dir / "documents.jsonl").read_text(encoding="utf-8").splitlines()
        rows = [json.loads(line) for line in lines]
        return [r for r in rows if split is None or r["split"] == split]

    def document_text(self, doc_id: str) -> str:
        """The exact text of one prepared document, decoded from its split's tokens (no source needed).

        E.g. the held-out functions of `documents("val")` for a capability test suite: this is the text that
        was held out, byte for byte, even if the source files changed since.
        """
        rows = [r for r in self.documents() if r["id"] == doc_id]
        if not rows:
            raise KeyError(f"no document {doc_id!r} in {self.dir}")
        row = rows[0]
        tokens = np.memmap(self.split_path(row["split"]), dtype=self.dtype, mode="r")
        ids = tokens[row["offset"] + 1:row["offset"] + row["tokens"]].tolist()  # skip its <|endoftext|>
        return self.tokenizer().decode(ids, skip_special_tokens=False)

    def _split(self, split: str) -> dict:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        return self.manifest["splits"][split]


def cache_key(cfg: DataConfig, files: list[SourceFile]) -> str:
    """sha256 over what determines the prepared data: result-changing config fields + the file list."""
    import tokenizers

    kind = source_kind(cfg.source)
    fields = {
        "format_version": FORMAT_VERSION,
        "tokenizers": tokenizers.__version__,
        "max_train_run": MAX_TRAIN_RUN,  # how long runs are cut for BPE training (augury.data.tokenizer)
        "kind": kind,
        "root": str(source_root(cfg.source)),
        "text_field": cfg.text_field if kind == "jsonl" else None,
        "extensions": normalized_extensions(cfg.extensions) if kind == "folder" else None,
        "vocab_size": cfg.vocab_size,
        "val_fraction": float(cfg.val_fraction),
        "max_bytes": cfg.max_bytes,
        "non_utf8": cfg.non_utf8,
        "contamination": contamination.identity(cfg),
        "files": [[f.rel, f.size, f.mtime_ns] for f in files],
    }
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode("utf-8")).hexdigest()


def _folder_name(cfg: DataConfig, key: str) -> str:
    if source_kind(cfg.source) == "stdlib":
        import sys

        label = f"{cfg.source}-py{sys.version_info.major}.{sys.version_info.minor}"
    else:
        label = re.sub(r"[^A-Za-z0-9_.-]+", "_", source_root(cfg.source).name)[:40] or "corpus"
    return f"{label}-v{cfg.vocab_size}-{key[:16]}"


def _prepared_source(cfg: DataConfig) -> PreparedData | None:
    """The source as a PreparedData when it is a prepared folder (has a manifest.json naming a cache key)."""
    root = Path(cfg.source).expanduser()
    if cfg.source in STDLIB_SOURCES or not (root / "manifest.json").is_file():
        return None
    try:
        manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # some other project's manifest.json: read the folder as a corpus
    if not isinstance(manifest, dict) or "cache_key" not in manifest or "splits" not in manifest:
        return None
    data = PreparedData.load(root)  # DataError if damaged or incomplete
    if data.vocab_size != cfg.vocab_size:
        raise DataError(f"prepared corpus {str(root)!r} has vocab_size {data.vocab_size}, the config asks for "
                        f"{cfg.vocab_size}: set vocab_size to {data.vocab_size} or prepare the source again")
    return data


def _check_complete(path: Path) -> str | None:
    """None if `path` holds a complete prepared corpus, else what is wrong with it."""
    try:
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        if not manifest.get("complete") or manifest.get("format_version") != FORMAT_VERSION:
            return "manifest.json is not marked complete for this format version"
        itemsize = np.dtype(manifest["dtype"]).itemsize
        for split in SPLITS:
            info = manifest["splits"][split]
            f = path / info["file"]
            if not f.is_file() or f.stat().st_size != info["tokens"] * itemsize:
                have = f.stat().st_size if f.is_file() else "no file"
                return f"{info['file']} has {have} bytes, manifest says {info['tokens'] * itemsize}"
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        return f"manifest.json unreadable or incomplete ({type(err).__name__}: {err})"
    for name in ("tokenizer.json", "documents.jsonl"):
        if not (path / name).is_file():
            return f"{name} missing"
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_builds(cache_root: Path, name: str, log) -> None:
    """Delete temporary folders of builds of `name` on this host whose process no longer exists (killed)."""
    host = socket.gethostname()
    for tmp in cache_root.glob(f".tmp-{name}-*"):
        m = re.fullmatch(rf"\.tmp-{re.escape(name)}-(.+)-(\d+)", tmp.name)
        if m and m.group(1) == host and not _pid_alive(int(m.group(2))):
            log(f"removing the leftover of an interrupted build: {tmp}")
            shutil.rmtree(tmp, ignore_errors=True)


def prepare_data(cfg: DataConfig, log=print) -> PreparedData:
    """Prepare (or reuse from cache) the corpus of `cfg`; returns the prepared folder.

    Bad input (missing folder, no readable documents, bad JSONL line, non-UTF-8 with non_utf8="error", bad
    config value) raises DataError before anything is written.
    """
    validate_config(cfg)
    prepared = _prepared_source(cfg)
    if prepared is not None:
        log(f"using prepared data {prepared.dir} (the source itself)")
        if "contamination" not in prepared.manifest:
            log("note: it was prepared before the evaluation-set contamination check existed")
        return prepared
    files = list_source_files(cfg)
    if cfg.source == "stdlib+tests" and not any(f.rel.startswith("test/") for f in files):
        log(f"note: this Python has no test suite in {source_root(cfg.source)} (some distributions ship it "
            f"separately, e.g. Debian's libpython3.X-testsuite): 'stdlib+tests' reads the standard library alone")
    key = cache_key(cfg, files)
    cache_root = resolve_cache_dir(cfg.cache_dir)
    name = _folder_name(cfg, key)
    final = cache_root / name

    if final.exists():
        problem = _check_complete(final)
        if problem is None:
            data = PreparedData.load(final)
            log(f"using prepared data {final}")
            return data
        log(f"prepared data at {final} is damaged ({problem}); rebuilding it")
        broken = cache_root / f".broken-{name}-{socket.gethostname()}-{os.getpid()}"
        try:
            os.rename(final, broken)  # out of the way first, so no reader sees a half-deleted folder
        except FileNotFoundError:  # another process got there first
            pass
        shutil.rmtree(broken, ignore_errors=True)

    if why := not_a_folder(cache_root):  # before the corpus is read, not at the first write after it
        where = "cache_dir" if cfg.cache_dir else "the data cache ($AUGURY_CACHE/data or ~/.cache/augury/data)"
        raise DataError(f"{where}: {why}; the prepared data is written there")
    t0 = time.perf_counter()
    corpus = read_documents(cfg, files, log=log)  # validates everything before any write
    kept, checked = contamination.check_corpus(cfg, corpus.documents, log=log)
    if not kept:
        sets = ", ".join(f"{n}: {i['documents']}" for n, i in checked["sets"].items() if i.get("documents"))
        raise DataError(f"corpus {str(corpus.root)!r}: all {len(corpus.documents)} documents hold examples of "
                        f"evaluation sets ({sets}), which stay out of training data (decontaminate: false "
                        f"keeps them)")
    corpus = dataclasses.replace(corpus, documents=kept)
    splits = assign_splits({d.id: d.nbytes for d in corpus.documents}, cfg.val_fraction)
    by_split = {s: [d for d in corpus.documents if splits[d.id] == s] for s in SPLITS}
    log(f"read {len(corpus.documents)} documents ({sum(d.nbytes for d in corpus.documents):,} bytes) from "
        f"{corpus.root}: {len(by_split['train'])} train, {len(by_split['val'])} val")

    cache_root.mkdir(parents=True, exist_ok=True)
    _remove_stale_builds(cache_root, name, log)
    tmp = cache_root / f".tmp-{name}-{socket.gethostname()}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        manifest = _build(cfg, corpus, by_split, key, tmp, log)
        manifest["contamination"] = checked
        manifest["build_seconds"] = round(time.perf_counter() - t0, 3)
        atomic_write_json(tmp / "manifest.json", manifest)  # written last: its presence marks completeness
        try:
            os.rename(tmp, final)
        except OSError:
            if _check_complete(final) is None:  # another process finished the same build first
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"prepared {final} in {time.perf_counter() - t0:.1f}s")
    return PreparedData.load(final)


def _build(cfg: DataConfig, corpus: Corpus, by_split: dict, key: str, out: Path, log) -> dict:
    import sys

    import tokenizers

    t0 = time.perf_counter()
    tok = train_tokenizer((d.text for d in by_split["train"]), cfg.vocab_size)  # val never shapes the vocab
    tok.save(str(out / "tokenizer.json"))
    learned = tok.get_vocab_size()
    log(f"trained tokenizer: {learned} tokens (vocab_size {cfg.vocab_size}) "
        f"in {time.perf_counter() - t0:.1f}s")
    if learned < cfg.vocab_size:
        log(f"note: the corpus only supports {learned} BPE tokens; "
            f"ids stay below vocab_size={cfg.vocab_size}")

    dtype = token_dtype(cfg.vocab_size)
    splits_info: dict[str, dict] = {}
    rows: list[dict] = []
    for split in SPLITS:
        docs = by_split[split]
        t1 = time.perf_counter()
        offset = 0
        with open(out / f"{split}.bin", "wb") as f:
            for start in range(0, len(docs), _ENCODE_CHUNK):
                chunk = docs[start:start + _ENCODE_CHUNK]
                for doc, ids in zip(chunk, encode_documents(tok, [d.text for d in chunk])):
                    np.asarray([EOT_ID, *ids], dtype=dtype).tofile(f)
                    rows.append({"id": doc.id, "split": split, "bytes": doc.nbytes, "sha256": doc.sha256,
                                 "tokens": len(ids) + 1, "offset": offset})
                    offset += len(ids) + 1
            f.flush()
            os.fsync(f.fileno())
        splits_info[split] = {"file": f"{split}.bin", "documents": len(docs),
                              "bytes": sum(d.nbytes for d in docs),
                              "tokens": offset, "sha256": sha256_file(out / f"{split}.bin")}
        log(f"{split}: {len(docs)} documents, {splits_info[split]['bytes']:,} bytes -> {offset:,} tokens "
            f"in {time.perf_counter() - t1:.1f}s")

    with open(out / "documents.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
        f.flush()
        os.fsync(f.fileno())
    listing = "".join(f"{d.id}\0{d.sha256}\n" for d in corpus.documents)
    aggregate = hashlib.sha256(listing.encode("utf-8")).hexdigest()
    return {
        "format_version": FORMAT_VERSION,
        "complete": True,
        "created": utc_now(),
        "cache_key": key,
        "source": {"kind": corpus.kind, "spec": cfg.source, "root": str(corpus.root),
                   "python": sys.version.split()[0] if corpus.kind == "stdlib" else None},
        "config": dataclasses.asdict(cfg),
        # sha256 over (id, sha256 of text) of every document kept; per-document hashes: documents.jsonl
        "sha256": aggregate,
        "vocab_size": cfg.vocab_size,
        "tokenizer_vocab_size": learned,
        "dtype": dtype.name,
        "special_tokens": {t: i for i, t in enumerate(SPECIAL_TOKENS)},
        "eot_id": EOT_ID,
        "layout": "each document is preceded by <|endoftext|>; "
                  "documents in sorted path order (JSONL: line order)",
        "splits": splits_info,
        "val_documents": [d.id for d in by_split["val"]],
        # True when a small corpus's hash split was topped up (see sources.assign_splits)
        "val_topped_up": any(split_of(d.id, cfg.val_fraction) != "val" for d in by_split["val"]),
        "skipped_non_utf8": len(corpus.skipped_non_utf8),
        "skipped_non_utf8_documents": corpus.skipped_non_utf8[:100],
        "skipped_empty": corpus.skipped_empty,
        "truncated_by_max_bytes": corpus.truncated_by_max_bytes,
        "tokenizers_version": tokenizers.__version__,
    }
