"""prepare_data: contents of a prepared corpus, split without overlap, caching, atomic builds, stdlib."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from augury.data import prepare as prepare_mod
from augury.data.config import DataConfig
from augury.data.loader import TokenLoader, iter_val_batches
from augury.data.prepare import PreparedData, prepare_data
from augury.data.sources import split_of
from tests.data.conftest import SAMPLE_TEXTS

REPO = Path(__file__).resolve().parents[2]


def quiet(*_):
    pass


def prepare(source, **kw) -> PreparedData:
    kw.setdefault("vocab_size", 300)
    kw.setdefault("val_fraction", 0.25)
    return prepare_data(DataConfig(source=str(source), **kw), log=quiet)


def decode_split(data: PreparedData, split: str) -> list[str]:
    """The documents of a split, recovered from its .bin by cutting at <|endoftext|>."""
    ids = np.fromfile(data.split_path(split), dtype=data.manifest["dtype"]).tolist()
    tok = data.tokenizer()
    assert not ids or ids[0] == 0
    docs, current = [], []
    for i in ids[1:] + [0]:
        if i == 0:
            docs.append(tok.decode(current, skip_special_tokens=False))
            current = []
        else:
            current.append(i)
    return docs if ids else []


def test_prepared_corpus_decodes_back_to_its_documents(corpus_dir):
    data = prepare(corpus_dir)
    m = data.manifest
    rows = data.documents()
    by_split = {s: [r["id"] for r in rows if r["split"] == s] for s in ("train", "val")}
    assert sorted(by_split["train"] + by_split["val"]) == sorted(SAMPLE_TEXTS)
    assert not set(by_split["train"]) & set(by_split["val"])
    assert by_split["val"] == m["val_documents"] and by_split["val"]
    for split in ("train", "val"):
        assert decode_split(data, split) == [SAMPLE_TEXTS[i] for i in by_split[split]]
        assert data.split_bytes(split) == sum(len(SAMPLE_TEXTS[i].encode()) for i in by_split[split])
        assert data.split_tokens(split) == os.path.getsize(data.split_path(split)) // 2
        assert m["splits"][split]["documents"] == len(by_split[split])
    assert m["dtype"] == "uint16" and m["vocab_size"] == 300
    assert list(m["special_tokens"]) [:1] == ["<|endoftext|>"] and m["special_tokens"]["<|image_end|>"] == 8
    assert m["source"]["kind"] == "folder" and m["skipped_non_utf8"] == 0
    assert data.tokenizer_path.name == "tokenizer.json" and data.tokenizer().get_vocab_size() <= 300
    # Offsets locate each document in its .bin (for per-document evaluation of held-out files).
    ids = np.fromfile(data.split_path("train"), dtype=np.uint16)
    assert all(ids[r["offset"]] == 0 for r in data.documents("train"))
    for row in data.documents():
        assert data.document_text(row["id"]) == SAMPLE_TEXTS[row["id"]]
    with pytest.raises(KeyError, match="no document 'nope.txt'"):
        data.document_text("nope.txt")
    with pytest.raises(ValueError, match="unknown split 'test'"):
        data.split_path("test")


def test_split_follows_the_document_path_hash(corpus_dir):
    rows = prepare(corpus_dir, val_fraction=0.3).documents()
    hashed = {r["id"]: split_of(r["id"], 0.3) for r in rows}
    assert sorted(i for i, s in hashed.items() if s == "val") == ["deep/er/epsilon.txt", "notes/gamma.md"]
    assert {r["id"]: r["split"] for r in rows} == hashed


def test_preparation_is_deterministic(corpus_dir, tmp_path):
    a = prepare(corpus_dir, cache_dir=str(tmp_path / "c1"))
    b = prepare(corpus_dir, cache_dir=str(tmp_path / "c2"))
    assert a.dir.name == b.dir.name
    for name in ("train.bin", "val.bin", "tokenizer.json", "documents.jsonl"):
        assert (a.dir / name).read_bytes() == (b.dir / name).read_bytes()


def test_cache_is_reused_and_invalidated_by_edits(corpus_dir):
    logs = []
    first = prepare_data(DataConfig(source=str(corpus_dir), vocab_size=300), log=logs.append)
    stamp = (first.dir / "train.bin").stat().st_mtime_ns
    logs.clear()
    again = prepare_data(DataConfig(source=str(corpus_dir), vocab_size=300), log=logs.append)
    assert again.dir == first.dir and logs == [f"using prepared data {first.dir}"]
    assert (again.dir / "train.bin").stat().st_mtime_ns == stamp
    assert prepare(corpus_dir, vocab_size=301).dir != first.dir  # a config field that matters
    (corpus_dir / "alpha.py").write_text("changed = True\n" * 50)
    edited = prepare_data(DataConfig(source=str(corpus_dir), vocab_size=300), log=quiet)
    assert edited.dir != first.dir and first.dir.exists()


def test_failed_build_leaves_no_cache(corpus_dir, isolated_cache, monkeypatch):
    real_build = prepare_mod._build

    def crash(*args, **kw):
        real_build(*args, **kw)  # everything written ...
        raise RuntimeError("simulated crash before the manifest")  # ... but not finished

    monkeypatch.setattr(prepare_mod, "_build", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        prepare(corpus_dir)
    assert not isolated_cache.exists() or list(isolated_cache.iterdir()) == []
    monkeypatch.setattr(prepare_mod, "_build", real_build)
    data = prepare(corpus_dir)
    assert decode_split(data, "train")


def test_killed_build_is_never_used_and_is_cleaned_up(corpus_dir, isolated_cache):
    # A real SIGKILL in the middle of writing the splits: no cleanup code gets to run.
    script = textwrap.dedent(f"""
        import os, signal
        from augury.data import prepare as p
        from augury.data.config import DataConfig
        real = p.encode_documents
        def encode_then_die(tok, texts):
            if os.path.exists(os.path.join(os.getcwd(), "marker")):
                os.kill(os.getpid(), signal.SIGKILL)
            open("marker", "w").close()
            return real(tok, texts)
        p.encode_documents = encode_then_die
        p.prepare_data(DataConfig(source={str(corpus_dir)!r}, vocab_size=300, val_fraction=0.25))
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", script], cwd=corpus_dir.parent, env=env, capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()
    leftovers = list(isolated_cache.iterdir())
    assert leftovers and all(p.name.startswith(".tmp-") for p in leftovers)  # only a hidden temp folder
    assert (leftovers[0] / "train.bin").exists() and not (leftovers[0] / "manifest.json").exists()

    logs = []
    cfg = DataConfig(source=str(corpus_dir), vocab_size=300, val_fraction=0.25)
    data = prepare_data(cfg, log=logs.append)
    assert any("leftover of an interrupted build" in line for line in logs)
    assert [p.name for p in isolated_cache.iterdir()] == [data.dir.name]
    assert decode_split(data, "train")


def test_damaged_cache_is_rebuilt(corpus_dir):
    data = prepare(corpus_dir)
    good = (data.dir / "train.bin").read_bytes()
    (data.dir / "train.bin").write_bytes(good[:10])  # e.g. a disk-full copy
    logs = []
    cfg = DataConfig(source=str(corpus_dir), vocab_size=300, val_fraction=0.25)
    again = prepare_data(cfg, log=logs.append)
    assert any("damaged" in line for line in logs)
    assert (again.dir / "train.bin").read_bytes() == good


def test_a_prepared_folder_copied_elsewhere_is_a_source(corpus_dir, tmp_path):
    import shutil

    from augury.data.config import DataError

    original = prepare(corpus_dir)
    copy = tmp_path / "elsewhere"
    shutil.copytree(original.dir, copy)
    shutil.rmtree(corpus_dir)  # the documents are gone: the copy alone must do
    logs = []
    again = prepare_data(DataConfig(source=str(copy), vocab_size=300), log=logs.append)
    assert again.dir == copy and logs == [f"using prepared data {copy} (the source itself)"]
    assert decode_split(again, "val") == decode_split(original, "val")
    with pytest.raises(DataError, match="vocab_size 300, the config asks for 512"):
        prepare_data(DataConfig(source=str(copy), vocab_size=512), log=quiet)
    (copy / "val.bin").write_bytes(b"")  # damaged: an error, not a silent rebuild from manifest.json's text
    with pytest.raises(DataError, match="not a complete prepared corpus"):
        prepare_data(DataConfig(source=str(copy), vocab_size=300), log=quiet)


def test_load_refuses_an_incomplete_folder(tmp_path):
    with pytest.raises(ValueError, match="not a complete prepared corpus"):
        PreparedData.load(tmp_path)


def test_max_bytes_takes_a_sorted_prefix(corpus_dir):
    total = sum(len(t.encode()) for t in SAMPLE_TEXTS.values())
    data = prepare(corpus_dir, max_bytes=1500)
    m = data.manifest
    assert m["truncated_by_max_bytes"] and data.split_bytes("train") + data.split_bytes("val") == 1500 < total
    ids = [r["id"] for r in data.documents()]
    assert sorted(ids) == sorted(SAMPLE_TEXTS)[:len(ids)]


def test_jsonl_source(tmp_path):
    path = tmp_path / "docs.jsonl"
    texts = list(SAMPLE_TEXTS.values())
    with open(path, "w", encoding="utf-8") as f:
        for i, t in enumerate(texts):
            f.write(json.dumps({"body": t, "n": i}) + "\n")
            f.write("\n")  # blank lines are allowed
    data = prepare(path, text_field="body")
    rows = data.documents()
    assert [r["id"] for r in rows if r["split"] == "train"][0].startswith("line:")
    recovered = decode_split(data, "train") + decode_split(data, "val")
    assert sorted(recovered) == sorted(texts)
    assert data.manifest["source"]["kind"] == "jsonl"



def test_jsonl_source_written_with_a_byte_order_mark(tmp_path):
    # Windows tools (PowerShell's Out-File -Encoding utf8, Notepad) start a UTF-8 file with a BOM; the evaluation
    # data reader skips it too (utf-8-sig).
    path = tmp_path / "docs.jsonl"
    texts = list(SAMPLE_TEXTS.values())
    path.write_bytes(b"\xef\xbb\xbf" + "".join(json.dumps({"text": t}) + "\n" for t in texts).encode("utf-8"))
    data = prepare(path)
    assert sorted(decode_split(data, "train") + decode_split(data, "val")) == sorted(texts)
    assert sorted(r["id"] for r in data.documents()) == sorted(f"line:{i + 1}" for i in range(len(texts)))

def test_stdlib_quick_prepare_trains_and_validates():
    data = prepare_data(DataConfig(source="stdlib", vocab_size=512, max_bytes=400_000), log=quiet)
    m = data.manifest
    assert m["source"]["kind"] == "stdlib" and m["source"]["python"] == sys.version.split()[0]
    assert data.split_bytes("train") + data.split_bytes("val") == 400_000
    assert all(not r["id"].startswith(("test/", "site-packages/")) for r in data.documents())
    x, y = TokenLoader(data.split_path("train"), batch_size=4, seq_len=64).next_batch()
    assert int(x.max()) < 512
    # The sorted-path prefix holds few files; the val top-up still gives a usable validation split.
    assert m["val_topped_up"] and data.split_bytes("val") >= 0.05 * 400_000
    assert len(list(iter_val_batches(data.split_path("val"), 8, 128, max_batches=4))) == 4


@pytest.mark.slow
def test_full_default_corpus():
    """The default corpus as the Quickstart uses it: the whole standard library, vocab 4096."""
    data = prepare_data(DataConfig(), log=quiet)
    m = data.manifest
    assert m["splits"]["train"]["documents"] > 300 and not m["val_topped_up"]
    assert m["tokenizer_vocab_size"] == 4096 and m["skipped_non_utf8"] == 0
    total_bytes = data.split_bytes("train") + data.split_bytes("val")
    assert 3.0 < total_bytes / (data.split_tokens("train") + data.split_tokens("val")) < 4.5
    assert 0.02 < data.split_bytes("val") / total_bytes < 0.2
    assert sum(1 for _ in iter_val_batches(data.split_path("val"), 16, 256, None)) > 20
